"""``proc-ml batch --executor ray``: same outputs and manifest as the local executor.

Runs on a private local Ray with 2 CPUs that the command starts and stops itself.
"""

from __future__ import annotations

import filecmp
import shutil

import pytest

from proc_ml.batch import FAILED, OK, SKIPPED, read_records
from proc_ml.cli import main

pytest.importorskip("ray")

from test_batch import FILES_PER_MESH, generate_meshes, visible_temp_files, write_broken_assets  # noqa: E402


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith(("manifest.", ".proc-ml")))


def _batch(assets, out, model, *extra) -> int:
    return main(["batch", str(assets), "--model", str(model), "--out", str(out), "--quiet",
                 "--workers", "2", "--max-bytes", "200000", *extra])


def test_ray_and_local_executors_write_identical_outputs(tmp_path, tiny_massing_unet_onnx):
    meshes = generate_meshes(tmp_path / "gen", 1, seed=8)
    assets = tmp_path / "assets"
    shutil.copytree(meshes, assets / "town")
    broken = write_broken_assets(assets / "broken", meshes / "b000000.glb", meshes / "b000000.ply")
    out = tmp_path / "out"       # same OUT path for both: summary.json names its own files

    assert _batch(assets, out, tiny_massing_unet_onnx) == 2
    local = tmp_path / "out_local"
    out.rename(local)
    assert _batch(assets, out, tiny_massing_unet_onnx, "--executor", "ray", "--timeout", "120") == 2

    files = _tree(local)
    assert files == _tree(out) and len(files) == FILES_PER_MESH * 3
    match, mismatch, errors = filecmp.cmpfiles(local, out, files, shallow=False)
    assert not mismatch and not errors
    ray_records, _ = read_records(out / "manifest.jsonl")
    local_records, _ = read_records(local / "manifest.jsonl")
    keys = ("status", "error", "outputs", "summary", "asset_sha256", "model_sha256", "settings_sha256")
    assert ({a: [r[k] for k in keys] for a, r in ray_records.items()}
            == {a: [r[k] for k in keys] for a, r in local_records.items()})
    assert sum(r["status"] == FAILED for r in ray_records.values()) == len(broken)
    assert sum(r["status"] == OK for r in ray_records.values()) == 3
    assert not visible_temp_files(out)

    # A local rerun over the Ray run's OUT skips every good asset: the records are the same.
    assert _batch(assets, out, tiny_massing_unet_onnx) == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert sum(r["status"] == SKIPPED for r in records.values()) == 3
