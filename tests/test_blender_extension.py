"""blender_addon/build_extension.py: the Blender 4.2+ extension with its wheels bundled.

Offline: which requirements the extension bundles (the ``[dcc]`` extra, CPU onnxruntime, no
numpy), the pip command per platform, the manifest it writes, and Blender's own validator
(``bl_pkg/cli/blender_ext.py validate``, what ``blender --command extension validate`` runs)
on a zip staged with stand-in wheels. Slow (network, ~30 s): a real linux-x64 build,
validated, installed into a throwaway Blender user folder by Blender's extension installer
in a fresh process, where the add-on registers, ``proc_ml`` / ``onnxruntime`` come from the
bundled wheels, and the operator labels a box.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "blender_addon"))

import build_extension as bx  # noqa: E402

LINUX_WHEELS = ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                "pyyaml-6.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
                "trimesh-5.2.0-py3-none-any.whl", "proc_ml-0.1.0-py3-none-any.whl")


def _stand_in_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("placeholder.txt", "stand-in for a wheel: the manifest logic only")
    return path


def _validator():
    script = bx.blender_ext_script()
    if script is None:
        pytest.skip("Blender's extension validator comes with the bpy module")
    return script


def test_bundled_requirements_are_the_dcc_extra_without_numpy():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dcc = {Requirement(r).name: Requirement(r) for r in project["optional-dependencies"]["dcc"]}
    reqs = [Requirement(r) for r in bx.addon_requirements()]
    assert sorted(r.name for r in reqs) == ["onnxruntime", "pillow", "pydantic", "pyyaml", "trimesh"]
    assert all(r.marker is None for r in reqs)
    for req in reqs:                      # same version floors as the [dcc] extra
        source = dcc.get(req.name) or dcc["onnxruntime-gpu"]
        assert req.specifier == source.specifier
    assert {"numpy", "scipy"} <= set(dcc) and not {"numpy", "scipy"} & {r.name for r in reqs}


def test_download_is_resolved_against_blenders_numpy_and_leaves_it_out(monkeypatch, tmp_path):
    calls = []

    def fake_pip(cmd, what):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        constraint = Path(cmd[cmd.index("--constraint") + 1]).read_text()
        calls.append(constraint)
        dest.mkdir(parents=True)
        for name in ("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.whl",
                     "requests-2.32.3-py3-none-any.whl", *LINUX_WHEELS[:3]):
            (dest / name).write_bytes(b"")

    monkeypatch.setattr(bx, "_run", fake_pip)
    kept = bx.download_wheels(["onnxruntime>=1.18"], "linux-x64", "3.11", tmp_path / "w")
    assert sorted(p.name for p in kept) == sorted(LINUX_WHEELS[:3])
    cmd, constraint = calls
    assert constraint == "numpy==1.26.4\n"
    assert cmd[cmd.index("--python-version") + 1] == "3.11"
    assert cmd[cmd.index("--abi") + 1] == "cp311" and "--only-binary=:all:" in cmd
    tags = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--platform"]
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux2014_x86_64" in tags
    assert not any("2_29" in t or "aarch64" in t for t in tags)   # Blender's glibc 2.28 floor
    monkeypatch.setattr(bx, "_run", fake_pip)
    calls.clear()
    bx.download_wheels(["onnxruntime>=1.18"], "macos-arm64", "3.13", tmp_path / "m")
    assert calls[1] == "numpy>=2.2,<3\n"
    assert {"macosx_13_0_arm64", "macosx_11_0_universal2"} <= set(calls[0])
    assert "macosx_14_0_arm64" not in calls[0] and "win_amd64" not in calls[0]
    assert "macosx_14_0_arm64" in bx.platform_tags("macos-arm64", "14.0")


def test_manifest_names_the_wheels_and_passes_blenders_validator(tmp_path):
    script = _validator()
    wheels = [_stand_in_wheel(tmp_path / name) for name in LINUX_WHEELS]
    manifest = bx.stage_extension(tmp_path / "stage", wheels, ["linux-x64"])
    source = tomllib.loads((REPO / "blender_addon/proc_ml_parts/blender_manifest.toml").read_text())
    assert manifest["wheels"] == [f"./wheels/{n}" for n in sorted(LINUX_WHEELS)]
    assert manifest["platforms"] == ["linux-x64"]
    assert {k: v for k, v in manifest.items() if k not in ("wheels", "platforms")} == source
    # rewriting an already written manifest replaces the keys instead of repeating them
    text = (tmp_path / "stage/blender_manifest.toml").read_text()
    again = bx.manifest_with_wheels(text, [LINUX_WHEELS[0]], ["linux-x64"])
    assert again.count("wheels =") == 1 and tomllib.loads(again)["wheels"] == [
        f"./wheels/{LINUX_WHEELS[0]}"]

    archive = bx.zip_extension(tmp_path / "stage", tmp_path / "out/proc_ml_parts.zip")
    assert bx.check_archive(archive)["id"] == "proc_ml_parts"
    assert "Success parsing TOML" in bx.validate(archive)
    result = subprocess.run([sys.executable, str(script), "validate", str(archive)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Success" in result.stdout


def test_validator_and_archive_check_refuse_bad_extensions(tmp_path):
    _validator()
    stage = tmp_path / "stage"
    bx.stage_extension(stage, [_stand_in_wheel(tmp_path / LINUX_WHEELS[2])], ["linux-x64"])
    manifest = stage / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('./wheels/trimesh-5.2.0-py3-none-any.whl',
                                                     './wheels/trimesh.whl'))
    archive = bx.zip_extension(stage, tmp_path / "bad.zip")
    with pytest.raises(bx.BuildError, match="Blender's validator refused it"):
        bx.validate(archive)
    with pytest.raises(bx.BuildError, match="manifest wheels and archive disagree"):
        bx.check_archive(archive)


def test_a_pure_package_resolved_twice_is_refused(tmp_path):
    wheels = [tmp_path / "trimesh-5.2.0-py3-none-any.whl", tmp_path / "trimesh-5.1.0-py3-none-any.whl",
              tmp_path / "pillow-13.0.0-cp311-cp311-win_amd64.whl",
              tmp_path / "pillow-12.0.0-cp313-cp313-win_amd64.whl"]
    with pytest.raises(bx.BuildError, match="trimesh resolved to 5.1.0, 5.2.0"):
        bx.check_one_version_per_pure_package(wheels)
    bx.check_one_version_per_pure_package(wheels[2:])      # binary wheels per Python are fine


def test_unknown_platform_is_one_line(capsys):
    with pytest.raises(SystemExit):
        bx.main(["--platform", "amiga-68k"])
    assert "invalid choice: 'amiga-68k'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bx.main(["--macos", "ten"])
    assert "--macos: a macOS version from 11 on" in capsys.readouterr().err
    with pytest.raises(bx.BuildError, match="unknown platform 'amiga-68k'"):
        bx.build(["amiga-68k"], ["3.11"])


INSTALL_AND_RUN = r"""
import json, sys
# the dev checkout (editable install, cwd) must not provide proc_ml: only the extension may
sys.meta_path[:] = [f for f in sys.meta_path
                    if "editable" not in getattr(f, "__name__", type(f).__name__).lower()]
