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
    assert street["buildings"] == 2 and house["buildings"] == 1
    assert street["buildings_from"] == "masses"
    assert any("2 masses standing apart" in n and "each was labelled on its own" in n
               for n in street["notes"]), street["notes"]
    assert not any("standing apart" in n for n in house["notes"])
    # the same parts on each house as on the house alone: twice its faces, part by part
    assert street["faces"] == 2 * house["faces"], (street, house)
    assert {k: 2 * v for k, v in house["faces_per_part"].items()} == street["faces_per_part"]


# -- buildings given in pieces (row houses that touch) ------------------------------------
def _row(n=3):
    """``n`` 4 x 3 x 3-cell houses in a row, touching: one mass; their building numbers."""
    row = np.ones((4 * n, 3, 3), np.uint8)
    ids = np.repeat(np.arange(n), 4)[:, None, None] * np.ones((1, 3, 3), np.int64)
    return row, ids


def test_row_houses_given_as_buildings_each_get_a_door(installed):
    from proc_ml.encoding import face_mask

    row, ids = _row()
    house = np.ones((4, 3, 3), np.uint8)
    door = installed.parts.index("door")
    together, _ = installed.predict(row, street=("-y",))
    labels, probs = installed.predict(row, street=("-y",), buildings=ids)
    alone, _ = installed.predict(house, street=("-y",))
    # one mass: one entrance for the row; given as buildings: one per house, as alone
    assert 0 < (together == door).sum() < 3 * (alone == door).sum()
    for k in range(3):
        mine = labels[4 * k:4 * k + 4]
        assert (mine == door).sum() == (alone == door).sum(), k
        # the street facade of each house is labelled as the house alone
        assert (mine[:, 0, :, 3] == alone[:, 0, :, 3]).all(), k
    # the party walls between two houses are inside the row: no part, no probabilities
    assert ((labels >= 0) == face_mask(row)).all()
    assert (probs[labels < 0] == 0).all()
    assert (labels[3, :, :, 0] == NO_PART).all() and (labels[4, :, :, 1] == NO_PART).all()
    # separate=False does not undo buildings given explicitly
    same, _ = installed.predict(row, street=("-y",), buildings=ids, separate=False)
    assert (same == labels).all()


def test_buildings_grid_errors_are_one_line(installed):
    row, ids = _row()
    with pytest.raises(Exception, match="buildings grid"):
        installed.predict(row, buildings=ids[:-1])
    with pytest.raises(Exception, match="buildings grid"):
        installed.predict(row, buildings=ids.astype(float))
    ids = ids.copy()
    ids[0, 0, 0] = -1
    with pytest.raises(Exception, match="1 filled cell"):
        installed.predict(row, buildings=ids)


def test_voxelize_tells_which_piece_each_cell_belongs_to():
    from proc_ml.voxelize import voxelize

    boxes = []
    for k, depth in enumerate((9.0, 12.0, 9.0)):            # three touching houses
        box = trimesh.creation.box(extents=(12.0, depth, 9.0))
        box.apply_translation((6.0 + 12.0 * k, depth / 2, 4.5))
        boxes.append(box)
    row = trimesh.util.concatenate(boxes)
    pieces = np.repeat([5, 2, 7], 12)                       # any numbers >= 0
    grid = voxelize(row.vertices, row.faces, 3.0, pieces=pieces)
    assert grid.occupancy.shape == (12, 4, 3)
    assert (grid.pieces[:4][grid.occupancy[:4] > 0] == 5).all()
    assert (grid.pieces[4:8][grid.occupancy[4:8] > 0] == 2).all()
    assert (grid.pieces[8:][grid.occupancy[8:] > 0] == 7).all()
    assert ((grid.pieces >= 0) == (grid.occupancy > 0)).all()
    assert voxelize(row.vertices, row.faces, 3.0).pieces is None
    # a house modelled without its floor next to a closed one: the open one's surface claims
    # the cells it passes through, and the cells inside it are grown from them
    shell = trimesh.creation.box(extents=(12.0, 9.0, 9.0))
    shell.apply_translation((18.0, 4.5, 4.5))
    keep = shell.face_normals[:, 2] > -0.5
    both = trimesh.util.concatenate([boxes[0], trimesh.Trimesh(shell.vertices, shell.faces[keep])])
    grid = voxelize(both.vertices, both.faces, 3.0, pieces=np.repeat([0, 1], [12, int(keep.sum())]))
    assert grid.occupancy.sum() == 2 * 4 * 3 * 3                   # both solid
    assert (grid.pieces[:4][grid.occupancy[:4] > 0] == 0).all()
    assert (grid.pieces[4:][grid.occupancy[4:] > 0] == 1).all()
    with pytest.raises(ValueError, match="one number >= 0 per triangle"):
        voxelize(row.vertices, row.faces, 3.0, pieces=pieces[:-1])
    with pytest.raises(ValueError, match="one number >= 0 per triangle"):
        voxelize(row.vertices, row.faces, 3.0, pieces=-pieces)


