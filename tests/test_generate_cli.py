"""``proc-ml generate buildings``: acceptance runs and one-line errors."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from proc_ml.cli import main
from proc_ml.datasets import (open_dataset, read_faces_csv, read_labelled_mesh,
                              read_point_cloud)
from proc_ml.procedural import ARCHETYPES

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_CONFIGS = SAMPLE_DATA / "configs"


def run_cli(capsys, *args):
    code = main(["generate", "buildings", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_dataset(out: Path, count: int, per_building_points: int):
    ds = open_dataset(out)
    manifest = ds.manifest
    assert manifest["count"] == count and ds.ids() == list(range(count))
    n_val, n_test = round(count * 0.1), round(count * 0.1)
    assert [len(ds.ids(s)) for s in ("train", "val", "test")] == [count - n_val - n_test, n_val, n_test]
    cells = faces = 0
    for i in ds.ids():
        rec = ds.building(i)                          # validates shapes and face labels
        cells += int(rec.occupancy.sum())
        faces += int((rec.labels >= 0).sum())
    assert (manifest["stats"]["cells"], manifest["stats"]["faces"]) == (cells, faces)
    ids, one_hot = read_faces_csv(out / "faces.csv", ds.parts)
    assert len(ids) == cells and int(one_hot.sum()) == faces
    for ext in ("ply", "glb", "obj"):
        mesh, labels = read_labelled_mesh(out / "meshes" / f"b{count - 1:06d}.{ext}", ds.parts)
        assert len(labels) == len(mesh.faces) > 0
    pts, _, _ = read_point_cloud(out / "points" / f"b{count - 1:06d}.ply")
    assert len(pts) == per_building_points
    return manifest


def test_generate_small_dataset(capsys, tmp_path):
    out = tmp_path / "ds"
    code, stdout, stderr = run_cli(capsys, "--count", 24, "--seed", 7, "--out", out, "--workers", 2,
                                   "--set", "points.per_building=256", "--set", "grid.size=[12,12,12]")
    assert code == 0 and stderr == ""
    assert stdout.startswith("wrote 24 buildings (") and stdout.count("\n") == 1
    assert "[faces, adjacency, grids, meshes, points]" in stdout
    manifest = check_dataset(out, 24, 256)
    assert manifest["grid_size"] == [12, 12, 12] and manifest["seed"] == 7


def test_acceptance_200_buildings(capsys, tmp_path):
    """The issue's acceptance command, default config and every format (~5 s, 15 s on a busy CPU)."""
    out = tmp_path / "D"
    code, stdout, stderr = run_cli(capsys, "--count", 200, "--seed", 7, "--out", out)
    assert code == 0 and stderr == ""
    manifest = check_dataset(out, 200, 2048)
    assert all(manifest["stats"]["buildings_per_archetype"][a] > 0 for a in ARCHETYPES)
    per_part = manifest["stats"]["faces_per_part"]
    # the facade grammar draws no balconies and labels shop windows 'window'
    # (facade.shopfront_part), as LoD3 surveys record them; every other part occurs
    assert per_part["balcony"] == per_part["shopfront"] == 0
    assert all(n > 0 for p, n in per_part.items() if p not in ("balcony", "shopfront"))


def test_config_file_formats_and_layout(capsys, tmp_path):
    out = tmp_path / "ds"
    code, stdout, _ = run_cli(capsys, "--count", 5, "--seed", 1, "--out", out, "--config",
                              SAMPLE_CONFIGS / "custom_vocabulary.yaml", "--formats", "faces,grids",
                              "--layout", "opara")
    assert code == 0 and "[faces, grids]" in stdout
    manifest = yaml.safe_load((out / "dataset.yaml").read_text())
    assert manifest["parts"][-1] == "chimney" and manifest["layout"] == "opara"
    assert sorted(p.name for p in out.iterdir()) == ["buildings.csv", "dataset.yaml", "faces.csv",
                                                     "grids", "labels.json"]
    _, one_hot = read_faces_csv(out / "faces.csv", manifest["parts"], layout="opara")
    assert one_hot.shape[1:] == (6, 7)


def test_same_seed_same_bytes_through_the_cli(capsys, tmp_path):
    hashes = []
    for workers, name in ((1, "a"), (2, "b")):
        run_cli(capsys, "--count", 20, "--seed", 3, "--out", tmp_path / name, "--workers", workers,
                "--set", "points.per_building=64")
        root = tmp_path / name
        hashes.append({str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in sorted(root.rglob("*")) if p.is_file()})
    assert hashes[0] == hashes[1] and len(hashes[0]) == 5 + 20 * 6