import bpy
zip_path, model = sys.argv[1], sys.argv[2]
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                  enable_on_install=True)
site = next(p for p in sys.path if p.endswith("site-packages") and "/extensions/.local/" in p)
sys.path.remove(site)
sys.path.insert(0, site)          # Blender appends it; first here so nothing else can answer
import numpy, onnxruntime, proc_ml, yaml, trimesh, PIL
addon = sys.modules["bl_ext.user_default.proc_ml_parts"]
bpy.ops.mesh.primitive_cube_add(size=6.0, location=(0.0, 0.0, 3.0))
cube = bpy.context.active_object
labelled = bpy.ops.object.proc_ml_predict_parts(model_path=model, device="cpu", cell_size=3.0)
parts = bpy.data.objects[cube.name + "_parts"]
print(json.dumps({
    "install": sorted(result), "labelled": sorted(labelled), "site": site,
    "addon": addon.__file__, "faces": len(parts.data.polygons),
    "modules": {m.__name__: m.__file__ for m in (onnxruntime, proc_ml, yaml, trimesh, PIL)},
    "numpy": numpy.__file__}))
"""


@pytest.mark.slow
def test_built_extension_installs_and_runs_in_a_fresh_blender(tmp_path, tiny_massing_unet_onnx):
    _validator()
    try:
        (archive,) = bx.build(["linux-x64"], ["3.11"], tmp_path / "dist", check=True)
    except bx.BuildError as exc:
        pytest.skip(f"building needs the package index: {exc}")
    manifest = bx.check_archive(archive)
    names = [w.rsplit("/", 1)[-1] for w in manifest["wheels"]]
    assert manifest["platforms"] == ["linux-x64"]
    assert {n.split("-")[0].lower() for n in names} >= {"onnxruntime", "pyyaml", "trimesh",
                                                        "pillow", "proc_ml"}
    assert not any(n.lower().startswith(("numpy-", "onnxruntime_gpu")) for n in names)

    env = {"BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    script = tmp_path / "install_and_run.py"
    script.write_text(INSTALL_AND_RUN)
    proc = subprocess.run([sys.executable, str(script), str(archive), str(tiny_massing_unet_onnx)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["install"] == ["FINISHED"] and out["labelled"] == ["FINISHED"]
    assert out["addon"].startswith(str(tmp_path / "blender_user"))
    for name, path in out["modules"].items():      # every bundled package from the extension
        assert path.startswith(out["site"]), (name, path)
    assert not out["numpy"].startswith(out["site"])  # numpy stays Blender's own
    assert out["faces"] == 2 * 2 * 6                 # a 2x2x2-cell box: 24 exterior faces
