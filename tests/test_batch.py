"""``proc-ml batch``: broken assets, resuming, kills, timeouts, path safety (local executor).

Real model runs use the conftest fixtures: the massing-only U-Net for meshes (meshes carry
no style features) and the style-aware ``tiny_unet_onnx`` for dataset grids. The timeout and
worker-crash tests use a small test task (``_open_test_task`` below) to make an asset hang
or kill its worker on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from proc_ml.batch import (FAILED, OK, SKIPPED, AssetError, BatchSettings, BatchTask, Limits,
                           TaskOutput, load_asset, read_records, run_batch, walk_assets)
from proc_ml.batch.items import item_out_dir
from proc_ml.cli import main
from proc_ml.errors import ProcMLError
from proc_ml.fileio import write_text

REPO = Path(__file__).resolve().parents[1]
# parts.ply, parts.glb, input_parts.ply, faces.csv, summary.json (parts.png only with --pictures)
FILES_PER_MESH = 5


# -- asset folders ---------------------------------------------------------------------------

def generate_meshes(out: Path, count: int, seed: int = 11) -> Path:
    """``count`` buildings as OBJ/PLY/GLB meshes (3 files each) via ``proc-ml generate``."""
    assert main(["generate", "buildings", "--count", str(count), "--seed", str(seed), "--out",
                 str(out), "--formats", "meshes", "--set", "grid.size=[12,12,12]",
                 "--workers", "1", "--quiet"]) == 0
    return out / "meshes"


def _box_obj(scale: float = 1.0, extra: str = "") -> str:
    import trimesh

    return trimesh.creation.box(extents=(scale, scale, scale)).export(file_type="obj") + extra


def _empty_glb() -> bytes:
    doc = json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": []}], "scene": 0}).encode()
    doc += b" " * (-len(doc) % 4)
    return (struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON")
            + doc)


def write_broken_assets(folder: Path, good_glb: Path, good_ply: Path) -> dict[str, str]:
    """One file per kind of breakage; returns name -> a word its error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    glb, ply = good_glb.read_bytes(), good_ply.read_bytes()
    files = {
        "empty.obj": (b"", "0 bytes"),
        "truncated.glb": (glb[:len(glb) // 2], "GLB"),
        "truncated.ply": (ply[:len(ply) // 2], "PLY"),
        "truncated.stl": (b"\0" * 80 + struct.pack("<I", 10) + b"\0" * 100, "truncated"),
        "notes.obj": (b"this is a shopping list\nnot a mesh\n", "no mesh data"),
        "notes.off": (b"hello world\n", "OFF"),
        "notes.gltf": (b"hello world\n", "JSON"),
        "nan.obj": (b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "NaN"),
        "inf.obj": (b"v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n", "infinite"),
        "points_only.obj": (b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
        "empty_scene.glb": (_empty_glb(), "empty"),
        "huge_extent.obj": (_box_obj(5000.0).encode(), "cells"),
        "huge_file.obj": (_box_obj(2.0, "#" * 300_000 + "\n").encode(), "bytes"),
        "bad.npz": (b"PK\x03\x04 not really a zip", "npz"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: word for name, (_, word) in files.items()}


@pytest.fixture(scope="module")
def asset_folder(tmp_path_factory):
    """~21 good meshes (7 buildings x OBJ/PLY/GLB) plus one broken file of every kind."""
    root = tmp_path_factory.mktemp("batch_assets")
    meshes = generate_meshes(root / "gen", 7)
    assets = root / "assets"
    shutil.copytree(meshes, assets / "town")
    broken = write_broken_assets(assets / "broken", meshes / "b000000.glb", meshes / "b000000.ply")
    good = sorted(f"town/{p.name}" for p in meshes.iterdir())
    return assets, good, {f"broken/{k}": v for k, v in broken.items()}


def batch_cli(assets, out, model, *extra) -> int:
    return main(["batch", str(assets), "--model", str(model), "--out", str(out), "--quiet",
                 "--max-bytes", "200000", *map(str, extra)])


def check_ok_outputs_load(out: Path, records: dict) -> int:
    """Every output of every ok/skipped record exists, is complete and parses."""
    import trimesh

    checked = 0
    for record in records.values():
        if record["status"] not in (OK, SKIPPED):
            continue
        assert record["outputs"], record
        for rel in record["outputs"]:
            path = out / rel
            if path.suffix in (".ply", ".glb"):
                loaded = trimesh.load(path, process=False)
                assert len(getattr(loaded, "faces", [])) or len(loaded.geometry)
            elif path.suffix == ".json":
                assert json.loads(path.read_text())["faces"] == record["summary"]["faces"]
            elif path.suffix == ".csv":
                assert path.read_text().splitlines()[0].startswith("building_id")
            elif path.suffix == ".png":
                assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            checked += 1
    return checked


def visible_temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*.tmp")]


# -- asset validation (no model) --------------------------------------------------------------

def test_every_kind_of_broken_asset_is_one_clear_line(asset_folder):
    assets, good, broken = asset_folder
    limits = Limits(max_bytes=200_000, max_cells=64 ** 3)
    for rel, word in broken.items():
        if rel.endswith("huge_extent.obj"):
            continue   # only the grid-size check of the parts task catches it (tested below)
        with pytest.raises(AssetError) as err:
            load_asset(assets / rel, limits)
        message = str(err.value)
        assert "\n" not in message and word.lower() in message.lower(), (rel, message)
    assert load_asset(assets / good[0], limits).kind == "mesh"


def test_pcd_reader_ascii_binary_and_truncated(tmp_path):
    points = np.array([[0, 0, 0], [1, 2, 3], [4, 5, 6]], dtype=np.float32)
    header = ("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\n"
              "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA {}\n")
    (tmp_path / "a.pcd").write_text(header.format("ascii") + "\n".join(" ".join(map(str, p)) for p in points))
    (tmp_path / "b.pcd").write_bytes(header.format("binary").encode() + points.tobytes())
    (tmp_path / "c.pcd").write_bytes(header.format("binary").encode() + points.tobytes()[:20])
    for name in ("a.pcd", "b.pcd"):
        np.testing.assert_allclose(load_asset(tmp_path / name).vertices, points)
    with pytest.raises(AssetError, match="truncated"):
        load_asset(tmp_path / "c.pcd")


def test_walker_is_sorted_skips_hidden_out_and_reports_bad_symlinks(tmp_path):
    root = tmp_path / "assets"
    for rel in ("b/z.obj", "a.ply", "b/a.OBJ", ".hidden/x.obj", "c.txt", "out/old.obj", "b/.x.obj"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("v 0 0 0\n")
    (tmp_path / "outside.obj").write_text("v 0 0 0\n")
    (root / "link_out.obj").symlink_to(tmp_path / "outside.obj")
    (root / "link_in.obj").symlink_to(root / "a.ply")
    (root / "dangling.obj").symlink_to(root / "missing.obj")
    (root / "loop").symlink_to(root, target_is_directory=True)
    found = walk_assets(root, ("obj", "ply"), exclude=[root / "out"])
    assert [f.rel for f in found] == ["a.ply", "b/a.OBJ", "b/z.obj", "dangling.obj",
                                      "link_in.obj", "link_out.obj"]
    problems = {f.rel: f.problem for f in found if f.problem}
    assert set(problems) == {"dangling.obj", "link_out.obj"}
    assert "outside the asset folder" in problems["link_out.obj"]
    assert [f.rel for f in walk_assets(root, ("obj",), exclude=[root / "out"])][0] == "b/a.OBJ"


def test_manifest_tolerates_a_truncated_line_and_latest_record_wins(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"asset": "a.obj", "status": "failed"}\n{"asset": "a.obj", "status": "ok"}\n'
                    '{"asset": "b.obj", "status": "ok"}\n{"asset": "c.obj", "sta')
    records, damaged = read_records(path)
    assert {k: r["status"] for k, r in records.items()} == {"a.obj": "ok", "b.obj": "ok"}
    assert damaged == 1


def test_output_paths_cannot_leave_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for rel in ("../escape.obj", "/etc/passwd", "a/../../escape.obj"):
        with pytest.raises(ProcMLError):
            item_out_dir(out, rel)
    (tmp_path / "elsewhere").mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ProcMLError, match="leave the output folder"):
        item_out_dir(out, "sub/house.obj")


def test_tasks_without_their_model_family_are_refused(tmp_path, capsys, monkeypatch):
    from proc_ml.batch import TASKS, get_task

    (tmp_path / "model.onnx").write_bytes(b"x")
    monkeypatch.setitem(TASKS, "texture", BatchTask("texture", "later", "pix2pix", None, ("obj",)))
    code = main(["batch", str(tmp_path), "--task", "texture", "--model", str(tmp_path / "model.onnx"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "not available" in err and "texture" in err
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    assert get_task("texture").available          # pix2pix is in (tests/test_pix2pix.py)


def test_batch_inference_path_never_imports_torch():
    code = ("import sys; import proc_ml.batch.parts, proc_ml.batch.local, proc_ml.predict.parts, "
            "proc_ml.render, proc_ml.formats.labelled_mesh, proc_ml.formats.faces_csv, proc_ml.commands.batch; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# -- the parts task on a real folder ---------------------------------------------------------

def test_files_of_types_a_task_does_not_read_are_said_not_passed_over(tiny_massing_unet_onnx,
                                                                      tmp_path, capsys):
    """A studio folder of FBX and .blend files: the batch does not "succeed" on nothing; in a
    mixed folder the summary counts what it did not read (materials and textures aside)."""
    assets = tmp_path / "dcc"
    assets.mkdir()
    for name in ("a.fbx", "b.fbx", "c.blend", "house.mtl", "wall.jpg", "notes.txt"):
        (assets / name).write_bytes(b"x")
    others: dict = {}
    assert walk_assets(assets, ("obj",), others=others) == []
    assert others == {".fbx": 2, ".blend": 1}
    assert batch_cli(assets, tmp_path / "o1", tiny_massing_unet_onnx) == 1
    err = capsys.readouterr().err
    assert "no asset of a type the parts task reads (3 other files: 2 .fbx, 1 .blend)" in err
    (assets / "house.obj").write_text(_box_obj(9.0))
    assert batch_cli(assets, tmp_path / "o2", tiny_massing_unet_onnx) == 0
    assert "not read: 3 other files: 2 .fbx, 1 .blend" in capsys.readouterr().out


def test_batch_processes_good_assets_records_broken_ones_and_resumes(
        asset_folder, tiny_massing_unet_onnx, tmp_path, capsys):
    assets, good, broken = asset_folder
    out = tmp_path / "out"
    assert batch_cli(assets, out, tiny_massing_unet_onnx, "--workers", "2") == 2
    printed = capsys.readouterr()
    records, damaged = read_records(out / "manifest.jsonl")
    assert damaged == 0 and sorted(records) == sorted(good + list(broken))
    for rel in good:
        assert records[rel]["status"] == OK, records[rel]
        assert records[rel]["summary"]["faces"] > 0
    for rel, word in broken.items():
        error = records[rel]["error"]
        assert records[rel]["status"] == FAILED and "\n" not in error, (rel, error)
        assert word.lower() in error.lower(), (rel, error)
        assert rel in printed.err
    assert check_ok_outputs_load(out, records) == FILES_PER_MESH * len(good)
    assert (out / "manifest.csv").read_text().count("\n") == len(records) + 1
    assert "faces per part" in printed.out

    # Rerun: every unchanged good asset is skipped (broken ones are retried and fail again).
    assert batch_cli(assets, out, tiny_massing_unet_onnx, "--workers", "2") == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert {records[rel]["status"] for rel in good} == {SKIPPED}

    # Edit one asset (content, not the mtime): exactly that one is redone.
    edited = assets / good[1]
    try:
        original = edited.read_bytes()
        edited.write_bytes(original + b"\n# edited\n")
        assert batch_cli(assets, out, tiny_massing_unet_onnx, "--workers", "2") == 2
        records, _ = read_records(out / "manifest.jsonl")
        redone = [rel for rel in good if records[rel]["status"] == OK]
        assert redone == [good[1]]
    finally:
        edited.write_bytes(original)
    assert check_ok_outputs_load(out, records) == FILES_PER_MESH * len(good)
    assert not visible_temp_files(out)


def test_an_asset_deleted_between_runs_leaves_the_manifest_and_out(tiny_massing_unet_onnx,
                                                                    tmp_path, capsys):
    """A deleted asset's record and outputs go on the next run; an asset only passed over
    (another --extensions) still exists and keeps both."""
    assets, out = tmp_path / "assets", tmp_path / "out"
    (assets / "many").mkdir(parents=True)
    for name, size in (("a.obj", 9.0), ("b.obj", 12.0)):
        (assets / "many" / name).write_text(_box_obj(size))
    trimesh.creation.box(extents=(9.0, 9.0, 9.0)).export(assets / "c.stl")
    assert batch_cli(assets, out, tiny_massing_unet_onnx) == 0
    records, _ = read_records(out / "manifest.jsonl")
    assert sorted(records) == ["c.stl", "many/a.obj", "many/b.obj"]
    b_outputs = records["many/b.obj"]["outputs"]
    assert b_outputs and all((out / rel).is_file() for rel in b_outputs)
    capsys.readouterr()
    (assets / "many" / "b.obj").unlink()
    assert batch_cli(assets, out, tiny_massing_unet_onnx, "--extensions", "obj") == 0
    assert "gone: 1 assets of earlier runs are no longer in the asset folder (many/b.obj)" in \
        capsys.readouterr().out
    records, _ = read_records(out / "manifest.jsonl")
    assert sorted(records) == ["c.stl", "many/a.obj"]          # c.stl: passed over, kept
    assert not any((out / rel).exists() for rel in b_outputs)
    assert not (out / "many" / "b.obj").exists()
    assert all((out / rel).is_file() for rel in records["c.stl"]["outputs"])
    assert "many/b.obj" not in (out / "manifest.csv").read_text()


def test_a_name_with_a_newline_fails_on_one_line(tiny_massing_unet_onnx, tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "bad\nname.obj").write_text("not a mesh\n")
    (assets / "house.obj").write_text(_box_obj(9.0))
    assert batch_cli(assets, tmp_path / "out", tiny_massing_unet_onnx) == 2
    err = capsys.readouterr().err
    assert "  bad\\nname.obj: no mesh data found" in err
    assert str(assets) not in err and err.count("\n") == 2      # header + the one failure
    records, _ = read_records(tmp_path / "out" / "manifest.jsonl")
    assert records["bad\nname.obj"]["error"].startswith("no mesh data found")


def test_dataset_grids_with_the_style_aware_model(tiny_dataset, tiny_unet_onnx, tmp_path):
    dataset = tmp_path / "dataset"            # 4 grids and the dataset.yaml beside them
    (dataset / "grids").mkdir(parents=True)
    shutil.copy(tiny_dataset / "dataset.yaml", dataset)
    for grid in sorted((tiny_dataset / "grids").glob("*.npz"))[:4]:
        shutil.copy(grid, dataset / "grids")
    out = tmp_path / "out"
    assert batch_cli(dataset / "grids", out, tiny_unet_onnx, "--workers", "1") == 0
    records, _ = read_records(out / "manifest.jsonl")
    assert len(records) == 4
    assert all(r["status"] == OK and 0.0 <= r["summary"]["accuracy"] <= 1.0 for r in records.values())
    # --force redoes everything even though nothing changed.
    assert batch_cli(dataset / "grids", out, tiny_unet_onnx, "--force") == 0
    assert {r["status"] for r in read_records(out / "manifest.jsonl")[0].values()} == {OK}
    # No picture unless asked; summaries name their files relative to the asset's folder.
    first = sorted(records)[0]
    summary = json.loads((item_out_dir(out, first) / "summary.json").read_text())
    assert "parts.png" not in summary["files"] and not Path(summary["files"][0]).is_absolute()
    assert not (item_out_dir(out, first) / "parts.png").exists()
    # --pictures changes the outputs, so it is part of the skip hash: everything is redone.
    assert batch_cli(dataset / "grids", out, tiny_unet_onnx, "--pictures") == 0
    assert {r["status"] for r in read_records(out / "manifest.jsonl")[0].values()} == {OK}
    assert (item_out_dir(out, first) / "parts.png").read_bytes()[:4] == b"\x89PNG"


def test_symlinks_and_out_inside_the_asset_folder(asset_folder, tiny_massing_unet_onnx, tmp_path):
    _, good, _ = asset_folder
    source = asset_folder[0] / next(rel for rel in good if rel.endswith(".obj"))
    assets = tmp_path / "assets"
    (assets / "sub").mkdir(parents=True)
    shutil.copy(source, assets / "house.obj")
    shutil.copy(source, assets / "sub" / "house.obj")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "outside.obj").write_bytes(source.read_bytes())
    (assets / "escape.obj").symlink_to(tmp_path / "secret" / "outside.obj")
    out = assets / "out"                          # OUT inside ASSET_DIR: never walked
    (out / "sub").parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)   # a trap inside OUT
    assert batch_cli(assets, out, tiny_massing_unet_onnx) == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert sorted(records) == ["escape.obj", "house.obj", "sub/house.obj"]
    assert records["house.obj"]["status"] == OK
    assert "outside the asset folder" in records["escape.obj"]["error"]
    assert "leave the output folder" in records["sub/house.obj"]["error"]
    assert list(elsewhere.iterdir()) == [] and list((tmp_path / "secret").iterdir()) == [
        tmp_path / "secret" / "outside.obj"]


def test_sigkill_mid_run_then_rerun_leaves_no_partial_output(tmp_path, tiny_massing_unet_onnx):
    assets = generate_meshes(tmp_path / "gen", 6, seed=5)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "proc_ml", "batch", str(assets), "--model",
           str(tiny_massing_unet_onnx), "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("*/summary.json"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the batch finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)     # the driver and its workers, mid-write
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    records, _ = read_records(out / "manifest.jsonl")
    check_ok_outputs_load(out, records)        # what was recorded ok before the kill is whole
    with open(out / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"asset": "b000005.obj", "status": "o')   # as if killed mid-record
    assert batch_cli(assets, out, tiny_massing_unet_onnx) == 0
    records, damaged = read_records(out / "manifest.jsonl")
    assert damaged == 0 and len(records) == 18
    assert {r["status"] for r in records.values()} <= {OK, SKIPPED}
    assert check_ok_outputs_load(out, records) == FILES_PER_MESH * 18
    assert not visible_temp_files(out)


# -- executor mechanics with a test task: time limit and crashing workers ----------------------

def _open_test_task(model_path, options, limits):
    """A task whose assets can hang or kill their worker; others get a one-line summary."""
    def process(asset_path: Path, out_dir: Path) -> TaskOutput:
        if "hang" in asset_path.name:
            time.sleep(120)
        if "crash" in asset_path.name:
            os.kill(os.getpid(), signal.SIGKILL)
        asset = load_asset(asset_path, limits)
        write_text(out_dir / "count.txt", f"{len(asset.faces)}\n")
        return TaskOutput(["count.txt"], {"faces": {"all": int(len(asset.faces))}})
    return process


TEST_TASK = BatchTask("test", "test task", "none", f"{__name__}:_open_test_task", ("obj",))


def test_timeout_and_crashed_workers_fail_one_asset_each(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("a.obj", "b_hang.obj", "c.obj", "d_crash.obj", "e.obj", "f_hang.obj", "g.obj"):
        (assets / name).write_text(_box_obj())
    (tmp_path / "model.bin").write_bytes(b"test")
    settings = BatchSettings(str(assets), str(tmp_path / "out"), model=str(tmp_path / "model.bin"),
                             workers=2, timeout=4.0, progress=False)
    start = time.monotonic()
    report = run_batch(settings, TEST_TASK)
    assert time.monotonic() - start < 60
    records, _ = read_records(tmp_path / "out" / "manifest.jsonl")
    assert {k: r["status"] for k, r in records.items()} == {
        "a.obj": OK, "b_hang.obj": FAILED, "c.obj": OK, "d_crash.obj": FAILED, "e.obj": OK,
        "f_hang.obj": FAILED, "g.obj": OK}
    assert "timed out after 4s" in records["b_hang.obj"]["error"]
    assert "died" in records["d_crash.obj"]["error"] and "SIGKILL" in records["d_crash.obj"]["error"]
    assert report.exit_code == 2 and len(report.failures) == 3
    assert (tmp_path / "out" / "g.obj" / "count.txt").read_text() == "12\n"


@pytest.mark.slow
def test_acceptance_200_meshes_plus_broken(tmp_path, tiny_massing_unet_onnx):
    meshes = generate_meshes(tmp_path / "gen", 67, seed=21)          # 201 meshes
    assets = tmp_path / "assets"
    shutil.copytree(meshes, assets / "city")
    broken = write_broken_assets(assets / "broken", meshes / "b000000.glb", meshes / "b000000.ply")
    out = tmp_path / "out"
    assert batch_cli(assets, out, tiny_massing_unet_onnx, "--workers", "2", "--timeout", "120") == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert sum(r["status"] == OK for r in records.values()) == 201
    assert {rel.split("/", 1)[1] for rel, r in records.items() if r["status"] == FAILED} == set(broken)
    assert check_ok_outputs_load(out, records) == FILES_PER_MESH * 201
    assert batch_cli(assets, out, tiny_massing_unet_onnx, "--workers", "2") == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert sum(r["status"] == SKIPPED for r in records.values()) == 201
