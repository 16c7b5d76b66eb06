"""Several buildings in one grid (a street exported as one mesh, a Houdini SOP fed a block):
``grid.masses`` finds the masses standing apart and ``PartsPredictor`` labels each on its
own, as it labels a building alone."""

import json

import numpy as np
import pytest
import trimesh

from proc_ml.cli import main
from proc_ml.grid import NO_PART, masses
from proc_ml.runtime import PartsPredictor
from proc_ml.runtime.models import default_model


def _cells(occ, box, columns):
    return occ[box] & columns[:, :, None]


def test_masses_group_cells_by_touching_footprints():
    occ = np.zeros((12, 8, 6), bool)
    occ[0:4, 0:4, 0:3] = True                 # a house
    occ[0:4, 0:4, 4:5] = True                 # a piece floating over its roof: the same mass
    occ[4:6, 4:6, 0:2] = True                 # meets the house only at a corner: apart
    occ[8:12, 0:2, 1:4] = True                # on higher ground, an L ...
    occ[8:10, 2:6, 1:4] = True
    occ[10:12, 5:8, 3:4] = True               # ... with a wing on its top storey only
    occ[11, 4, 2:3] = True                    # and a cell under it: one mass with the L
    found = masses(occ)
    boxes = [box for box, _ in found]
    assert boxes == [(slice(0, 4), slice(0, 4), slice(0, 5)),
                     (slice(4, 6), slice(4, 6), slice(0, 2)),
                     (slice(8, 12), slice(0, 8), slice(1, 4))]
    own = [_cells(occ, box, cols) for box, cols in found]
    assert sum(int(o.sum()) for o in own) == int(occ.sum())        # every cell in one mass
    union = np.zeros_like(occ)
    for (box, _), o in zip(found, own):
        assert not (union[box] & o).any()
        union[box] |= o
    assert (union == occ).all()
    # the lowest cell of each mass is its box's first layer (its own ground floor)
    assert all(o[:, :, 0].any() for o in own)
    assert masses(np.zeros((3, 3, 3), bool)) == []
    one = np.zeros((5, 5, 5), bool)
    one[1:3, 1:4, 0:2] = True
    (box, cols), = masses(one)
    assert box == (slice(1, 3), slice(1, 4), slice(0, 2)) and cols.all()


def test_a_mass_reaching_into_anothers_box_keeps_its_own_cells():
    occ = np.zeros((8, 8, 3), bool)
    occ[0:8, 0:2, 0:3] = True                 # an L around a courtyard ...
    occ[0:2, 0:8, 0:3] = True
    occ[4:6, 4:6, 0:1] = True                 # ... with a kiosk standing in it
    (big_box, big_cols), (kiosk_box, kiosk_cols) = masses(occ)
    assert big_box == (slice(0, 8), slice(0, 8), slice(0, 3))
    big = _cells(occ, big_box, big_cols)
    assert not big[4:6, 4:6].any() and big.sum() == occ.sum() - 4
    assert _cells(occ, kiosk_box, kiosk_cols).sum() == 4


@pytest.fixture(scope="module")
def installed():
    return PartsPredictor(default_model("building-parts"))


def _street_of_two(gap=1, raise_by=1):
    """Two 4 x 3-cell houses of 3 storeys side by side along x, the second on ground one
    storey higher (a street on a slope): the grid and each house's own grid."""
    house = np.ones((4, 3, 3), np.uint8)
    grid = np.zeros((8 + gap, 3, 3 + raise_by), np.uint8)
    grid[0:4, :, 0:3] = house
    grid[4 + gap:, :, raise_by:raise_by + 3] = house
    return grid, house, (slice(0, 4), slice(None), slice(0, 3)), \
        (slice(4 + gap, None), slice(None), slice(raise_by, raise_by + 3))


def test_each_building_of_a_street_is_labelled_as_it_is_alone(installed):
    grid, house, first, second = _street_of_two()
    alone_labels, alone_probs = installed.predict(house, street=("-y",))
    labels, probs = installed.predict(grid, street=("-y",))
    for box in (first, second):
        assert (labels[box] == alone_labels).all()
        np.testing.assert_allclose(probs[box], alone_probs, atol=1e-6)
    assert (labels[grid == 0] == NO_PART).all()
    door = installed.parts.index("door")
    # each house gets its entrance, the raised one too (the entrance rule per building)
    assert (labels[first] == door).any() and (labels[second] == door).any()
    # labelled as one building, the raised house has no ground floor, so no entrance
    together, _ = installed.predict(grid, street=("-y",), separate=False)
    assert not (together[second] == door).any()


def test_the_other_masses_are_neighbours_for_a_model_that_reads_them(installed, monkeypatch):
    grid, _, first, second = _street_of_two(gap=1, raise_by=0)
    seen = []
    original = installed._predict

    def spy(occs, inputs, batch_size, neighbours, weights):
        seen.extend((o.shape, None if n is None else n.sum()) for o, n in zip(occs, neighbours))
        return original(occs, inputs, batch_size, neighbours, weights)

    monkeypatch.setattr(installed, "_predict", spy)
    installed.predict(grid, street=("-y",), symmetry="none")
    # each house in a grid of its own: no other mass inside its box, so no neighbour cells
    assert seen == [((4, 3, 3), 0), ((4, 3, 3), 0)]
    given = np.zeros(grid.shape, bool)
    given[4, :, 0] = True                                  # a neighbour cell in the gap
    seen.clear()
    with pytest.raises(Exception, match="neighbours grid"):
        installed.predict(grid, street=("-y",), neighbours=given[:-1], symmetry="none")
    installed.predict(grid, street=("-y",), neighbours=given, symmetry="none")
    assert [n for _, n in seen] == [0, 0]                  # outside both boxes


def test_a_mesh_of_several_buildings_labels_each_on_its_own(tmp_path, capsys):
    boxes = []
    for x, z in ((0.0, 0.0), (15.0, 3.0)):  # two 12 x 9 x 9 m houses 3 m apart, one raised
        box = trimesh.creation.box(extents=(12.0, 9.0, 9.0))
        box.apply_translation((x + 6.0, 4.5, z + 4.5))
        boxes.append(box)
    summaries = {}
    for name, mesh in (("street.obj", trimesh.util.concatenate(boxes)), ("house.obj", boxes[0])):
        path = tmp_path / name
        mesh.export(path)
        out = tmp_path / name.replace(".obj", "")
        assert main(["predict", "building-parts", "--input", str(path), "--out", str(out),
                     "--street", "-y", "--up", "z"]) == 0
        summaries[name] = json.loads((out / "summary.json").read_text())
    street, house = summaries["street.obj"], summaries["house.obj"]
    assert street["masses"] == 2 and house["masses"] == 1
    assert any("2 masses standing apart" in n and "each was labelled on its own" in n
               for n in street["notes"]), street["notes"]
    assert not any("standing apart" in n for n in house["notes"])
    # the same parts on each house as on the house alone: twice its faces, part by part
    assert street["faces"] == 2 * house["faces"], (street, house)
    assert {k: 2 * v for k, v in house["faces_per_part"].items()} == street["faces_per_part"]
