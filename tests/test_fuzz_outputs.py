"""Fuzz: output locations. An output path that is a file, below a file, on a read-only file
system or on a full disk gives one line and leaves nothing half-written (the batch
manifest included).

Read-only and full file systems are real tmpfs mounts where the test may mount (root with
CAP_SYS_ADMIN, as in CI containers), and are also simulated (the file system calls raise
EROFS / ENOSPC) so the handling is tested everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess

import pytest

from fuzzkit import Sandbox, assert_refused, manifest_records, run


@pytest.fixture
def box(tmp_path):
    return Sandbox.make(tmp_path)


def _mount_tmpfs(path, size: str, read_only: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _unmount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


@pytest.fixture
def read_only_dir(tmp_path):
    path = tmp_path / "ro"
    if not _mount_tmpfs(path, "1m", read_only=True):
        pytest.skip("cannot mount a read-only tmpfs here (needs root with CAP_SYS_ADMIN)")
    yield path
    _unmount(path)


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "small"
    if not _mount_tmpfs(path, "192k"):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    yield path
    _unmount(path)


def _commands(box, data, model, run_dir, out):
    """Each command with ``out`` as its output location."""
    mesh = data / "meshes" / "b000000.obj"
    grid = data / "grids" / "b000000.npz"
    (box.inp / "assets").mkdir(exist_ok=True)
    (box.inp / "assets" / "a.obj").write_bytes(mesh.read_bytes())
    return {
        "batch": ["batch", box.inp / "assets", "--model", model, "--out", out, "--quiet"],
        "predict": ["predict", "building-parts", "--model", model, "--input", grid, "--out", out],
        "generate": ["generate", "buildings", "--count", 2, "--out", out, "--quiet"],
        "train": ["train", "building-parts", "--data", data, "--out", out, "--config",
                  "tiny_parts_mlp", "--quiet", "--set", "training.epochs=1"],
        "export": ["export", "onnx", run_dir, "--out", out / "m.onnx" if out.is_dir() or
                   not out.exists() else out],
        "evaluate": ["evaluate", run_dir, "--data", data, "--out", out / "e.json"],
    }


COMMANDS = ["batch", "predict", "generate", "train", "export", "evaluate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_an_existing_file(capfd, box, tiny_dataset, tiny_massing_unet_onnx,
                                 tiny_massing_unet_run, command):
    box.out.mkdir()
    target = box.out / "taken"
    target.write_text("keep me")
    args = _commands(box, tiny_dataset, tiny_massing_unet_onnx, tiny_massing_unet_run, target)[command]
    if command == "export":
        args[-1] = target / "m.onnx"                 # a file name whose folder is a file
    result = run(capfd, box, *args)
    assert_refused(result, "taken", command=command.split()[0])
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("command", COMMANDS)
def test_out_on_a_read_only_file_system(capfd, box, read_only_dir, tiny_dataset,
                                        tiny_massing_unet_onnx, tiny_massing_unet_run, command):
    args = _commands(box, tiny_dataset, tiny_massing_unet_onnx, tiny_massing_unet_run,
                     read_only_dir / "out")[command]
    result = run(capfd, box, *args)
    assert_refused(result, "read-only", command=command)


@pytest.mark.parametrize("command", ["batch", "predict", "generate", "train"])
def test_out_read_only_simulated(capfd, box, monkeypatch, tiny_dataset, tiny_massing_unet_onnx,
                                 tiny_massing_unet_run, command):
    """Every directory creation under OUT fails with EROFS (as on a read-only mount)."""
    from pathlib import Path

    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(box.out)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    args = _commands(box, tiny_dataset, tiny_massing_unet_onnx, tiny_massing_unet_run,
                     box.out / "x")[command]
    result = run(capfd, box, *args)
    assert_refused(result, "read-only", command=command)


def test_batch_on_a_full_disk(box, small_disk, tiny_dataset, tiny_massing_unet_onnx):
    """Outputs and the manifest on a 192 KB tmpfs: the batch stops or fails assets with one
    line each, the manifest stays whole JSON lines, no temp file is left."""
    from fuzzkit import REPO
    import sys

    assets = box.inp / "assets"
    assets.mkdir()
    for mesh in sorted((tiny_dataset / "meshes").glob("*.obj"))[:8]:
        (assets / mesh.name).write_bytes(mesh.read_bytes())
    out = small_disk / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "proc_ml", "batch", str(assets), "--model",
                           str(tiny_massing_unet_onnx), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    if done.returncode == 1:
        assert len(lines) == 1 and "no space left" in lines[0].lower(), lines
    else:
        assert all("no space left" in line.lower() for line in lines[1:]), lines
    if (out / "manifest.jsonl").exists():
        for line in (out / "manifest.jsonl").read_text().splitlines():
            json.loads(line)                              # every line whole
    assert not [p for p in out.rglob("*.tmp")] if out.exists() else True


def test_batch_manifest_append_fails_mid_record(capfd, box, monkeypatch, tiny_dataset,
                                               tiny_massing_unet_onnx):
    """The third manifest append writes half its bytes, then the disk is full: one line, the
    manifest is cut back to whole records, no chained tracebacks."""
    import proc_ml.batch.manifest as manifest_module

    assets = box.inp / "assets"
    assets.mkdir()
    for mesh in sorted((tiny_dataset / "meshes").glob("*.obj"))[:5]:
        (assets / mesh.name).write_bytes(mesh.read_bytes())
    real_write, calls = os.write, []

    def write(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "manifest.jsonl":
            calls.append(len(data))
            if len(calls) == 3:
                real_write(fd, bytes(data)[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(manifest_module.os, "write", write)
    result = run(capfd, box, "batch", assets, "--model", tiny_massing_unet_onnx, "--out", box.out,
                 "--quiet")
    assert_refused(result, "manifest", "no space left", "stopped", command="batch")
    records = manifest_records(box.out)                   # strict JSON, whole lines
    assert len(records) == 2
    text = (box.out / "manifest.jsonl").read_text()
    assert text.endswith("\n") and not [p for p in box.out.rglob("*.tmp")]


def test_generate_on_a_full_disk(capfd, box, small_disk):
    result = run(capfd, box, "generate", "buildings", "--count", 40, "--out", small_disk / "ds",
                 "--quiet", "--workers", 1)
    assert_refused(result, "no space left", command="generate")
    assert not [p for p in (small_disk / "ds").rglob("*.tmp")]


def test_train_on_a_full_disk(capfd, box, small_disk, tiny_dataset):
    result = run(capfd, box, "train", "building-parts", "--data", tiny_dataset, "--out",
                 small_disk / "run", "--config", "tiny_parts_unet3d", "--quiet",
                 "--set", "training.epochs=1", "--set", "model.width=16")
    assert_refused(result, "no space left", command="train")
    assert not [p for p in (small_disk / "run").rglob("*.tmp")]