def test_a_piece_holding_masses_apart_is_still_split(installed):
    """One building number over two houses standing apart (a street imported with one
    ``name``): labelled mass by mass as without numbers; ``separate=False`` keeps it one."""
    grid, house, first, second = _street_of_two()
    ids = np.where(grid > 0, 0, -1)
    plain, _ = installed.predict(grid, street=("-y",))
    numbered, _ = installed.predict(grid, street=("-y",), buildings=ids)
    assert (plain == numbered).all()
    together, _ = installed.predict(grid, street=("-y",), separate=False)
    one, _ = installed.predict(grid, street=("-y",), buildings=ids, separate=False)
    assert (together == one).all() and not (one == plain).all()


def test_pieces_over_the_same_ground_are_one_building(installed):
    """A house whose top storey and roof are pieces of their own (an FBX's meshes, all named):
    numbers sharing a column are one building, labelled as the house without numbers; the
    row houses beside it, sharing only a wall, stay apart."""
    row, ids = _row()
    ids = ids.copy()
    ids[0:4, :, 2] = 9                     # the first house's top storey: a piece of its own
    ids[1:3, 1, 1] = 8                     # and a piece inside it
    labels, _ = installed.predict(row, street=("-y",), buildings=ids)
    plain_ids = np.repeat(np.arange(3), 4)[:, None, None] * np.ones((1, 3, 3), np.int64)
    expected, _ = installed.predict(row, street=("-y",), buildings=plain_ids)
    assert (labels == expected).all()


def test_split_pieces_gives_each_piece_its_own_quads(installed):
    """``predict_polygon_pieces`` + ``split_pieces`` (what the Blender operator does with
    selected objects that touch): every quad goes to exactly one piece, points and all."""
    from proc_ml.dcc.predict import PartsSession, predict_polygon_pieces
    from proc_ml.dcc.prims import split_pieces

    def box(x0, x1):
        corners = np.array([[x, y, z] for z in (0, 9) for y in (0, 9) for x in (x0, x1)], float)
        faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
        return corners, np.full(6, 4), np.array(faces).reshape(-1)

    session = PartsSession(installed, tuple(installed.parts), np.zeros((len(installed.parts), 3)))
    whole = predict_polygon_pieces(session, [box(0, 12), box(12, 24)], 3.0, street=("-y",))
    first, second = split_pieces(whole, 2)
    assert len(first) + len(second) == len(whole) == 2 * 66 - 2 * 9    # 4 x 3 x 3 cells each
    for piece, own in ((0, first), (1, second)):
        rows = np.flatnonzero(whole.piece == piece)
        assert (own.part == whole.part[rows]).all() and (own.piece == piece).all()
        corners = own.points[own.polygons]                             # [F, 4, 3]
        assert np.allclose(corners, whole.points[whole.polygons[rows]])
    assert first.points[:, 0].max() <= 12 + 1e-9 and second.points[:, 0].min() >= 12 - 1e-9


