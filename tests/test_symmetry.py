"""``dataset.symmetry``: training buildings shown turned (and mirrored), every per-face array
and the street sides moving with the massing."""

from __future__ import annotations

import numpy as np
import pytest

from proc_ml.cli import main
from proc_ml.encoding import face_mask
from proc_ml.formats.grid_npz import BuildingRecord
from proc_ml.grid import DIRECTIONS
from proc_ml.symmetry import direction_permutation
from proc_ml.trainers.building_parts import transform_record

TRANSFORMS = [(turns, mirror) for turns in range(4) for mirror in (False, True)]


def _random_building(seed: int = 0, shape=(5, 7, 4)) -> BuildingRecord:
    rng = np.random.default_rng(seed)
    occ = (rng.random(shape) < 0.55).astype(np.uint8)
    mask = face_mask(occ)
    labels = np.where(mask, rng.integers(0, 5, mask.shape), -1).astype(np.int8)
    extras = {"street": np.array([True, False, False, True]),
              "label_fixed": mask & (rng.random(mask.shape) < 0.2),
              "label_known": mask.copy(),
              "neighbours": (rng.random(shape) < 0.2) & ~occ.astype(bool)}
    style = np.zeros(9, np.float32)
    style[[0, 3]] = 1.0
    style[5] = 1.0
    return BuildingRecord(3, "row", occ, labels, style, extras)


@pytest.mark.parametrize("turns, mirror", TRANSFORMS)
def test_faces_labels_and_extras_move_with_the_massing(turns, mirror):
    """The turned building's own exterior faces are exactly where the turned labels are, in
    every direction (a wrong direction permutation puts labels on faces that do not exist);
    the same part counts, and the per-cell extras turn like the occupancy."""
    record = _random_building()
    out = transform_record(record, turns, mirror)
    assert (face_mask(out.occupancy) == (out.labels >= 0)).all()
    assert (out.extras["label_known"] == face_mask(out.occupancy)).all()
    assert not (out.extras["label_fixed"] & ~face_mask(out.occupancy)).any()
    assert out.extras["label_fixed"].sum() == record.extras["label_fixed"].sum()
    assert np.array_equal(np.bincount(out.labels[out.labels >= 0]),
                          np.bincount(record.labels[record.labels >= 0]))
    assert not (out.extras["neighbours"] & out.occupancy.astype(bool)).any()
    expected_shape = record.occupancy.shape if turns % 2 == 0 else (7, 5, 4)
    assert out.occupancy.shape == expected_shape
    assert out.style[4:].tolist() == record.style[4:].tolist()      # not a side: unchanged
    assert out.extras["street"].sum() == 2 and out.style[:4].tolist() == out.extras["street"].tolist()


@pytest.mark.parametrize("turns, mirror", TRANSFORMS)
def test_street_sides_follow_the_faces_that_face_the_street(turns, mirror):
    """A building whose street faces (only those) carry part 2: after any transform, part 2 is
    exactly on the faces pointing to the sides the turned record calls street."""
    record = _random_building(1)
    sides = [DIRECTIONS.index(s) for s in ("+x", "-y")]
    mask = face_mask(record.occupancy)
    labels = np.where(mask, 0, -1).astype(np.int8)
    labels[..., sides] = np.where(mask[..., sides], 2, -1)
    record.labels = labels
    out = transform_record(record, turns, mirror)
    street = np.flatnonzero(out.extras["street"])
    assert len(street) == 2
    on_street = np.zeros(6, bool)
    on_street[street] = True
    out_mask = face_mask(out.occupancy)
    assert ((out.labels == 2) == (out_mask & on_street)).all()


def test_turns_compose_and_undo():
    record = _random_building(2)
    four = record
    for _ in range(4):
        four = transform_record(four, 1)
    assert np.array_equal(four.labels, record.labels)
    assert np.array_equal(four.occupancy, record.occupancy)
    twice = transform_record(transform_record(record, 0, True), 0, True)
    assert np.array_equal(twice.labels, record.labels)
    assert np.array_equal(twice.extras["street"], record.extras["street"])
    assert transform_record(record, 4) is record                 # identity: the record itself
    # a quarter turn moves +x faces to +y (np.rot90 over x, y), the mirror swaps +x and -x
    assert direction_permutation(1, False).tolist() == [2, 3, 1, 0, 4, 5]
    assert direction_permutation(0, True).tolist() == [1, 0, 2, 3, 4, 5]


# -- in training ----------------------------------------------------------------------------
def _task(dataset, *overrides):
    from proc_ml.trainers import load_train_config, resolve_config_path
    from proc_ml.trainers.building_parts import BuildingPartsTask

    config = load_train_config("building-parts", resolve_config_path("parts_unet3d_street"),
                               ["training.seed=5", *overrides])
    return BuildingPartsTask(config, dataset)


def test_training_items_turn_per_epoch_and_replay(tiny_dataset):
    """Training items are drawn from (seed, epoch, index): the same epoch gives the same
    items, other epochs turn the buildings differently; validation items never turn."""
    task = _task(tiny_dataset, "dataset.symmetry=dihedral")
    train = task.dataset("train")
    plain = _task(tiny_dataset).dataset("train")
    seen = []
    for epoch in range(6):
        train.set_epoch(epoch)
        x, t = train[0][:2]
        again = train[0]
        assert np.array_equal(x, again[0]) and np.array_equal(t, again[1])
        seen.append((x.shape, t.tobytes()))
    assert len(set(seen)) > 1                                    # the building turns
    # the turned targets keep the building's part counts
    counts = np.bincount(plain[0][1][plain[0][1] >= 0], minlength=8)
    train.set_epoch(3)
    t = train[0][1]
    assert np.array_equal(np.bincount(t[t >= 0], minlength=8), counts)
    val = task.dataset("val")
    val.set_epoch(3)
    assert np.array_equal(val[0][1], _task(tiny_dataset).dataset("val")[0][1])


def test_symmetry_trains_through_the_cli(tiny_dataset, tmp_path):
    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
                 "--quiet", "--config", "parts_unet3d_street", "--set", "training.epochs=1",
                 "--set", "training.threads=1", "--set", "dataset.max_buildings=4",
                 "--set", "dataset.symmetry=rotate"]) == 0
    import yaml
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["dataset"]["symmetry"] == "rotate"


@pytest.mark.parametrize("overrides, message", [
    (["dataset.symmetry=spin"], "config key 'dataset.symmetry' must be one of none, rotate, dihedral"),
    (["dataset.symmetry=rotate", "dataset.inputs=style"], "tied to the grid's axes"),
    (["dataset.symmetry=rotate", "dataset.inputs=massing"], "phase_x2"),
])
def test_symmetry_errors_are_one_line(tiny_dataset, tmp_path, capsys, overrides, message):
    args = ["train", "building-parts", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"),
            "--quiet", "--config", "parts_unet3d_street", "--set", "training.epochs=1"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_fine_tuning_a_source_tied_to_the_axes_turns_symmetry_off(tiny_unet_run, tiny_dataset,
                                                                   tmp_path, capsys):
    """parts_finetune asks for quarter turns; a style-aware source reads coordinate phases,
    so the run says so and trains without them (recorded in its config.yaml)."""
    import yaml

    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(tmp_path / "ft"),
                 "--quiet", "--init", str(tiny_unet_run), "--config", "parts_finetune",
                 "--set", "training.epochs=1", "--set", "training.threads=1",
                 "--set", "dataset.max_buildings=4"]) == 0
    assert "dataset.symmetry 'rotate' set to none: the source model reads phase_x2" in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert saved["dataset"]["symmetry"] == "none"
