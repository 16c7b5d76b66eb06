"""Packaging: what ``pip install .`` puts in site-packages, and what each platform and a
DCC's Python get.

* the wheel holds the project's own namespace and nothing else (the repository's top-level
  ``exporters/`` and ``trainers/`` folders install as ``proc_ml.exporters`` and
  ``proc_ml.trainers``), with every package of the source tree;
* proc-ml's own markers, evaluated for each studio platform the way
  ``scripts/check_platform_installs.py`` evaluates them: exactly one onnxruntime build each,
  the GPU build only where it has wheels (Linux / Windows x86_64);
* a fresh process in which only the [dcc] extra and its dependencies can be imported (any
  other installed distribution raises ModuleNotFoundError, as in a DCC's Python) runs the
  whole DCC path: parts prediction, dataset export, procedural texture atlas.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import check_platform_installs as cpi  # noqa: E402

GPU_PLATFORMS = {"Linux x86_64", "Windows x86_64"}


@pytest.mark.parametrize("python", cpi.PYTHONS)
@pytest.mark.parametrize("target", cpi.TARGETS, ids=lambda t: t.name)
def test_each_platform_gets_exactly_one_onnxruntime(target, python):
    sets = cpi.requirement_sets()
    for name in ("base", "dcc"):
        chosen = {Requirement(r).name for r in cpi.applicable(sets[name], target, python)}
        runtimes = chosen & {"onnxruntime", "onnxruntime-gpu"}
        expected = "onnxruntime-gpu" if target.name in GPU_PLATFORMS else "onnxruntime"
        assert runtimes == {expected}, (target.name, name, chosen)
        assert all(Requirement(r).marker is None
                   for r in cpi.applicable(sets[name], target, python))


def test_dcc_extra_is_the_base_set_without_the_cli_extras():
    sets = cpi.requirement_sets()
    base = {Requirement(r).name for r in sets["base"]}
    dcc = {Requirement(r).name for r in sets["dcc"]}
    assert base - dcc == {"tqdm", "lxml"} and dcc <= base
    assert {"numpy==1.26.4"} <= set(sets["dcc+numpy"]) and sets["dcc+numpy"][:-1] == sets["dcc"]


def test_pip_command_targets_the_platform_and_python():
    target = cpi.TARGETS[2]                                   # macOS arm64
    cmd = cpi.pip_command(["onnxruntime>=1.18"], target, "3.11", "/tmp/x")
    assert cmd[cmd.index("--abi") + 1] == "cp311" and "--only-binary=:all:" in cmd
    tags = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert "macosx_14_0_arm64" in tags and "macosx_11_0_universal2" in tags
    assert not any("x86_64" in t and "universal2" not in t for t in tags)
    env = cpi.clean_env()
    assert env["PIP_CONFIG_FILE"] and not any(k.startswith("PIP_") and k not in (
        "PIP_CONFIG_FILE", "PIP_CERT") for k in env)


def _requirement_closure(names: set[str]) -> set[str]:
    """The installed distributions ``names`` need, with their dependencies (no extras)."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


DCC_PATH = textwrap.dedent("""
    import json, sys
    from importlib import metadata
    from importlib.abc import MetaPathFinder

    model, out, allowed = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
    dists = metadata.packages_distributions()
    before = {m.split(".")[0] for m in sys.modules}

    class OnlyTheDccSet(MetaPathFinder):
        # a DCC's Python with only the [dcc] closure installed: anything else is missing
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            owners = {d.lower().replace("_", "-") for d in dists.get(top, ())}
            if owners and not owners & allowed and top not in before:
                raise ModuleNotFoundError(f"No module named {top!r} (not in [dcc])", name=top)
            return None

    sys.meta_path.insert(0, OnlyTheDccSet())
    import numpy as np
    from proc_ml.dcc.predict import open_session, predict_polygons
    from proc_ml.dcc.export import export_labelled_faces
    from proc_ml.dcc.fixes import FixedFaces, apply_part_fix
    from proc_ml.dcc.texture import texture_quads, write_atlas

    session = open_session(model, "cpu")
    corners = np.array([[x, y, z] for z in (0, 9) for y in (0, 9) for x in (0, 9)], float)
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    prims = predict_polygons(session, corners, np.full(6, 4), np.array(faces).ravel(), 3.0)
    quads = np.asarray(prims.polygons)
    part_fix = np.where(np.arange(len(quads)) == 0, "door", "").astype(object)
    prims, _ = apply_part_fix(prims, FixedFaces(prims.points, np.full(len(quads), 4), quads.ravel(),
                                                part_fix))
    export_labelled_faces(out + "/ds", 0, prims.points, np.full(len(quads), 4), quads.ravel(),
                          prims.part_name, prims.parts, 3.0, (0, 0, 0), part_fix=prims.fix)
    textures = texture_quads(prims.points, quads, prims.part, list(prims.parts))
    write_atlas(out + "/atlas.png", textures.atlas)
    top = {m.split(".")[0] for m in sys.modules} - before
    used = sorted({d for m in top for d in dists.get(m, ())})
    print(json.dumps({"faces": len(prims), "distributions": used}))
""")


def test_dcc_extra_covers_what_the_inference_path_imports(tiny_massing_unet_onnx, tmp_path):
    """The DCC path runs in a process where only the [dcc] closure can be imported."""
    dcc = {Requirement(r).name for r in cpi.requirement_sets()["dcc"]}
    allowed = _requirement_closure({n for n in dcc if _installed(n)}) | {"proc-ml"}
    proc = subprocess.run([sys.executable, "-c", DCC_PATH, str(tiny_massing_unet_onnx),
                           str(tmp_path), json.dumps(sorted(allowed))],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["faces"] == 54 and (tmp_path / "atlas.png").is_file()
    assert (tmp_path / "ds" / "dataset.yaml").is_file()
    used = {canonicalize_name(d) for d in out["distributions"]}
    assert used <= allowed, sorted(used - allowed)
    assert {"numpy", "pyyaml", "trimesh", "pillow"} <= used
    assert used & {"onnxruntime", "onnxruntime-gpu"}


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


# -- what the wheel installs ---------------------------------------------------------------
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
