"""Nothing already written is lost, nothing is written outside the output folder, and a bad
input is one line naming it: the cases a bad-input audit of the CLI found (session 6)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from proc_ml.cli import main

DATA = Path(__file__).parent / "data" / "citygml"


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- predict building-parts / classify / segment: fixed output names ---------------------------
def test_predict_parts_never_replaces_a_dataset_table(tiny_dataset, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    before = (data / "faces.csv").read_bytes()
    code, _, err = run_cli(["predict", "building-parts", "--input", data / "grids" / "b000001.npz",
                            "--out", data], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "already holds faces.csv" in err and "not written by an earlier run" in err
    assert (data / "faces.csv").read_bytes() == before
    assert not (data / "summary.json").exists() and not (data / "parts.ply").exists()


def test_predict_parts_rerun_replaces_only_its_own_outputs(tiny_dataset, tmp_path, capsys):
    from proc_ml.predict.parts import OUTPUT_FILES

    grid = tiny_dataset / "grids" / "b000001.npz"
    out = tmp_path / "pred"
    assert run_cli(["predict", "building-parts", "--input", grid, "--out", out], capsys)[0] == 0
    first = json.loads((out / "summary.json").read_text())
    assert set(first["files"]) <= set(OUTPUT_FILES)
    (out / "notes.txt").write_text("mine")                     # a file of the user's: kept
    assert run_cli(["predict", "building-parts", "--input", grid, "--out", out], capsys)[0] == 0
    assert (out / "notes.txt").read_text() == "mine"
    (out / "summary.json").unlink()                            # no record: the outputs are foreign
    code, _, err = run_cli(["predict", "building-parts", "--input", grid, "--out", out], capsys)
    assert code == 1 and "already holds" in err and "parts.ply" in err


def test_predict_parts_never_writes_over_its_input(tiny_dataset, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    mesh = folder / "parts.ply"
    shutil.copy(tiny_dataset / "meshes" / "b000001.ply", mesh)
    before = mesh.read_bytes()
    code, _, err = run_cli(["predict", "building-parts", "--input", mesh, "--out", folder], capsys)
    assert code == 1 and "is the input" in err and "parts.ply" in err
    assert mesh.read_bytes() == before


def test_predict_parts_names_a_folder_given_as_input(tmp_path, capsys):
    code, _, err = run_cli(["predict", "building-parts", "--input", tmp_path, "--out",
                            tmp_path / "o"], capsys)
    assert code == 1 and f"{tmp_path}: a folder, not a building file" in err


def test_an_empty_building_names_its_file(tmp_path, capsys):
    from proc_ml.formats import grid_npz

    path = tmp_path / "empty.npz"
    occ = np.zeros((6, 6, 6), dtype=np.uint8)
    grid_npz.write(path, 0, "x", occ, None, np.zeros(9, dtype=np.float32))
    code, _, err = run_cli(["predict", "building-parts", "--input", path, "--out", tmp_path / "o"],
                           capsys)
    assert code == 1 and f"{path}: the occupancy grid (6x6x6 cells) is empty" in err


def test_replaceable_outputs_follow_the_earlier_runs_record(tmp_path):
    from proc_ml.errors import OutputError
    from proc_ml.fileio import check_replaceable

    names = ("a.txt", "summary.json")
    check_replaceable(tmp_path, names)                                 # nothing there
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(OutputError, match=r"already holds a\.txt"):
        check_replaceable(tmp_path, names)
    (tmp_path / "summary.json").write_text(json.dumps({"files": ["a.txt", "summary.json"]}))
    check_replaceable(tmp_path, names)                                 # an earlier run's
    (tmp_path / "summary.json").write_text("{broken")
    with pytest.raises(OutputError, match="a.txt, summary.json"):
        check_replaceable(tmp_path, names)
    with pytest.raises(OutputError, match="is the input"):
        check_replaceable(tmp_path, names, inputs=[tmp_path / "." / "a.txt"])


# -- predict texture ------------------------------------------------------------------------
def test_predict_texture_never_writes_over_its_input(tiny_pix2pix_onnx, tiny_facades, tmp_path, capsys):
    path, _ = tiny_pix2pix_onnx
    label = tmp_path / "in.png"
    shutil.copy(sorted((tiny_facades / "labels").iterdir())[0], label)
    before = label.read_bytes()
    code, _, err = run_cli(["predict", "texture", "--model", path, "--input", label, "--out", label],
                           capsys)
    assert code == 1 and "is the input" in err and label.read_bytes() == before
    code, _, err = run_cli(["predict", "texture", "--model", path, "--input", label, "--out",
                            tmp_path / "t.glb"], capsys)
    assert code == 1 and "(a .png file)" in err and not (tmp_path / "t.glb").exists()


def test_predict_texture_building_never_writes_over_its_input(tiny_dataset, tmp_path, capsys):
    glb = tmp_path / "in.glb"
    shutil.copy(tiny_dataset / "meshes" / "b000001.glb", glb)
    before = glb.read_bytes()
    code, _, err = run_cli(["predict", "texture", "--procedural", "--building", glb, "--out", glb],
                           capsys)
    assert code == 1 and "is the input" in err and glb.read_bytes() == before


def test_texturing_checks_the_atlas_against_the_memory_budget():
    from proc_ml.errors import LimitError
    from proc_ml.procedural.parts import DEFAULT_PARTS
    from proc_ml.real_buildings import geometry_baseline
    from proc_ml.textures.building import texture_building

    occ = np.ones((2, 2, 2), dtype=np.uint8)
    labels = geometry_baseline(occ, DEFAULT_PARTS)
    with pytest.raises(LimitError, match="texturing 4 facade sheets at 100000 px per module"):
        texture_building(occ, labels, DEFAULT_PARTS, None, module_px=100_000)


# -- import citygml -------------------------------------------------------------------------
def test_import_refuses_a_non_empty_out_and_overwrite_replaces_only_its_own(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "ds"
    shutil.copytree(tiny_dataset, out)
    (out / "mine.txt").write_text("mine")
    before = (out / "faces.csv").read_bytes()
    code, _, err = run_cli(["import", "citygml", DATA / "4018265.xml", "--out", out], capsys)
    assert code == 1 and "the folder is not empty" in err and "--overwrite" in err
    assert (out / "faces.csv").read_bytes() == before
    code, _, _ = run_cli(["import", "citygml", DATA / "4018265.xml", "--out", out, "--overwrite"],
                         capsys)
    assert code == 0 and (out / "mine.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["b000000.npz"]
    # the earlier dataset's 16 buildings are gone (import writes no points/)
    assert all(p.name.startswith("b000000.") for p in (out / "meshes").iterdir())
    assert not (out / "points").exists()


def test_a_bad_seed_is_refused_before_overwrite_removes_the_dataset(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "ds"
    shutil.copytree(tiny_dataset, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = run_cli(["import", "citygml", DATA / "4018265.xml", "--out", out,
                            "--overwrite", "--seed", "-1"], capsys)
    assert (code, err) == (1, "proc-ml import: error: --seed must be >= 0, got -1\n")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    for argv in (["predict", "classify", "--model", "m.onnx", "--input", "x.ply"],
                 ["predict", "segment", "--model", "m.onnx", "--input", "x.ply"],
                 ["generate", "buildings", "--count", "2"]):
        code, _, err = run_cli([*argv, "--out", tmp_path / "new", "--seed", 2 ** 32], capsys)
        assert code == 1 and err.endswith(f"error: --seed must be <= {2 ** 32 - 1}, got {2 ** 32}\n")
        assert not (tmp_path / "new").exists()


def test_an_overwrite_import_that_fails_while_writing_keeps_the_old_dataset(
        tiny_dataset, tmp_path, capsys, monkeypatch):
    import proc_ml.citygml.dataset as city_dataset

    out = tmp_path / "ds"
    shutil.copytree(tiny_dataset, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(city_dataset, "write_import_report", full_disk)
    code, _, err = run_cli(["import", "citygml", DATA / "4018265.xml", "--out", out,
                            "--overwrite"], capsys)
    assert code == 1 and "No space left on device" in err
    # the 16 generated buildings are all there, and nothing of the failed import
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in tiny_dataset.iterdir())


def test_a_failed_command_leaves_no_empty_out_folder_it_made(tmp_path, capsys):
    existing = tmp_path / "mine"
    existing.mkdir()
    for out in (tmp_path / "a" / "b", existing):
        code, _, err = run_cli(["predict", "classify", "--model", tmp_path / "none.onnx",
                                "--input", tmp_path / "x.ply", "--out", out], capsys)
        assert code == 1 and "model file not found" in err
    assert not (tmp_path / "a").exists() and existing.is_dir()


def test_import_of_a_folder_without_city_files_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["import", "citygml", tmp_path / "empty", "--out", tmp_path / "o"], capsys)
    assert code == 1 and "empty: no CityGML / CityJSON files" in err
    assert not (tmp_path / "o").exists()


def test_an_atomic_writes_error_names_the_target_not_its_temp_file():
    import errno

    from proc_ml.fileio import os_error_text

    exc = OSError(errno.EPERM, "Operation not permitted", "ro/.buildings.csv.4553de1e1e8a.tmp")
    assert os_error_text(exc) == "cannot use 'ro/buildings.csv': Operation not permitted"


@pytest.mark.parametrize("objects,message", [
    ([], "field 'CityObjects' must be an object (id -> city object), got list"),
    (None, "field 'CityObjects' is missing"),
])
def test_cityjson_city_objects_of_the_wrong_type(tmp_path, objects, message):
    from proc_ml.citygml import read_city_file
    from proc_ml.errors import DatasetError

    doc = {"type": "CityJSON", "version": "2.0", "vertices": [],
           "transform": {"scale": [1, 1, 1], "translate": [0, 0, 0]}}
    if objects is not None:
        doc["CityObjects"] = objects
    path = tmp_path / "c.city.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_city_file(path)


# -- demo -----------------------------------------------------------------------------------
def test_demo_replaces_an_earlier_demo_and_nothing_else(tmp_path):
    from proc_ml.commands.demo import OWNED, _prepare_output
    from proc_ml.errors import ConfigError

    out = tmp_path / "demo"
    for name in OWNED[:3]:
        (out / name).mkdir(parents=True)
        (out / name / "x").write_text("x")
    (out / "report.md").write_text("old")
    assert _prepare_output(out) == sorted(OWNED[:3] + ("report.md",))
    assert list(out.iterdir()) == []
    (out / "run").mkdir()
    (out / "mine.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files the demo did not write \(mine.txt\)"):
        _prepare_output(out)
    assert (out / "run").is_dir() and (out / "mine.txt").exists()


@pytest.mark.parametrize("args,message", [
    (["--grid", "2"], "--grid must be between 4 and 256, got 2"),
    (["--count", "0"], "--count must be >= 1, got 0"),
    (["--real", "nothere.gml"], "--real nothere.gml: file not found"),
])
def test_demo_arguments_are_checked_before_anything_is_written(tmp_path, capsys, args, message):
    code, _, err = run_cli(["demo", "--out", tmp_path / "d", *args], capsys)
    assert code == 1 and message in err and not (tmp_path / "d").exists()


# -- messages that name what the user gave -------------------------------------------------
def test_a_whole_manifest_check_says_what_is_wrong_without_dumping_it(tiny_dataset, tmp_path):
    import yaml

    from proc_ml.datasets import open_dataset
    from proc_ml.errors import DatasetError

    data = tmp_path / "d"
    shutil.copytree(tiny_dataset, data)
    manifest = yaml.safe_load((data / "dataset.yaml").read_text())
    manifest["split"]["val"] = [99]
    (data / "dataset.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(DatasetError) as err:
        open_dataset(data)
    assert str(err.value) == f"{data / 'dataset.yaml'}: split 'val' names buildings beyond count 16"


def test_device_and_export_options_are_named_as_given(tmp_path, tiny_dataset, capsys):
    code, _, err = run_cli(["train", "building-parts", "--data", tiny_dataset, "--out", tmp_path / "r",
                            "--device", "banana"], capsys)
    assert code == 1 and "--device must be auto, cpu, cuda or cuda:N, got 'banana'" in err
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["finetune", "--data", tiny_dataset, "--out", tmp_path / "r",
                            "--export", tmp_path / "afile" / "m.onnx"], capsys)
    assert code == 1 and err.startswith("proc-ml finetune: error: --export ")


def test_batch_given_a_file_says_so(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["batch", tmp_path / "afile", "--out", tmp_path / "o"], capsys)
    assert code == 1 and "a file, not a folder" in err


# -- nothing outside the output folder: onnxruntime's telemetry ---------------------------
def test_importing_proc_ml_keeps_onnxruntime_from_writing_into_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["HOME"] = str(tmp_path)
    code = ("import os, proc_ml, onnxruntime; print(os.environ['ORT_DISABLE_TELEMETRY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "1"
    assert not (tmp_path / ".cache" / "Microsoft").exists()
    env["ORT_DISABLE_TELEMETRY"] = "0"                      # the user's own value is kept
    out = subprocess.run([sys.executable, "-c", "import os, proc_ml; "
                          "print(os.environ['ORT_DISABLE_TELEMETRY'])"], env=env,
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "0"


def test_the_installed_model_without_street_sides_says_so(tiny_dataset, tmp_path, capsys):
    """A street-aware model given no street side labels every side a back facade (below the
    geometry rule on real buildings): predict notes it, and the summary keeps the note."""
    mesh = tiny_dataset / "meshes" / "b000001.obj"
    code, out, _ = run_cli(["predict", "building-parts", "--input", mesh, "--out", tmp_path / "a"],
                           capsys)
    assert code == 0 and "note: no street sides given" in out
    notes = json.loads((tmp_path / "a" / "summary.json").read_text())["notes"]
    assert any(n.startswith("no street sides given") for n in notes)
    code, out, _ = run_cli(["predict", "building-parts", "--input", mesh, "--street", "-y",
                            "--out", tmp_path / "b"], capsys)
    assert code == 0 and "no street sides given" not in out


def test_a_fifo_in_a_batch_folder_is_one_failed_asset_not_a_hang(tiny_dataset, tmp_path, capsys):
    from proc_ml.batch import read_records
    from proc_ml.batch.walker import NOT_A_FILE, walk_assets

    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(tiny_dataset / "meshes" / "b000001.obj", assets / "house.obj")
    os.mkfifo(assets / "pipe.obj")
    found = {a.rel: a.problem for a in walk_assets(assets)}
    assert found == {"house.obj": None, "pipe.obj": NOT_A_FILE}
    code, _, _ = run_cli(["batch", assets, "--out", tmp_path / "out", "--street", "-y"], capsys)
    records, _ = read_records(tmp_path / "out" / "manifest.jsonl")
    assert code == 2 and records["house.obj"]["status"] == "ok"
    assert records["pipe.obj"]["status"] == "failed" and NOT_A_FILE in records["pipe.obj"]["error"]