@pytest.mark.parametrize("args,message", [
    (["--formats", "grids,voxels"], "--formats: unknown format 'voxels' (choose from faces, "
                                    "adjacency, grids, meshes, points or all)"),
    (["--set", "grid.sise=[8,8,8]"], "--set grid.sise=[8,8,8]: unknown config key 'grid.sise' "
                                     "(did you mean 'grid.size'?)"),
    (["--set", "noise=2"], "--set noise=2: config key 'noise' must be in [0, 1], got 2.0"),
    (["--count", "0"], "--count must be >= 1, got 0"),
    (["--seed", "-2"], "--seed must be >= 0, got -2"),
])
def test_errors_print_one_line(capsys, tmp_path, args, message):
    code, stdout, stderr = run_cli(capsys, "--out", tmp_path / "ds", "--count", 3, *args)
    assert code == 1 and stdout == ""
    assert stderr == f"proc-ml generate: error: {message}\n"


def test_config_file_errors_name_the_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  size: [8, 8\n")
    code, _, stderr = run_cli(capsys, "--out", tmp_path / "ds", "--config", bad)
    assert code == 1 and stderr.count("\n") == 1
    assert stderr.startswith(f"proc-ml generate: error: {bad}: line ") and "invalid YAML" in stderr
    bad.write_text("parts: [wall, roof]\n")
    code, _, stderr = run_cli(capsys, "--out", tmp_path / "ds", "--config", bad)
    assert stderr == "proc-ml generate: error: parts: vocabulary must contain ground\n"
    code, _, stderr = run_cli(capsys, "--out", tmp_path / "ds", "--config", tmp_path / "nope.yaml")
    assert stderr == f"proc-ml generate: error: {tmp_path / 'nope.yaml'}: config file not found\n"


def test_real_subprocess_error_has_no_traceback(tmp_path):
    beside_python = Path(sys.executable).with_name("proc-ml")    # the venv's console script
    exe = str(beside_python) if beside_python.exists() else shutil.which("proc-ml")
    cmd = [exe] if exe else [sys.executable, "-m", "proc_ml"]
    result = subprocess.run(cmd + ["generate", "buildings", "--count", "2", "--out", str(tmp_path / "d"),
                                   "--formats", "meshs"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "proc-ml generate: error: --formats: unknown format 'meshs' (choose from faces, adjacency, "
        "grids, meshes, points or all)"]
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_shipped_sample_data_is_reproducible(capsys, tmp_path):
    """sample_data/buildings is exactly what the command in sample_data/README.md writes."""
    out = tmp_path / "buildings"
    code, _, _ = run_cli(capsys, "--config", SAMPLE_CONFIGS / "sample_dataset.yaml", "--count", 20,
                         "--seed", 81, "--out", out, "--workers", 2)
    assert code == 0
    shipped = SAMPLE_DATA / "buildings"
    names = sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    parts = open_dataset(shipped).parts
    for name in names:
        if name.startswith("meshes/"):     # written by trimesh, whose bytes vary by version
            _, shipped_labels = read_labelled_mesh(shipped / name, parts)
            _, labels = read_labelled_mesh(out / name, parts)
            np.testing.assert_array_equal(np.sort(shipped_labels), np.sort(labels))
        else:
            assert (shipped / name).read_bytes() == (out / name).read_bytes(), name
    check_dataset(shipped, 20, 512)


def test_usage_mistakes_get_one_line_naming_the_command(capsys):
    for argv, command in ((["generate", "buildings", "--count", "abc"], "proc-ml generate buildings"),
                          (["trian"], "proc-ml"), (["train"], "proc-ml train")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"{command}: error: "), err


def test_a_killed_generate_is_replaced_but_nothing_else_is(capsys, tmp_path):
    """What a killed generate leaves (its lock file, temp tables, some grids, no dataset.yaml)
    is replaced by a rerun without --overwrite; a user's file beside it, or a generate still
    holding the lock, is refused and nothing is removed."""
    from proc_ml.exporters.dataset import LOCK_NAME
    from proc_ml.fileio import FolderLock

    out = tmp_path / "D"
    (out / "grids").mkdir(parents=True)
    (out / "grids" / "b000000.npz").write_bytes(b"half")
    (out / ".faces.csv.0123456789ab.tmp").write_text("id\n")
    (out / LOCK_NAME).write_text("")
    with FolderLock(out, LOCK_NAME, "generate"):          # still running: refused
        code, _, err = run_cli(capsys, "--count", 3, "--seed", 1, "--out", out)
        assert code == 1 and "another proc-ml generate is writing" in err
    (out / "notes.txt").write_text("mine")               # not generate's: refused
    code, _, err = run_cli(capsys, "--count", 3, "--seed", 1, "--out", out)
    assert code == 1 and "the folder is not empty" in err
    assert (out / "grids" / "b000000.npz").read_bytes() == b"half"
    (out / "notes.txt").unlink()
    code, _, err = run_cli(capsys, "--count", 3, "--seed", 1, "--out", out, "--formats", "grids")
    assert code == 0 and err == ""
    assert sorted(p.name for p in out.iterdir()) == ["buildings.csv", "dataset.yaml", "grids",
                                                     "labels.json"]
    assert open_dataset(out).ids() == [0, 1, 2]
