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


@pytest.mark.parametrize("inputs", ["street", "street_runs", "street_neighbours", "street_bays",
                                    "street_rhythm"])
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


def _bay_reference(occ: np.ndarray) -> dict:
    """BAY_FEATURES by walking each side face's facade run cell by cell."""
    steps = {"+x": (1, 0), "-x": (-1, 0), "+y": (0, 1), "-y": (0, -1)}
    X, Y, Z = occ.shape

    def filled(x, y, z):
        return 0 <= x < X and 0 <= y < Y and bool(occ[x, y, z])

    def face(x, y, z, side):
        dx, dy = steps[side]
        return filled(x, y, z) and not filled(x + dx, y + dy, z)

    out = {}
    for side, (dx, dy) in steps.items():
        ax, ay = (0, 1) if dx else (1, 0)            # along the facade
        for x, y, z in np.argwhere(occ):
            if not face(x, y, z, side):
                continue
            low = high = 0
            while face(x - ax * (low + 1), y - ay * (low + 1), z, side):
                low += 1
            while face(x + ax * (high + 1), y + ay * (high + 1), z, side):
                high += 1
            for end, count in (("low", low), ("high", high)):
                for period in (2, 3):
                    if count % period == 0:
                        out[(f"bay{period}_{end}:{side}", x, y, z)] = 1.0
    return out


def test_bay_features_count_each_facade_from_its_own_ends():
    from proc_ml.encoding import BAY_FEATURES, bay_features

    occ = np.zeros((9, 7, 3), dtype=bool)
    occ[1:8, 1:4, :3] = True            # a block, with a wing and a setback storey
    occ[1:3, 4:6, :2] = True
    occ[5:8, 1:4, 2] = False
    got = bay_features(occ)
    want = np.zeros_like(got)
    for (name, x, y, z), value in _bay_reference(occ).items():
        want[BAY_FEATURES.index(name), x, y, z] = value
    np.testing.assert_array_equal(got, want)
    i = {n: k for k, n in enumerate(BAY_FEATURES)}
    # the +y facade of the main block's ground floor runs x = 3..7 (the wing covers 1..2)
    assert got[i["bay2_low:+y"], 3:8, 3, 0].tolist() == [1, 0, 1, 0, 1]
    assert got[i["bay3_high:+y"], 3:8, 3, 0].tolist() == [0, 1, 0, 0, 1]
    assert not got[:, ~occ].any()


def test_storey_features_count_storeys_from_the_ground_under_any_turn():
    from proc_ml.encoding import STOREY_FEATURES
    from proc_ml.symmetry import ORIENTATION_FREE_INPUTS, turn

    occ = np.zeros((5, 4, 7), dtype=bool)
    occ[0:4, 0:3, :6] = True                 # six storeys, and a seventh on part of the roof
    occ[0:2, 0:2, 6] = True
    names = GRID_INPUT_SETS["street_rhythm"]
    assert set(STOREY_FEATURES) <= set(names) and set(names) <= set(ORIENTATION_FREE_INPUTS)
    x = grid_inputs(names, occ, street=("+x",))
    i = {n: k for k, n in enumerate(names)}
    assert x[i["storey2"], 1, 1, :].tolist() == [1, 0, 1, 0, 1, 0, 1]
    assert x[i["storey3"], 3, 2, :].tolist() == [1, 0, 0, 1, 0, 0, 0]   # cell (3,2,6) is empty
    assert not x[[i["storey2"], i["storey3"]]][:, ~occ].any()
    # a quarter turn about z turns the channels with the building: they are orientation-free
    turned = grid_inputs(names, turn(occ, 1), street=("+y",))
    for name in STOREY_FEATURES:
        np.testing.assert_array_equal(turned[i[name]], turn(x[i[name]], 1))
    # the bay channels of street_bays come first, in the same order: a street_bays model's
    # channels are a prefix, so fine-tuning from it adds only the storey channels
    assert names[:len(GRID_INPUT_SETS["street_bays"])] == GRID_INPUT_SETS["street_bays"]


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


def _entrance_case():
    """A 4 x 3 x 3 block: labels and probabilities over wall, window, door (no door yet)."""
    occ = np.zeros((6, 5, 4), dtype=bool)
    occ[1:5, 1:4, :3] = True
    from proc_ml.runtime.parts import face_mask
    faces = face_mask(occ)
    labels = np.where(faces, 0, -1).astype(np.int8)
    probs = np.zeros(occ.shape + (6, 3), dtype=np.float32)
    probs[..., 0] = 0.8
    probs[..., 2] = 0.1
    probs *= faces[..., None]
    return occ, faces, labels, probs


