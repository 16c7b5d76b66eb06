"""What ``pip install .`` puts in site-packages: the project's own namespace and nothing
else (the repository's top-level ``exporters/`` and ``trainers/`` folders install as
``proc_ml.exporters`` and ``proc_ml.trainers``), with every package of the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = {"proc_ml": "proc_ml", "exporters": "proc_ml.exporters", "trainers": "proc_ml.trainers"}


def _source_packages() -> set[str]:
    found = set()
    for folder, package in SOURCE_DIRS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *rel.parts]))
    return found


def test_pyproject_lists_every_package_of_the_source_tree():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _source_packages()
    assert config["package-dir"] == {v: k for k, v in SOURCE_DIRS.items()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a copy of the tracked sources, so the build leaves nothing in the checkout
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md", *SOURCE_DIRS):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(out)],
                            capture_output=True, text=True, cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = out.glob("proc_ml-*.whl")
    return path


def test_the_wheel_installs_only_the_proc_ml_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"proc_ml", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for module in ("proc_ml/trainers/loop.py", "proc_ml/trainers/models/parts_unet3d.py",
                   "proc_ml/exporters/onnx_export.py", "proc_ml/formats/faces_csv.py",
                   "proc_ml/configs/parts_unet3d.yaml", "proc_ml/registry.py"):
        assert module in names, module


def test_the_installed_wheel_imports_in_a_clean_site(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == ["proc_ml"]
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; import proc_ml.registry, proc_ml.trainers.task, "
            "proc_ml.exporters.onnx_export; print(proc_ml.trainers.task.__file__)")
    result = subprocess.run([sys.executable, "-I", "-c", code, str(site)], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(str(site / "proc_ml" / "trainers"))
