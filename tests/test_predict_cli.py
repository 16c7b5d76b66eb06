"""``proc-ml predict building-parts`` on a grid .npz, adjacency rows and mesh files."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from proc_ml.cli import main
from proc_ml.datasets import read_faces_csv, read_labelled_mesh
from proc_ml.grid import exterior_faces

OUTPUTS = ("parts.ply", "parts.glb", "faces.csv", "parts.png", "summary.json")


def _check_outputs(out, parts, occupancy_faces: int | None = None):
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "parts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, tri_parts = read_labelled_mesh(out / "parts.ply", parts)
    assert tri_parts.min() >= 0 and tri_parts.max() < len(parts)
    ids, one_hot = read_faces_csv(out / "faces.csv", parts)
    summary = json.loads((out / "summary.json").read_text())
    assert one_hot.sum() == summary["faces"] == len(tri_parts) // 2
    if occupancy_faces is not None:
        assert summary["faces"] == occupancy_faces
    return summary


def test_predict_on_a_grid_npz_writes_everything_and_accuracy(tiny_unet_onnx, tiny_dataset,
                                                              tmp_path, capsys):
    from proc_ml.datasets import open_dataset

    data = open_dataset(tiny_dataset)
    record = data.building(2)
    out = tmp_path / "npz"
    assert main(["predict", "building-parts", "--model", str(tiny_unet_onnx), "--input",
                 str(data.grid_path(2)), "--out", str(out), "--device", "cpu"]) == 0
    summary = _check_outputs(out, data.parts, int(exterior_faces(record.occupancy).sum()))
    accuracy = json.loads((out / "accuracy.json").read_text())
    assert accuracy["faces"] == summary["faces"] and 0.0 <= accuracy["accuracy"] <= 1.0
    assert summary["accuracy"] == accuracy["accuracy"] and summary["cell_size"] == 3.0
    assert "face accuracy" in capsys.readouterr().out


def test_predict_on_adjacency_rows_picks_the_building(tiny_mlp_onnx, tiny_dataset, tmp_path, capsys):
    from proc_ml.datasets import open_dataset

    record = open_dataset(tiny_dataset).building(4)
    csv = str(tiny_dataset / "adjacency.csv")
    out = tmp_path / "rows"
    assert main(["predict", "building-parts", "--model", str(tiny_mlp_onnx), "--input", csv,
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--building-id" in err[0]
    assert main(["predict", "building-parts", "--model", str(tiny_mlp_onnx), "--input", csv,
                 "--out", str(out), "--building-id", "4"]) == 0
    summary = _check_outputs(out, open_dataset(tiny_dataset).parts,
                             int(exterior_faces(record.occupancy).sum()))
    assert summary["building_id"] == 4 and summary["cells"] == int(record.occupancy.sum())
    assert (out / "accuracy.json").is_file()     # truth from faces.csv beside adjacency.csv


def test_predict_on_mesh_files(tiny_massing_unet_onnx, tiny_unet_onnx, tiny_dataset, tmp_path):
    from proc_ml.datasets import open_dataset

    data = open_dataset(tiny_dataset)
    record = data.building(6)
    mesh = tiny_dataset / "meshes" / "b000006.obj"
    out = tmp_path / "mesh"
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx),
                 "--input", str(mesh), "--out", str(out)]) == 0
    from proc_ml.voxelize import voxelize_file

    # the grammar's mesh has sloped roofs, its grid the height-field rule
    # (``facade.voxelizer``): predict labels the cells the mesh voxelises to, which share the
    # grid's footprint and differ from it only under the roof slopes
    cells = voxelize_file(mesh, 3.0)[0].occupancy
    assert cells[:, :, 0].sum() == record.occupancy[:, :, 0].sum()
    assert abs(int(cells.sum()) - int(record.occupancy.sum())) <= record.occupancy[:, :, 0].sum()
    summary = _check_outputs(out, data.parts, int(exterior_faces(cells).sum()))
    assert summary["cells"] == int(cells.sum()) and summary["closed_mesh"]
    assert summary["cell_size"] == 3.0 and summary["up"] == "z"
    # the grid's frame: turned by rotation_deg about the vertical through pivot
    source_vertices = np.asarray(trimesh.load(mesh, force="mesh", process=False).vertices)
    np.testing.assert_allclose(summary["pivot"], source_vertices.mean(axis=0), atol=1e-9)
    assert not (out / "accuracy.json").exists()
    source = trimesh.load(mesh, force="mesh", process=False)
    _, tri_parts = read_labelled_mesh(out / "input_parts.ply", data.parts)
    assert len(tri_parts) == len(source.faces) and tri_parts.min() >= 0
    # a style-aware model on a mesh needs --style
    style = ",".join(f"{v:g}" for v in record.style)
    assert main(["predict", "building-parts", "--model", str(tiny_unet_onnx), "--input",
                 str(mesh), "--out", str(tmp_path / "styled"), "--style", style]) == 0
    # GLB input: the dataset's GLBs are written z-up, so --up z reads them like the OBJ
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx), "--input",
                 str(tiny_dataset / "meshes" / "b000006.glb"), "--out", str(tmp_path / "glb"),
                 "--up", "z"]) == 0
    glb = json.loads((tmp_path / "glb" / "summary.json").read_text())
    assert glb["cells"] == summary["cells"] and glb["faces"] == summary["faces"]


def test_a_rerun_replaces_the_whole_output_and_a_failure_leaves_it(tiny_massing_unet_onnx,
                                                                   tiny_dataset, tmp_path,
                                                                   monkeypatch):
    from proc_ml.predict import parts as predict_parts

    out = tmp_path / "out"
    grid = str(tiny_dataset / "grids" / "b000002.npz")
    mesh = str(tiny_dataset / "meshes" / "b000006.obj")
    model = ["predict", "building-parts", "--model", str(tiny_massing_unet_onnx), "--out", str(out)]
    assert main([*model, "--input", grid]) == 0
    assert (out / "accuracy.json").is_file() and not (out / "input_parts.ply").exists()
    assert main([*model, "--input", mesh]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # the grid's accuracy.json is gone: the folder holds the mesh run's files and no others
    assert sorted(p.name for p in out.iterdir()) == summary["files"]
    assert "accuracy.json" not in summary["files"] and summary["input"] == mesh
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise IndexError("a bug after the meshes were made")

    monkeypatch.setattr(predict_parts, "accuracy_against_truth", broken)
    assert main([*model, "--input", grid]) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("args, message", [
    (["--input", "{data}/labels.json"], "unsupported input '.json'"),
    (["--input", "{data}/meshes/b000001.obj"], "trained with style features"),
    (["--input", "{data}/grids/b000001.npz", "--cell-size", "0"], "--cell-size must be > 0"),
    (["--input", "{data}/grids/b000001.npz", "--model", "{data}/none.onnx"], "model file not found"),
])
def test_predict_errors_are_one_line(tiny_unet_onnx, tiny_dataset, tmp_path, capsys, args, message):
    argv = ["predict", "building-parts", "--model", str(tiny_unet_onnx), "--out", str(tmp_path / "o")]
    argv += [a.format(data=tiny_dataset) for a in args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_predict_cli_is_torch_free_and_prints_no_onnxruntime_errors(tiny_mlp_onnx, tiny_dataset,
                                                                   tmp_path, no_torch_source):
    argv = ["predict", "building-parts", "--model", str(tiny_mlp_onnx), "--input",
            str(tiny_dataset / "meshes" / "b000003.obj"), "--out", str(tmp_path / "o"),
            "--style", "1,0,0,0,1,0,0,0,0"]
    script = no_torch_source + f"from proc_ml.cli import main\nsys.exit(main({argv!r}))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" not in result.stderr and "Failed to load" not in result.stderr
    assert result.stderr.strip() == ""
    assert (tmp_path / "o" / "parts.png").is_file()


def test_the_unused_style_note_names_the_model_kind(tiny_massing_unet_onnx, tiny_dataset, tmp_path):
    """A grid with style features predicted by a model that takes none: the note says which
    kind of model it is (the installed one takes the street sides: not 'massing-only')."""
    from proc_ml.runtime import PartsPredictor, default_model

    grid = str(tiny_dataset / "grids" / "b000001.npz")
    for model in (default_model("building-parts"), tiny_massing_unet_onnx):
        out = tmp_path / Path(model).stem
        assert main(["predict", "building-parts", "--model", str(model), "--input", grid,
                     "--out", str(out)]) == 0
        notes = json.loads((out / "summary.json").read_text())["notes"]
        style_notes = [n for n in notes if "style features were not used" in n]
        street = PartsPredictor(model).with_street
        assert len(style_notes) == 1, notes
        assert style_notes[0].startswith("street-aware model" if street else "massing-only model")