def test_entrance_rule_puts_one_door_on_the_most_door_like_street_ground_face():
    from proc_ml.encoding import apply_entrance_rule, entrance_candidates

    occ, faces, labels, probs = _entrance_case()
    candidates = entrance_candidates(faces, ("-y",))
    # the -y faces (direction 3) of the bottom layer, and nothing else
    assert candidates.sum() == 4 and candidates[1:5, 1, 0, 3].all()
    probs[3, 1, 0, 3, 2] = 0.3                  # the street ground floor's most door-like face
    probs[3, 1, 1, 3, 2] = 0.9                  # upper floor: never a candidate
    probs[4, 2, 0, 0, 2] = 0.9                  # +x is not a street side here
    out = labels.copy()
    assert apply_entrance_rule(out, probs, ("-y",), door=2)
    assert np.argwhere(out == 2).tolist() == [[3, 1, 0, 3]]
    assert (out[labels != out] == 2).all() and (labels != out).sum() == 1
    # a building that already has a street door, or no street sides, is left alone
    assert not apply_entrance_rule(out, probs, ("-y",), door=2)
    again = labels.copy()
    again[2, 1, 0, 3] = 2
    assert not apply_entrance_rule(again, probs, ("-y",), door=2) and (again == 2).sum() == 1
    for nothing in ((), None):
        untouched = labels.copy()
        assert not apply_entrance_rule(untouched, probs, nothing, door=2)
        np.testing.assert_array_equal(untouched, labels)
    # two street sides: the most door-like face of either
    both = labels.copy()
    assert apply_entrance_rule(both, probs, ("+x", "-y"), door=2)
    assert np.argwhere(both == 2).tolist() == [[4, 2, 0, 0]]


def test_entrance_rule_over_face_lists_matches_the_grid_rule():
    """The export's fit (faces flattened over many buildings) places the same doors as the
    runtime's rule on each building's grid."""
    from proc_ml.encoding import apply_entrance_rule, entrance_candidates
    from proc_ml.trainers.building_parts import entrance_rule_labels

    rng = np.random.default_rng(3)
    occ, faces, labels, _ = _entrance_case()
    grids, flat = [], {"guess": [], "probs": [], "building": [], "entrance": []}
    for b in range(6):
        probs = rng.random(occ.shape + (6, 3)).astype(np.float32) * faces[..., None]
        probs[..., 2] *= 1.0 if b == 1 else 0.3           # most buildings: no door yet
        guess = np.where(faces, probs.argmax(-1), -1).astype(np.int8)
        street = [("-y",), ("+x", "+y"), ()][b % 3]
        expected = guess.copy()
        apply_entrance_rule(expected, probs, street, door=2)
        grids.append(expected[faces])
        cand = entrance_candidates(faces, street) if street else np.zeros_like(faces)
        flat["guess"].append(guess[faces])
        flat["probs"].append(probs[faces])
        flat["building"].append(np.full(faces.sum(), b))
        flat["entrance"].append(cand[faces])
    got = entrance_rule_labels(*(np.concatenate(flat[k]) for k in
                                 ("guess", "probs", "building", "entrance")), door=2)
    np.testing.assert_array_equal(got, np.concatenate(grids))
    assert (np.concatenate(grids) != np.concatenate(flat["guess"])).sum() >= 2


def test_fit_entrance_rule_keeps_it_only_when_it_raises_the_mean_f1():
    from proc_ml.trainers.building_parts import fit_entrance_rule

    rng = np.random.default_rng(1)
    n_buildings, per = 200, 20
    building = np.repeat(np.arange(n_buildings), per)
    entrance = np.tile(np.arange(per) < 5, n_buildings)           # 5 street ground faces each
    truth = np.zeros(building.size, dtype=np.int64)
    truth[np.arange(n_buildings) * per + rng.integers(0, 5, n_buildings)] = 1   # one door each
    p_door = np.where(truth == 1, 0.3, rng.uniform(0.0, 0.2, truth.size))
    probs = np.stack([1 - p_door, p_door], axis=1)
    keep, without, with_rule = fit_entrance_rule(probs, truth, [1.0, 1.0], building, entrance, 1)
    assert keep and with_rule > without
    # door probabilities that point at the wrong face: the rule only adds false doors
    p_wrong = np.where(truth == 1, 0.0, rng.uniform(0.0, 0.4, truth.size))
    probs = np.stack([1 - p_wrong, p_wrong], axis=1)
    keep, without, with_rule = fit_entrance_rule(probs, truth, [1.0, 1.0], building, entrance, 1)
    assert not keep and with_rule <= without


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
    assert "entrance rule: mean F1 over parts" in out
    assert json.loads(meta["proc_ml.entrance_rule"]) is ("entrance rule" in out and ": kept" in out)
    predictor = PartsPredictor(model, device="cpu")
    occ = _building((8, 8, 8), (1, 1))
    with_street, probs = predictor.predict(occ, street=("-y",))
    without, _ = predictor.predict(occ)
    assert with_street.shape == occ.shape + (6,) and (with_street >= 0).sum() == (without >= 0).sum()
    np.testing.assert_allclose(probs.sum(axis=-1)[with_street >= 0], 1.0, atol=1e-5)
    assert predictor.street_note(("-y",)) is None and predictor.with_street
    for nothing in (None, (), ""):          # a street model given no street side says so
        assert predictor.street_note(nothing).startswith("no street sides given")


@pytest.mark.parametrize("config, overrides, shown", [
    ("tiny_parts_mlp", ["dataset.street_dropout=0.5"], "must be 0 for parts-mlp with dataset.inputs 'style'"),
    ("tiny_parts_unet3d", ["dataset.street_dropout=0.5", "dataset.inputs=style"],
     "must be 0 for parts-unet3d with dataset.inputs 'style'"),
])
def test_street_dropout_without_street_inputs_is_refused(tiny_dataset, tmp_path, capsys, config,
                                                         overrides, shown):
    """dataset.street_dropout drops given street sides: with inputs that take none it would
    change nothing, so it stops with one line."""
    from proc_ml.cli import main

    args = ["train", "building-parts", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"),
            "--config", config, "--quiet"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "config key 'dataset.street_dropout' " + shown in err and len(err.splitlines()) == 1
