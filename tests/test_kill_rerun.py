"""SIGKILL mid-run, then rerun: generate, train and batch leave no temp file, no lock, no
orphaned worker still writing, and end with outputs identical to an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "proc_ml", *[str(a) for a in args]]


def _hashes(root: Path, skip=()) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_when(proc, ready, timeout=180) -> list[int]:
    """SIGKILL ``proc`` alone (not its group) once ``ready()``; returns its children then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "the command finished before it could be killed"
    children = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return children


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker death uses prctl")
def test_generate_killed_then_rerun(tmp_path):
    args = ("generate", "buildings", "--count", 320, "--seed", 4, "--workers", 2, "--quiet",
            "--set", "grid.size=[12,12,12]", "--formats", "grids,faces,adjacency,meshes")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", killed), env=ENV, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = _kill_when(proc, lambda: len(list((killed / "grids").glob("*.npz"))) >= 32)
    assert workers, "generate used no worker processes"
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed generate"
    frozen = _hashes(killed)
    time.sleep(2.0)
    assert _hashes(killed) == frozen, "files were written after generate was killed"
    assert any(p.name.endswith(".tmp") for p in killed.rglob("*")), "no table was mid-write"

    subprocess.run(_cli(*args, "--out", killed), env=ENV, cwd=tmp_path, check=True)
    straight = tmp_path / "straight"
    subprocess.run(_cli(*args, "--out", straight), env=ENV, cwd=tmp_path, check=True)
    assert not _temps(killed) and not _temps(straight)
    assert _hashes(killed) == _hashes(straight)


def test_train_killed_then_resumed(tmp_path, tiny_dataset):
    args = ("train", "building-parts", "--data", tiny_dataset, "--config", "tiny_parts_unet3d",
            "--quiet", "--set", "training.epochs=4", "--set", "training.threads=1",
            "--set", "model.width=2", "--device", "cpu")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", killed), env=ENV, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    _kill_when(proc, lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 1)
    # what a kill inside a checkpoint or plot write leaves behind
    for stale in (killed / "plots" / ".confusion.png.0123456789ab.tmp",
                  killed / "checkpoints" / ".last.pt.ba9876543210.tmp"):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"half a file")
    resume = [a for a in args if a not in ("--config", "tiny_parts_unet3d")]
    subprocess.run(_cli(*resume, "--out", killed, "--resume"), env=ENV, cwd=tmp_path, check=True)
    straight = tmp_path / "straight"
    subprocess.run(_cli(*args, "--out", straight), env=ENV, cwd=tmp_path, check=True)
    assert not _temps(killed) and not _temps(straight)

    def history(run):
        return [{k: v for k, v in json.loads(line).items() if k != "time_s"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert history(killed) == history(straight)
    import torch

    a = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["models"]["model"]
    b = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)["models"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker death uses prctl")
def test_batch_killed_then_rerun(tmp_path, tiny_dataset, tiny_massing_unet_onnx):
    assets = tmp_path / "assets"
    assets.mkdir()
    for mesh in sorted((tiny_dataset / "meshes").glob("*")):
        (assets / mesh.name).write_bytes(mesh.read_bytes())
    args = ("batch", assets, "--model", tiny_massing_unet_onnx, "--workers", 2, "--quiet")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", killed), env=ENV, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = _kill_when(proc, lambda: len(list(killed.glob("*/summary.json"))) >= 6)
    time.sleep(0.5)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed batch"
    subprocess.run(_cli(*args, "--out", killed), env=ENV, cwd=tmp_path, check=True)
    straight = tmp_path / "straight"
    subprocess.run(_cli(*args, "--out", straight), env=ENV, cwd=tmp_path, check=True)
    assert not [p for p in killed.rglob("*.tmp")]
    skip = ("manifest.jsonl", "manifest.csv", "summary.json", ".proc-ml-batch.lock")
    assert _hashes(killed, skip) == _hashes(straight, skip)

    def outcomes(out):
        return {json.loads(line)["asset"]: json.loads(line)["outputs"]
                for line in (out / "manifest.jsonl").read_text().splitlines()}

    assert outcomes(killed) == outcomes(straight)
