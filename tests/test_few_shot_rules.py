"""The few-shot benchmark's rule sets and dataset builders (benchmarks/few_shot_rules.py,
docs/few-shot.md): every rule labels exactly the exterior faces, roof on top and ground
below; small hand-built buildings get the labels the rule text says; the rules turn with
the building; the builders write datasets proc-ml opens, with the rule's vocabulary, the
few-shot splits and, for the correction loop, exactly K corrected faces per building."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import few_shot_rules as fs  # noqa: E402
from proc_ml.datasets import open_dataset  # noqa: E402
from proc_ml.formats import grid_npz, grid_path  # noqa: E402
from proc_ml.grid import DIRECTIONS, exterior_faces  # noqa: E402

W, G = "wall", "ground"


def _block(x, y, z) -> np.ndarray:
    return np.ones((x, y, z), dtype=np.uint8)


def _shapes():
    """Hand-made and random massing: blocks, an L with a setback, an overhang, noise."""
    l_shape = np.zeros((6, 5, 4), np.uint8)
    l_shape[:4, :2, :3] = 1
    l_shape[:2, :5, :2] = 1
    l_shape[0, 0, 3] = 1
    overhang = np.zeros((4, 4, 4), np.uint8)
    overhang[1:3, 1:3, :2] = 1
    overhang[0:4, 1:3, 2] = 1
    rng = np.random.default_rng(7)
    noise = (rng.random((7, 6, 5)) < 0.55).astype(np.uint8)
    return [_block(3, 1, 2), _block(4, 3, 5), l_shape, overhang, noise]


STREETS = [(), ("+x",), ("-y",), ("+x", "-y"), ("+x", "-x", "+y", "-y")]


@pytest.mark.parametrize("name", list(fs.RULES))
def test_every_rule_labels_exactly_the_exterior_faces_roof_on_top_ground_below(name):
    r = fs.RULES[name]
    up, down = DIRECTIONS.index("+z"), DIRECTIONS.index("-z")
    for occ in _shapes():
        for street in STREETS:
            labels = r.label(occ, street)
            ext = exterior_faces(occ)
            assert labels.dtype == np.int8 and labels.shape == occ.shape + (6,)
            assert np.array_equal(labels >= 0, ext)
            assert (labels[~ext] == -1).all()
            assert labels.max() < len(r.parts)
            names = fs.names_of(labels, r.parts)
            assert (names[..., up][ext[..., up]] == "roof").all()
            assert (names[..., down][ext[..., down]] == "ground").all()
            sides = names[..., :4][ext[..., :4]]
            assert not np.isin(sides, ["roof", "ground"]).any()


def test_vocabularies():
    assert fs.RULES["odd_floors"].parts == ("wall", "window", "roof", "ground")
    assert fs.RULES["centred_entrances"].parts == ("wall", "window", "door", "roof", "ground")
    assert fs.RULES["corner_balconies"].parts == ("wall", "window", "roof", "balcony", "ground")
    assert fs.RULES["cornice"].parts == ("wall", "window", "door", "roof", "ground", "cornice")
    assert fs.RULES["bay_rhythm"].parts == ("wall", "window", "shopfront", "roof", "ground")


def _faces(names, x, y, z) -> list[str]:
    return list(names[x, y, z])


def test_the_3x1x2_block_with_street_plus_x():
    """Cells x = 0..2 in one row (y = 0), two floors; the street is on +x, so the only
    street faces are the +x faces of x = 2 (a run of one face per floor)."""
    occ = _block(3, 1, 2)
    n = {name: r.label_names(occ, ("+x",)) for name, r in fs.RULES.items()}
    # odd_floors: z = 0 wall all round, z = 1 window all round
    assert _faces(n["odd_floors"], 2, 0, 0) == [W, "", W, W, "", G]
    assert _faces(n["odd_floors"], 0, 0, 0) == ["", W, W, W, "", G]
    assert _faces(n["odd_floors"], 1, 0, 1) == ["", "", "window", "window", "roof", ""]
    assert _faces(n["odd_floors"], 2, 0, 1) == ["window", "", "window", "window", "roof", ""]
    # centred_entrances: the +x run of one face on the ground floor is its centre: door
    assert _faces(n["centred_entrances"], 2, 0, 0) == ["door", "", W, W, "", G]
    assert _faces(n["centred_entrances"], 2, 0, 1) == ["window", "", W, W, "roof", ""]
    assert _faces(n["centred_entrances"], 0, 0, 1) == ["", W, W, W, "roof", ""]
    # corner_balconies: upper floor, +-y runs of 3 have balconies at x = 0 and 2, a window
    # at x = 1; the +-x runs are one face: balcony; ground floor: window on the street
    assert _faces(n["corner_balconies"], 0, 0, 1) == ["", "balcony", "balcony", "balcony", "roof", ""]
    assert _faces(n["corner_balconies"], 1, 0, 1) == ["", "", "window", "window", "roof", ""]
    assert _faces(n["corner_balconies"], 2, 0, 1) == ["balcony", "", "balcony", "balcony", "roof", ""]
    assert _faces(n["corner_balconies"], 2, 0, 0) == ["window", "", W, W, "", G]
    assert _faces(n["corner_balconies"], 1, 0, 0) == ["", "", W, W, "", G]
    # cornice: z = 1 is every column's top: cornice all round; the ground floor's +x run
    # is one face, its own left end: door
    for x in range(3):
        assert set(n["cornice"][x, 0, 1, :4]) <= {"cornice", ""}
    assert _faces(n["cornice"], 2, 0, 0) == ["door", "", W, W, "", G]
    assert _faces(n["cornice"], 0, 0, 0) == ["", W, W, W, "", G]


def test_a_4x1x3_block_with_street_minus_y():
    occ = _block(4, 1, 3)
    minus_y = DIRECTIONS.index("-y")
    n = fs.RULES["centred_entrances"].label_names(occ, ("-y",))
    # an even run of 4: the middle two are doors
    assert list(n[:, 0, 0, minus_y]) == ["window", "door", "door", "window"]
    assert list(n[:, 0, 2, minus_y]) == ["window"] * 4
    assert (n[:, 0, :, DIRECTIONS.index("+y")] == W).all()
    n = fs.RULES["corner_balconies"].label_names(occ, ("-y",))
    assert list(n[:, 0, 1, minus_y]) == ["balcony", "window", "window", "balcony"]
    assert list(n[:, 0, 0, minus_y]) == ["window"] * 4
    assert list(n[:, 0, 0, DIRECTIONS.index("+y")]) == [W] * 4
    n = fs.RULES["cornice"].label_names(occ, ("-y",))
    # seen from the street (standing at low y, looking +y) the left end is x = 0
    assert list(n[:, 0, 0, minus_y]) == ["door", "window", "window", "window"]
    assert list(n[:, 0, 1, minus_y]) == ["window"] * 4
    assert list(n[:, 0, 2, minus_y]) == ["cornice"] * 4
    assert list(n[:, 0, 1, DIRECTIONS.index("+y")]) == [W] * 4
    n = fs.RULES["cornice"].label_names(occ, ("+y",))
    # from the +y street the left end is x = 3
    assert list(n[:, 0, 0, DIRECTIONS.index("+y")]) == ["window", "window", "window", "door"]
    n = fs.RULES["odd_floors"].label_names(occ, ("-y",))
    assert list(n[0, 0, :, minus_y]) == [W, "window", W]


def test_bay_rhythm_counts_bays_from_the_left_end_seen_from_the_street():
    occ = _block(4, 1, 3)
    plus_y, minus_y = DIRECTIONS.index("+y"), DIRECTIONS.index("-y")
    n = fs.RULES["bay_rhythm"].label_names(occ, ("-y",))
    # from the -y street the left end is x = 0: windows at x = 0 and 2 on the upper floors
    for z in (1, 2):
        assert list(n[:, 0, z, minus_y]) == ["window", W, "window", W]
    assert list(n[:, 0, 0, minus_y]) == [W, "shopfront", "shopfront", W]
    assert (n[:, 0, :, plus_y] == W).all()
    assert (n[0, 0, :, DIRECTIONS.index("-x")] == W).all()
    n = fs.RULES["bay_rhythm"].label_names(occ, ("+y",))
    # from the +y street the left end is x = 3
    assert list(n[:, 0, 1, plus_y]) == [W, "window", W, "window"]
    n = fs.RULES["bay_rhythm"].label_names(_block(2, 1, 1), ("-y",))
    assert list(n[:, 0, 0, minus_y]) == [W, W]          # a run of two: all wall


def test_odd_run_has_one_centre_door_and_runs_break_at_steps():
    occ = _block(5, 2, 1)
    occ[4, 1, 0] = 0          # the +y facade steps back at x = 4: runs x = 0..3 (y = 1), x = 4 (y = 0)
    n = fs.RULES["centred_entrances"].label_names(occ, ("+y",))
    plus_y = DIRECTIONS.index("+y")
    assert list(n[:4, 1, 0, plus_y]) == ["window", "door", "door", "window"]
    assert n[4, 0, 0, plus_y] == "door"
    n = fs.RULES["centred_entrances"].label_names(_block(5, 1, 1), ("+y",))
    assert list(n[:, 0, 0, plus_y]) == ["window", "window", "door", "window", "window"]


def test_cornice_on_the_column_tops_of_a_setback():
    occ = np.zeros((3, 1, 3), np.uint8)
    occ[:, 0, :2] = 1
    occ[0, 0, 2] = 1          # x = 0 rises to z = 2; x = 1, 2 stop at z = 1
    n = fs.RULES["cornice"].label_names(occ, ("+x",))
    assert _faces(n, 0, 0, 2) == ["cornice", "cornice", "cornice", "cornice", "roof", ""]
    assert _faces(n, 0, 0, 1) == ["", "wall", "wall", "wall", "", ""]
    assert _faces(n, 2, 0, 1) == ["cornice", "", "cornice", "cornice", "roof", ""]
    assert _faces(n, 2, 0, 0) == ["door", "", W, W, "", G]


def test_overhang_column_top_is_the_highest_cell():
    occ = np.zeros((2, 1, 3), np.uint8)
    occ[0, 0, :] = 1
    occ[1, 0, 2] = 1          # x = 1 holds only z = 2 (an overhang above an empty cell)
    n = fs.RULES["cornice"].label_names(occ, ())
    assert _faces(n, 1, 0, 2)[:4] == ["cornice", "", "cornice", "cornice"]
    assert _faces(n, 0, 0, 1)[:4] == [W, W, W, W]
    assert _faces(n, 0, 0, 2)[:4] == ["", "cornice", "cornice", "cornice"]


def _rotation_permutation() -> list[int]:
    """Direction d of a building -> its direction once the grid is turned by np.rot90 in
    the x-y plane, found from the faces of an asymmetric building."""
    occ = _shapes()[2]
    ext, turned = exterior_faces(occ), exterior_faces(np.rot90(occ, 1, axes=(0, 1)))
    perm = []
    for d in range(6):
        hits = [e for e in range(6)
                if np.array_equal(np.rot90(ext[..., d], 1, axes=(0, 1)), turned[..., e])]
        assert len(hits) == 1
        perm.append(hits[0])
    return perm


@pytest.mark.parametrize("name", list(fs.RULES))
def test_rules_turn_with_the_building(name):
    """Every rule reads only the massing and where the street is: turning both turns the
    labels (the cornice's door stays at the left end seen from the street)."""
    perm = _rotation_permutation()
    r = fs.RULES[name]
    for occ in _shapes():
        for street in STREETS:
            labels = r.label(occ, street)
            turned_street = tuple(DIRECTIONS[perm[DIRECTIONS.index(s)]] for s in street)
            turned = r.label(np.rot90(occ, 1, axes=(0, 1)), turned_street)
            expected = np.empty_like(turned)
            for d in range(6):
                expected[..., perm[d]] = np.rot90(labels[..., d], 1, axes=(0, 1))
            assert np.array_equal(turned, expected), (name, street)


def test_rules_are_deterministic_and_read_the_street():
    occ = _shapes()[4]
    for r in fs.RULES.values():
        assert np.array_equal(r.label(occ, ("+x",)), r.label(occ.copy(), ["+x"]))
    a = fs.RULES["centred_entrances"].label(occ, ("+x",))
    b = fs.RULES["centred_entrances"].label(occ, ("-x",))
    assert not np.array_equal(a, b)
    assert np.array_equal(fs.RULES["odd_floors"].label(occ, ("+x",)), fs.RULES["odd_floors"].label(occ, ()))


def test_docs_table_is_the_rules_table():
    text = (REPO / "docs" / "few-shot.md").read_text()
    assert "## The benchmark's rule sets" in text
    assert fs.rules_table() in text
    for heading in ("## Fine-tuning in Houdini", "## Fine-tuning in Blender", "## The loop in one command"):
        assert heading in text


# -- datasets --------------------------------------------------------------------------------

def test_rule_dataset_opens_with_the_rule_vocabulary_and_few_shot_splits(tmp_path):
    fs.build_rule_dataset("cornice", 3, 5, tmp_path / "train", role="train", grid_size=(8, 8, 8))
    data = open_dataset(tmp_path / "train")
    assert data.parts == list(fs.RULES["cornice"].parts)
    assert data.ids("train") == data.ids("val") == [0, 1, 2]
    assert data.ids("test") == []
    assert data.manifest["grid_size"] == [8, 8, 8] and data.cell_size == 3.0
    fs.generate_massing(3, 5, tmp_path / "massing", grid_size=(8, 8, 8))
    counts = np.zeros(len(data.parts), np.int64)
    for i in range(3):
        rec, src = data.building(i), grid_npz.read(grid_path(tmp_path / "massing", i))
        assert np.array_equal(rec.occupancy, src.occupancy)
        assert rec.street_sides == src.street_sides and rec.street_sides
        assert np.array_equal(rec.extras["neighbours"], src.extras["neighbours"])
        assert list(rec.extras["vocab"]) == data.parts
        assert np.array_equal(rec.labels, fs.RULES["cornice"].label(rec.occupancy, rec.street_sides))
        counts += np.bincount(rec.labels[rec.labels >= 0], minlength=len(data.parts))
    assert data.manifest["stats"]["faces_per_part"] == dict(zip(data.parts, counts.tolist()))
    assert data.manifest["few_shot"]["rule"] == "cornice"

    fs.build_rule_dataset("cornice", 2, 6, tmp_path / "test", role="test", grid_size=(8, 8, 8))
    test = open_dataset(tmp_path / "test")
    assert test.ids("test") == [0, 1] and test.ids("train") == test.ids("val") == []
    with pytest.raises(Exception, match="not an empty folder"):
        fs.build_rule_dataset("cornice", 2, 6, tmp_path / "test", role="test")


def test_rule_dataset_is_deterministic_and_takes_a_larger_vocabulary(tmp_path):
    for name in ("a", "b"):
        fs.build_rule_dataset("odd_floors", 2, 9, tmp_path / name, grid_size=(8, 8, 8))
    for i in range(2):
        assert grid_path(tmp_path / "a", i).read_bytes() == grid_path(tmp_path / "b", i).read_bytes()
    parts = ["wall", "window", "door", "roof", "balcony", "shopfront", "ground"]
    fs.build_rule_dataset("odd_floors", 2, 9, tmp_path / "wide", parts=parts, grid_size=(8, 8, 8))
    wide, narrow = open_dataset(tmp_path / "wide"), open_dataset(tmp_path / "a")
    assert wide.parts == parts
    for i in range(2):
        assert np.array_equal(fs.names_of(wide.building(i).labels, wide.parts),
                              fs.names_of(narrow.building(i).labels, narrow.parts))
    with pytest.raises(Exception, match="cornice"):
        fs.build_rule_dataset("cornice", 1, 9, tmp_path / "short", parts=parts)


def test_the_rule_dataset_trains(tmp_path):
    from proc_ml.trainers import evaluate_run, fit, load_train_config, resolve_config_path

    fs.build_rule_dataset("corner_balconies", 2, 5, tmp_path / "train", grid_size=(8, 8, 8))
    fs.build_rule_dataset("corner_balconies", 2, 6, tmp_path / "test", role="test", grid_size=(8, 8, 8))
    config = load_train_config("building-parts", resolve_config_path("parts_unet3d_street"),
                               ["model.width=4", "training.epochs=1", "training.threads=1",
                                "training.device=cpu", "training.progress=false",
                                "training.fit_decision=false"])
    fit(config, tmp_path / "train", tmp_path / "run")
    result = evaluate_run(tmp_path / "run", tmp_path / "test", split="test")
    assert result["buildings"] == 2 and result["parts"] == list(fs.RULES["corner_balconies"].parts)
    assert 0.0 <= result["face_accuracy"] <= 1.0


class _Walls:
    """A stand-in predictor: every side face wall, roof on top, ground below."""
    parts = ["wall", "window", "door", "roof", "balcony", "shopfront", "ground"]

    def predict(self, occupancy, street=None):
        ext = exterior_faces(occupancy)
        labels = np.where(ext, 0, -1).astype(np.int8)
        labels[..., 4][ext[..., 4]] = 3
        labels[..., 5][ext[..., 5]] = 6
        return labels, None


@pytest.mark.parametrize("k", [1, 5, 10_000])
def test_correction_dataset_fixes_exactly_k_wrong_faces(tmp_path, k):
    out = tmp_path / "corr"
    fs.build_correction_dataset("cornice", _Walls(), 3, k, 4, out, grid_size=(8, 8, 8))
    data = open_dataset(out)
    assert data.parts == _Walls.parts + ["cornice"]
    assert data.ids("train") == data.ids("val") == [0, 1, 2]
    r = fs.RULES["cornice"]
    fixed_counts = []
    for i in range(3):
        rec = data.building(i)
        truth = r.label_names(rec.occupancy, rec.street_sides)
        predicted = fs.names_of(_Walls().predict(rec.occupancy)[0], _Walls.parts)
        names = fs.names_of(rec.labels, data.parts)
        fixed = rec.extras["label_fixed"]
        wrong = (truth != predicted) & (truth != "")
        assert wrong.sum() > 5
        assert fixed.sum() == min(k, wrong.sum())
        assert not (fixed & ~wrong).any()                     # only faces the model got wrong
        assert (names[fixed] == truth[fixed]).all()            # set to the rule's part
        assert (names[~fixed] == predicted[~fixed]).all()      # the rest: the prediction
        fixed_counts.append(int(fixed.sum()))
    assert data.manifest["few_shot"]["fixed"] == fixed_counts
    assert data.manifest["few_shot"]["fixed_per_building"] == k


def test_correction_with_the_installed_model(tmp_path):
    from proc_ml.runtime import PartsPredictor, default_model

    model = PartsPredictor(default_model("building-parts"), device="cpu")
    fs.build_correction_dataset("corner_balconies", model, 2, 5, 3000, tmp_path / "a")
    fs.build_correction_dataset("corner_balconies", model, 2, 5, 3000, tmp_path / "b")
    data = open_dataset(tmp_path / "a")
    assert data.parts == list(model.parts)       # balcony is one of the model's parts already
    for i in range(2):
        rec = data.building(i)
        truth = fs.RULES["corner_balconies"].label_names(rec.occupancy, rec.street_sides)
        assert rec.extras["label_fixed"].sum() == 5
        names = fs.names_of(rec.labels, data.parts)
        assert (names[rec.extras["label_fixed"]] == truth[rec.extras["label_fixed"]]).all()
        assert grid_path(tmp_path / "a", i).read_bytes() == grid_path(tmp_path / "b", i).read_bytes()


def test_fixed_faces_draws_among_the_wrong_ones():
    wrong = np.zeros((4, 4, 4, 6), bool)
    wrong[1, 2, 3, :4] = True
    a = fs.fixed_faces(wrong, 3, 0, 7)
    assert a.sum() == 3 and not (a & ~wrong).any()
    assert np.array_equal(a, fs.fixed_faces(wrong, 3, 0, 7))
    assert fs.fixed_faces(wrong, 10, 0, 7).sum() == 4
    assert fs.fixed_faces(np.zeros_like(wrong), 3, 0, 7).sum() == 0


def test_score_names_counts_by_part_name():
    truth = np.array(["wall", "wall", "window", "roof", ""], dtype=object)
    predicted = np.array(["wall", "shopfront", "window", "roof", ""], dtype=object)
    s = fs.score_names(predicted, truth, ["wall", "window", "roof", "ground"])
    assert s["faces"] == 4 and s["face_accuracy"] == 0.75
    assert s["per_class"]["wall"]["recall"] == 0.5
    assert s["per_class"]["shopfront"]["precision"] == 0.0


def test_score_predictor_of_the_rule_itself_is_perfect(tmp_path):
    class Rule:
        parts = list(fs.RULES["centred_entrances"].parts)

        def predict(self, occupancy, street=None):
            return fs.RULES["centred_entrances"].label(occupancy, street), None

    fs.build_rule_dataset("centred_entrances", 2, 8, tmp_path / "t", role="test", grid_size=(8, 8, 8))
    assert fs.score_predictor(Rule(), tmp_path / "t")["face_accuracy"] == 1.0
    assert fs.score_predictor(_Walls(), tmp_path / "t")["face_accuracy"] < 1.0


# -- the benchmark's own logic (no training) ---------------------------------------------------

def _result(ft_acc, sc_acc, ft_seconds):
    row = {"finetune": {"face_accuracy": ft_acc, "macro_f1": ft_acc, "f1": {"wall": 1.0, "roof": 1.0},
                        "seconds": ft_seconds},
           "scratch": {"face_accuracy": sc_acc, "macro_f1": sc_acc, "f1": {"wall": 0.5}, "seconds": 50.0}}
    zero = {"face_accuracy": 0.5, "macro_f1": 0.5, "f1": {"wall": 0.5}}
    return {"setup": {"machine": "m", "torch": "t", "threads": 2, "epochs": 12, "test_count": 200,
                      "test_seed": 2000, "train_seed": 1000, "correction_count": 5, "correction_seed": 3000},
            "rules": {"cornice": {"sizes": {"1": row, "10": row}, "pretrained": zero}}}


def test_bench_commands_and_targets(tmp_path):
    import bench_few_shot as bench

    ft = bench.train_command("finetune", "D", "R", ["training.epochs=12"])
    assert ft[1:] == ["-m", "proc_ml", "train", "building-parts", "--data", "D", "--out", "R", "--quiet",
                      "--init", "default", "--config", "parts_finetune", "--set", "training.epochs=12"]
    sc = bench.train_command("scratch", "D", "R", ["training.epochs=12"])
    assert "--init" not in sc and sc[sc.index("--config") + 1] == "parts_unet3d_street"
    assert sc[-2:] == ["--set", "training.epochs=12"]
    # from scratch is given fine-tuning's schedule, symmetry and inputs (bay + storey channels)
    recipe = bench.finetune_training()
    assert (recipe["inputs"], recipe["symmetry"], recipe["batch_size"]) == ("street_rhythm", "rotate", 2)

    met = bench.check_targets(_result(0.99, 0.90, 60.0))
    assert len(met) == 3 and all(ok for _, ok in met)
    missed = dict((line.split(":")[1].strip().split(" ")[0], ok)
                  for line, ok in bench.check_targets(_result(0.975, 0.96, 130.0)))
    assert missed == {"fine-tuned": False, "fine-tuning": False, "from": False}
    assert not bench.check_targets({"rules": {"cornice": {"sizes": {"3": {}}}}})

    result = _result(0.99, 0.90, 60.0)
    result["targets"] = [{"line": line, "met": ok} for line, ok in met]
    text = bench.markdown(result)
    assert "| `cornice` | 10 | 99.0% | 90.0% | 60 | 50 | wall 1.00 | wall 0.50 |" in text
    assert text.count(": met") == 3
    png = bench.plot(result, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cache_is_per_pretrained_model(tmp_path, monkeypatch):
    """A cached fine-tuning run is reused only while the installed model is the one it
    started from; a from-scratch run does not depend on it."""
    import bench_few_shot as bench

    calls = []

    def fake_run(cmd, **kw):                     # what `proc-ml train` leaves: its run folder
        calls.append(cmd)
        Path(cmd[cmd.index("--out") + 1]).mkdir(parents=True, exist_ok=True)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    run = tmp_path / "run"
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")
    digest = bench.init_digest
    assert digest(a) != digest(b) and digest(a) == digest(str(a))

    def train(init):
        return bench.train("finetune", "D", run, ["training.epochs=3"], init)
    train(digest(a))
    train(digest(a))
    assert len(calls) == 1                       # same command, same model: reused
    train(digest(b))
    assert len(calls) == 2                       # the installed model changed: trained again
    assert json.loads((run / "bench_few_shot.json").read_text())["init"] == digest(b)


def test_rule_massing_is_the_lots_the_rule_sets_were_fixed_with(tmp_path):
    """The rule sets' buildings do not change when the grammar's default lots do."""
    from proc_ml.procedural import generate_building, load_generator_config

    fs.generate_massing(4, 5, tmp_path / "massing", grid_size=(8, 8, 8))
    pinned = load_generator_config(None, ["grid.size=[8,8,8]", *fs.MASSING_OVERRIDES])
    assert pinned["facade"]["blocks"]["island"] == 0.0
    for i in range(4):
        src = grid_npz.read(grid_path(tmp_path / "massing", i))
        assert np.array_equal(src.occupancy, generate_building(pinned, 5, i).occupancy)


def test_bench_quick_presets():
    import bench_few_shot as bench

    quick = bench.parse_args(["--quick"])
    assert quick.sizes == [1, 3] and quick.test_count == 20 and quick.epochs == 2
    full = bench.parse_args([])
    assert full.sizes == [1, 3, 10, 30] and full.test_count == 200 and full.epochs is None
    assert full.corrections == [5, 20] and full.rules == list(fs.RULES)
    assert bench.parse_args(["--quick", "--sizes", "2"]).sizes == [2]


def test_fine_tuning_restarts_a_part_the_installed_model_never_learnt(tmp_path, capsys):
    """The installed model was trained on a grammar without balconies: on corner_balconies
    (balcony faces in every building) its balcony channel is silent, so fine-tuning starts
    it from the part it predicts there instead (trainers/finetune.py, "silent" parts)."""
    import json

    from proc_ml.cli import main
    from proc_ml.runtime import PartsPredictor, default_model

    data = tmp_path / "cb"
    fs.build_rule_dataset("corner_balconies", 2, 1000, data)
    out = tmp_path / "ft"
    assert main(["train", "building-parts", "--data", str(data), "--out", str(out), "--quiet",
                 "--init", "default", "--config", "parts_finetune", "--set", "training.epochs=1",
                 "--set", "training.threads=1"]) == 0
    printed = capsys.readouterr().out
    mapping = json.loads((out / "init.json").read_text())["mapping"]
    source = PartsPredictor(default_model("building-parts")).parts
    assert list(mapping["restarted"]) == ["balcony"] and mapping["restarted"]["balcony"] in source
    assert "balcony" not in mapping["kept"] and "restarted: balcony (from " in printed
