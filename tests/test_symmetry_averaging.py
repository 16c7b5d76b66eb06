"""Averaging a parts model over a building's turns at prediction (``PartsPredictor``'s
``symmetry``), the ``proc_ml.symmetry`` helpers it shares with training, and the symmetry a
model declares (``proc-ml export onnx --symmetry``, the run's ``dataset.symmetry``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from proc_ml.cli import main
from proc_ml.encoding import face_mask
from proc_ml.errors import ModelError
from proc_ml.procedural import generate_building
from proc_ml.procedural.config import default_config
from proc_ml.encoding import apply_entrance_rule
from proc_ml.runtime import PartsPredictor, clear_cache, default_model
from proc_ml.symmetry import (transforms, turn, turn_faces, turn_side_vector, turn_sides, unturn,
                              unturn_faces)

REPO = Path(__file__).resolve().parents[1]
TRANSFORMS = [(k, m) for k in range(4) for m in (False, True)]
SIDES = ("+x", "-x", "+y", "-y")


def _building(index: int = 5):
    return generate_building(default_config(), 1, index).occupancy


@pytest.fixture(scope="module")
def installed():
    return PartsPredictor(default_model("building-parts"), device="cpu")


# -- proc_ml.symmetry ----------------------------------------------------------------------
@pytest.mark.parametrize("k, mirror", TRANSFORMS)
def test_turns_undo_and_move_faces_with_their_cells(k, mirror):
    rng = np.random.default_rng(k + 10 * mirror)
    cells = rng.random((3, 5, 2))
    assert np.array_equal(unturn(turn(cells, k, mirror), k, mirror), cells)
    faces = rng.random((3, 5, 2, 6, 4)).astype(np.float32)       # [X, Y, Z, direction, part]
    turned = turn_faces(faces, k, mirror)
    assert np.array_equal(unturn_faces(turned, k, mirror), faces)
    # one face: the cell's face towards its neighbour ends up towards the turned neighbour
    occ = np.zeros((3, 5, 2), bool)
    occ[1, 2, 0] = True
    one = np.zeros((3, 5, 2, 6), np.int8)
    one[1, 2, 0, 0] = 1                                            # the +x face
    neighbour = np.zeros_like(occ)
    neighbour[2, 2, 0] = True                                      # the cell beyond it
    cell = np.argwhere(turn(occ, k, mirror))[0]
    beyond = np.argwhere(turn(neighbour, k, mirror))[0]
    (d,) = np.nonzero(turn_faces(one, k, mirror)[tuple(cell)])
    step = np.zeros(3, int)
    step["xyz".index(SIDES[d[0]][1])] = 1 if SIDES[d[0]][0] == "+" else -1
    assert np.array_equal(cell + step, beyond)
    # street sides and per-side vectors turn alike
    vector = np.array([True, False, False, True])
    assert [s for s, on in zip(SIDES, turn_side_vector(vector, k, mirror)) if on] == \
        sorted(turn_sides(("+x", "-y"), k, mirror), key=SIDES.index)


def test_symmetry_groups():
    assert transforms("none") == [(0, False)]
    assert transforms("rotate") == [(0, False), (1, False), (2, False), (3, False)]
    assert sorted(transforms("dihedral")) == sorted(TRANSFORMS)
    with pytest.raises(ValueError, match="one of none, rotate, dihedral"):
        transforms("mirror")


# -- PartsPredictor ------------------------------------------------------------------------
@pytest.mark.parametrize("symmetry", ["rotate", "dihedral"])
def test_averaged_prediction_turns_with_the_building(installed, symmetry):
    """Averaged over a group, predicting a turned building gives the turned prediction of the
    building (the group's views of both are the same arrays): a wrong un-turn of the
    probabilities or of the street sides breaks this. One network run does not have it."""
    occ, street = _building(), ("+x", "-y")
    labels, probs = installed.predict(occ, street=street, symmetry=symmetry)
    assert probs.shape == occ.shape + (6, len(installed.parts))
    assert np.allclose(probs.sum(axis=-1)[face_mask(occ)], 1.0, atol=1e-5)
    assert (labels[~face_mask(occ)] == -1).all() and (labels[face_mask(occ)] >= 0).all()
    for k, mirror in transforms(symmetry)[1:]:
        _, turned = installed.predict(turn(occ, k, mirror), street=turn_sides(street, k, mirror),
                                      symmetry=symmetry)
        assert np.allclose(unturn_faces(turned, k, mirror), probs, atol=1e-5)
    _, plain = installed.predict(occ, street=street, symmetry="none")
    _, plain_turned = installed.predict(turn(occ, 1), street=turn_sides(street, 1), symmetry="none")
    assert not np.allclose(unturn_faces(plain_turned, 1), plain, atol=1e-3)
    # labels: argmax of the mean probabilities times the decision weights, then the
    # model's entrance rule
    weights = np.asarray(installed.info.decision_weights or [1.0] * len(installed.parts))
    mask = face_mask(occ)
    expected = np.where(mask, (probs * weights).argmax(axis=-1), -1).astype(np.int8)
    if installed.entrance_rule:
        apply_entrance_rule(expected, probs, street, installed.parts.index("door"))
    assert np.array_equal(labels, expected)


def test_the_installed_model_averages_over_its_declared_symmetry(installed):
    occ = _building(7)
    assert installed.symmetry == "dihedral"
    default = installed.predict(occ, street=("-x",))
    declared = installed.predict(occ, street=("-x",), symmetry="dihedral")
    one_run = installed.predict(occ, street=("-x",), symmetry="none")
    assert np.array_equal(default[1], declared[1])
    assert not np.allclose(default[1], one_run[1], atol=1e-4)
    many = installed.predict_many([occ, _building(8)], streets=[("-x",), ()], symmetry="rotate")
    assert np.allclose(many[0][1], installed.predict(occ, street=("-x",), symmetry="rotate")[1], atol=1e-6)


def test_models_tied_to_the_axes_cannot_be_averaged(tiny_massing_unet_onnx):
    predictor = PartsPredictor(tiny_massing_unet_onnx, device="cpu")
    assert predictor.symmetry == "none"
    occ = _building()
    predictor.predict(occ)                                         # its own symmetry: none
    with pytest.raises(ModelError, match=r"cannot average over symmetry 'rotate'.*phase_x2") as err:
        predictor.predict(occ, symmetry="rotate")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="symmetry must be one of none, rotate, dihedral"):
        predictor.check_symmetry("turn")


# -- the symmetry a model declares --------------------------------------------------------
def _metadata(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_training_symmetry_is_exported_and_can_be_declared(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(run),
                 "--config", "tiny_parts_unet3d", "--quiet", "--set", "dataset.inputs=street",
                 "--set", "dataset.symmetry=rotate", "--set", "training.epochs=1"]) == 0
    model = tmp_path / "rotate.onnx"
    assert main(["export", "onnx", str(run), "--out", str(model)]) == 0
    assert _metadata(model)["proc_ml.symmetry"] == "rotate"
    assert PartsPredictor(model, device="cpu").symmetry == "rotate"
    declared = tmp_path / "none.onnx"
    assert main(["export", "onnx", str(run), "--out", str(declared), "--symmetry", "none"]) == 0
    assert PartsPredictor(declared, device="cpu").symmetry == "none"
    capsys.readouterr()


def test_declaring_a_symmetry_for_inputs_tied_to_the_axes_is_refused(tiny_massing_unet_run, tmp_path,
                                                                     capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(tiny_massing_unet_run), "--out", str(out),
                 "--symmetry", "dihedral"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--symmetry dihedral" in err[0] and "phase_x2" in err[0]
    assert not out.exists()


def test_models_without_the_key_read_as_none(tiny_unet_onnx):
    """Models exported before the key existed (and style-aware ones) predict once."""
    assert "proc_ml.symmetry" not in _metadata(tiny_unet_onnx) or \
        _metadata(tiny_unet_onnx)["proc_ml.symmetry"] == "none"
    assert PartsPredictor(tiny_unet_onnx, device="cpu").symmetry == "none"


# -- CLI, batch and the DCC adapters ---------------------------------------------------------
def _grid_file(tiny_dataset) -> Path:
    return sorted((Path(tiny_dataset) / "grids").glob("*.npz"))[0]


def test_predict_cli_symmetry(tiny_dataset, tmp_path, capsys):
    grid = _grid_file(tiny_dataset)
    for symmetry, expected in ((None, "dihedral"), ("none", "none"), ("rotate", "rotate")):
        out = tmp_path / f"out_{symmetry}"
        args = ["predict", "building-parts", "--input", str(grid), "--out", str(out), "--device", "cpu"]
        assert main(args + (["--symmetry", symmetry] if symmetry else [])) == 0
        assert json.loads((out / "summary.json").read_text())["symmetry"] == expected
    capsys.readouterr()


def test_batch_symmetry_option(tiny_dataset, tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "a.npz").write_bytes(_grid_file(tiny_dataset).read_bytes())
    out = tmp_path / "out"
    assert main(["batch", str(assets), "--task", "parts", "--out", str(out), "--symmetry", "none",
                 "--quiet"]) == 0
    summaries = list(out.rglob("summary.json"))
    assert summaries and json.loads(summaries[0].read_text())["symmetry"] == "none"
    assert main(["batch", str(assets), "--task", "classify", "--model", "m.onnx", "--out",
                 str(tmp_path / "o2"), "--symmetry", "none", "--quiet"]) != 0
    assert "--symmetry is for --task parts" in capsys.readouterr().err
    # options a task's outputs do not depend on are refused, not dropped
    for task, extra, shown in (("classify", ["--cell-size", "0.5"], "--cell-size is not used by --task classify"),
                               ("segment", ["--up", "y"], "--up is not used by --task segment"),
                               ("classify", ["--pictures"], "--pictures is not used by --task classify"),
                               ("parts", ["--material", "brick"], "--material is for --task texture")):
        assert main(["batch", str(assets), "--task", task, "--model", "m.onnx", "--out",
                     str(tmp_path / "o3"), *extra, "--quiet"]) != 0
        assert shown in capsys.readouterr().err


def test_houdini_sop_symmetry_parameter(tiny_massing_unet_onnx):
    sys.path.insert(0, str(REPO / "tests" / "fake_hou"))
    import hou  # the fake

    from proc_ml.dcc.geometry import from_z_up

    code = compile((REPO / "hda_scripts" / "predict_parts_sop.py").read_text(),
                   "predict_parts_sop.py", "exec")
    occ = _building()
    cells = np.stack(np.nonzero(occ), axis=1)

    def cook(model, **parms):
        geo = hou.Geometry()
        geo.createPoints(from_z_up((cells + 0.5) * 3.0, "y").tolist())
        values = {"model": str(model), "device": "cpu", "threads": 0, "cellsize": 3.0,
                  "inputtype": "auto", "upaxis": "y", "street": "+x", **parms}
        node = hou.make_sop_node(values, geo)
        hou.cook(node, code)
        out = node.geometry()
        k = len(out.attribValue("part_names").split())
        return np.frombuffer(out.primFloatAttribValuesAsString("part_prob"), np.float32).reshape(-1, k)

    clear_cache()
    own = cook("")                                   # the installed model, its own (dihedral)
    assert np.allclose(own, cook("", symmetry="dihedral"))
    assert not np.allclose(own, cook("", symmetry="none"), atol=1e-4)
    with pytest.raises(hou.NodeError, match="cannot average over symmetry 'rotate'"):
        cook(tiny_massing_unet_onnx, symmetry="rotate")


def test_a_model_declaring_an_unknown_symmetry_is_refused(tmp_path):
    import onnx

    model = onnx.load(str(default_model("building-parts")))
    for prop in model.metadata_props:
        if prop.key == "proc_ml.symmetry":
            prop.value = "spin"
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ModelError, match="symmetry must be one of none, rotate, dihedral, got 'spin'"):
        PartsPredictor(bad, device="cpu")
