"""Street-aware building-parts models: inputs with no absolute coordinates, street dropout,
the decision rule fitted at export, calibration, and the whole path on grammar data."""

import json

import numpy as np
import onnx
import pytest

from proc_ml.encoding import (GRID_INPUT_SETS, RUN_FEATURES, decode_grid_logits, grid_inputs,
                              run_features, unknown_grid_inputs)
from proc_ml.metrics import calibration_bins, expected_calibration_error


def _building(shape=(12, 12, 8), at=(2, 3)):
    occ = np.zeros(shape, dtype=bool)
    occ[at[0]:at[0] + 5, at[1]:at[1] + 3, :4] = True
    occ[at[0]:at[0] + 2, at[1]:at[1] + 3, 4:6] = True
    return occ


@pytest.mark.parametrize("inputs", ["street", "street_runs", "street_neighbours"])
def test_street_inputs_do_not_depend_on_where_the_building_stands(inputs):
    names = GRID_INPUT_SETS[inputs]
    assert not any(n.startswith("phase_") for n in names)
    a = grid_inputs(names, _building(at=(2, 3)), street=("+x", "-y"))
    b = grid_inputs(names, _building(at=(5, 7)), street=("+x", "-y"))
    np.testing.assert_array_equal(a[:, 2:7, 3:6], b[:, 5:10, 7:10])
    assert a[:, 2:7, 3:6].sum() > 0
    # the legacy channels do depend on the position (coordinate phases)
    legacy = GRID_INPUT_SETS["massing"]
    c = grid_inputs(legacy, _building(at=(2, 3)))
    d = grid_inputs(legacy, _building(at=(5, 7)))
    assert not np.array_equal(c[:, 2:7, 3:6], d[:, 5:10, 7:10])


def test_street_channels_and_neighbours():
    occ = _building()
    names = GRID_INPUT_SETS["street_neighbours"]
    nb = np.zeros_like(occ)
    nb[7:9, 3:6, :3] = True
    x = grid_inputs(names, occ, street=("-y",), neighbours=nb)
    i = {n: k for k, n in enumerate(names)}
    assert (x[i["street:-y"]] == occ).all() and not x[i["street:+x"]].any()
    assert (x[i["neighbours"]] == nb).all()
    none = grid_inputs(names, occ)                       # no street given: all sides 0
    assert not none[[i[f"street:{s}"] for s in ("+x", "-x", "+y", "-y")]].any()
    assert unknown_grid_inputs(["occupancy", "street:+x", "cheese"]) == ["cheese"]


def test_run_features_count_from_the_massing():
    occ = np.zeros((6, 3, 4), dtype=bool)
    occ[1:5, 1, :3] = True
    occ[2, 1, 3] = True
    r = run_features(occ)
    names = {n: k for k, n in enumerate(RUN_FEATURES)}
    np.testing.assert_allclose(r[names["run_x_pos"], 1:5, 1, 0], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(r[names["run_x_len"], 1:5, 1, 0] * 16, [4, 4, 4, 4])
    np.testing.assert_allclose(r[names["run_z_below"], 2, 1, :] * 16, [0, 1, 2, 3])
    np.testing.assert_allclose(r[names["run_z_above"], 2, 1, :] * 16, [3, 2, 1, 0])
    assert not r[:, ~occ].any()


def test_decision_weights_change_labels_not_probabilities():
    occ = np.ones((1, 1, 1), dtype=bool)
    k = 3
    logits = np.zeros((6 * k, 1, 1, 1), dtype=np.float32)
    logits[0::k] = 1.0                                   # part 0 most likely on every face
    logits[2::k] = 0.6
    plain, p1 = decode_grid_logits(logits, occ, k)
    weighted, p2 = decode_grid_logits(logits, occ, k, weights=[1.0, 1.0, 2.0])
    assert (plain == 0).all() and (weighted == 2).all()
    np.testing.assert_array_equal(p1, p2)


def test_fit_decision_weights_raises_the_mean_f1_of_a_rare_part():
    from proc_ml.trainers.building_parts import fit_decision_weights

    rng = np.random.default_rng(0)
    truth = np.where(rng.random(4000) < 0.05, 1, 0)
    p_rare = np.where(truth == 1, rng.uniform(0.25, 0.5, truth.size), rng.uniform(0.0, 0.3, truth.size))
    probs = np.stack([1 - p_rare, p_rare], axis=1)
    weights, before, after = fit_decision_weights(probs, truth, 2)
    assert weights[0] == 1.0 and weights[1] > 1.0 and after > before


def test_expected_calibration_error():
    conf = np.array([0.9] * 10 + [0.6] * 10)
    right = np.array([1] * 9 + [0] + [1] * 6 + [0] * 4)
    assert expected_calibration_error(calibration_bins(conf, right)) == pytest.approx(0.0)
    wrong = np.zeros(20)
    assert expected_calibration_error(calibration_bins(conf, wrong)) == pytest.approx(0.75)


def test_street_model_on_grammar_data_end_to_end(tmp_path, capsys):
    """Generate grammar buildings, train the street config briefly, export with the
    decision rule, predict with and without street sides."""
    from proc_ml.cli import main
    from proc_ml.runtime import PartsPredictor

    data, run, model = tmp_path / "d", tmp_path / "run", tmp_path / "m.onnx"
    assert main(["generate", "buildings", "--count", "24", "--seed", "2", "--out", str(data),
                 "--formats", "grids", "--set", "grid.size=[8,8,8]", "--quiet"]) == 0
    assert main(["train", "building-parts", "--data", str(data), "--out", str(run), "--config",
                 "parts_unet3d_street", "--set", "training.epochs=1", "--set", "model.width=4",
                 "--set", "dataset.street_dropout=0.5", "--quiet"]) == 0
    assert main(["export", "onnx", str(run), "--out", str(model), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "decision rule on" in out
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    assert json.loads(meta["proc_ml.with_street"]) is True
    weights = json.loads(meta["proc_ml.decision_weights"])
    assert len(weights) == 7 and min(weights) >= 1.0
    assert json.loads(meta["proc_ml.input_names"]) == list(GRID_INPUT_SETS["street"])
    predictor = PartsPredictor(model, device="cpu")
    occ = _building((8, 8, 8), (1, 1))
    with_street, probs = predictor.predict(occ, street=("-y",))
    without, _ = predictor.predict(occ)
    assert with_street.shape == occ.shape + (6,) and (with_street >= 0).sum() == (without >= 0).sum()
    np.testing.assert_allclose(probs.sum(axis=-1)[with_street >= 0], 1.0, atol=1e-5)
    assert predictor.street_note(("-y",)) is None and predictor.with_street
    for nothing in (None, (), ""):          # a street model given no street side says so
        assert predictor.street_note(nothing).startswith("no street sides given")