def _row_obj(path, names=("house_a", "house_b", "house_c"), roof_apart=False):
    """Three touching 12 x 9 x 9 m houses as the objects of one OBJ file (``o`` lines), all
    with one material; with ``roof_apart`` the first house's top storey is an object of its
    own (as kit houses and FBX exports come)."""
    lines, base = ["mtllib none.mtl"], 0
    boxes = [(name, (12.0 * k, 0.0, 0.0), (12.0 * k + 12, 9.0, 9.0)) for k, name in enumerate(names)]
    if roof_apart:
        boxes[0] = (names[0], (0.0, 0.0, 0.0), (12.0, 9.0, 6.0))
        boxes.append(("house_a_top", (0.0, 0.0, 6.0), (12.0, 9.0, 9.0)))
    for name, low, high in boxes:
        lines.append(f"o {name}")
        corners = [(x, y, z) for z in (low[2], high[2]) for y in (low[1], high[1]) for x in (low[0], high[0])]
        lines += [f"v {x} {y} {z}" for x, y, z in corners]
        lines.append("usemtl plaster")
        for face in [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]:
            lines.append("f " + " ".join(str(base + i + 1) for i in face))
        base += 8
    path.write_text("\n".join(lines) + "\n")
    return path


def test_buildings_objects_labels_each_object_of_a_file(tmp_path, capsys):
    """``--buildings objects``: the three touching houses of an OBJ (one mass) are labelled
    one by one, each with its entrance; a storey modelled as an object of its own stays with
    its house; glTF nodes are objects too. Without it, the row is one building."""
    door = "door"
    row = _row_obj(tmp_path / "row.obj")
    summaries = {}
    for name, args in (("masses", []), ("objects", ["--buildings", "objects"])):
        out = tmp_path / name
        assert main(["predict", "building-parts", "--input", str(row), "--out", str(out),
                     "--street", "-y", "--up", "z", *args]) == 0
        summaries[name] = json.loads((out / "summary.json").read_text())
    masses_, objects = summaries["masses"], summaries["objects"]
    assert masses_["buildings"] == 1 and objects["buildings"] == 3
    assert objects["buildings_from"] == "objects"
    assert any("3 object(s) make 3 building(s)" in n for n in objects["notes"]), objects["notes"]
    assert objects["faces"] == masses_["faces"]                  # the same outside faces
    alone_out = tmp_path / "alone"
    house = _row_obj(tmp_path / "house.obj", names=("house",))
    assert main(["predict", "building-parts", "--input", str(house), "--out", str(alone_out),
                 "--street", "-y", "--up", "z"]) == 0
    alone = json.loads((alone_out / "summary.json").read_text())
    assert objects["faces_per_part"].get(door, 0) == 3 * alone["faces_per_part"][door]
    assert masses_["faces_per_part"].get(door, 0) < 3 * alone["faces_per_part"][door]
    # a storey as an object of its own: 4 objects, still 3 buildings
    out = tmp_path / "storey"
    assert main(["predict", "building-parts", "--input", str(_row_obj(tmp_path / "s.obj",
                 roof_apart=True)), "--out", str(out), "--street", "-y", "--up", "z",
                 "--buildings", "objects"]) == 0
    storey = json.loads((out / "summary.json").read_text())
    assert storey["buildings"] == 3 and storey["faces_per_part"] == objects["faces_per_part"]
    # glTF: each node an object
    scene = trimesh.Scene()
    for k in range(3):
        box = trimesh.creation.box(extents=(12.0, 9.0, 9.0))
        box.apply_translation((12.0 * k + 6, 4.5, 4.5))
        scene.add_geometry(box, node_name=f"house_{k}", geom_name=f"house_{k}")
    glb = tmp_path / "row.glb"
    glb.write_bytes(scene.export(file_type="glb"))
    out = tmp_path / "glb"
    assert main(["predict", "building-parts", "--input", str(glb), "--out", str(out),
                 "--street", "-y", "--up", "z", "--buildings", "objects"]) == 0
    assert json.loads((out / "summary.json").read_text())["faces_per_part"] == objects["faces_per_part"]


def test_batch_takes_buildings_objects(tmp_path):
    folder = tmp_path / "assets"
    folder.mkdir()
    _row_obj(folder / "row.obj")
    runs = {}
    for name, args in (("masses", []), ("objects", ["--buildings", "objects"])):
        out = tmp_path / name
        assert main(["batch", str(folder), "--task", "parts", "--out", str(out), "--street", "-y",
                     "--up", "z", *args]) == 0
        runs[name] = json.loads((out / "row.obj" / "summary.json").read_text())
    assert runs["masses"]["buildings"] == 1 and runs["objects"]["buildings"] == 3
    with pytest.raises(SystemExit):
        main(["batch", str(folder), "--task", "parts", "--out", str(tmp_path / "x"),
              "--buildings", "rooms"])
