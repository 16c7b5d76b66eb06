"""Mesh -> occupancy grid (closed and open meshes, y-up files) and labels back onto meshes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from proc_ml.grid import exterior_faces
from proc_ml.meshing import quad_mesh
from proc_ml.voxelize import (from_z_up, is_closed, transfer_labels, voxelize, voxelize_file,
                              voxelize_mesh)


def _l_shape():
    occ = np.zeros((4, 4, 3), np.uint8)
    occ[:4, :2] = 1
    occ[:2, :4, :2] = 1
    return occ


def test_box_fills_solid_with_origin_and_cell_size():
    box = trimesh.creation.box(extents=(9.0, 6.0, 12.0))
    box.apply_translation((14.5, 3.0, 6.0))
    grid = voxelize_mesh(box, 3.0)
    assert grid.closed and grid.occupancy.shape == (3, 2, 4) and grid.occupancy.all()
    np.testing.assert_allclose(grid.origin, (10.0, 0.0, 0.0))
    # the output quads sit exactly on the input box
    np.testing.assert_allclose(grid.quads().vertices.min(0), box.bounds[0])
    np.testing.assert_allclose(grid.quads().vertices.max(0), box.bounds[1])


def test_l_shape_quad_mesh_voxelises_back_to_its_grid():
    occ = _l_shape()
    mesh = quad_mesh(occ, None, 2.5, (1.0, -2.0, 0.5))
    assert is_closed(mesh.vertices, mesh.triangles)
    grid = voxelize(mesh.vertices, mesh.triangles, 2.5)
    assert np.array_equal(grid.occupancy, occ)
    np.testing.assert_allclose(grid.origin, (1.0, -2.0, 0.5))


def test_rotated_sphere_volume_is_close():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    grid = voxelize_mesh(sphere, 1.0)
    assert grid.closed
    assert grid.occupancy.sum() == pytest.approx(sphere.volume, rel=0.03)


def test_open_mesh_without_floor_fills_and_a_lone_wall_stays_a_wall():
    occ = _l_shape()
    mesh = quad_mesh(occ, None, 3.0)
    no_floor = mesh.triangles[np.repeat(mesh.directions != 5, 2)]
    grid = voxelize(mesh.vertices, no_floor, 3.0)
    assert not grid.closed
    assert np.array_equal(grid.occupancy, occ)
    wall = trimesh.Trimesh([[0, 0, 0], [6, 0, 0], [6, 0, 9], [0, 0, 9]], [[0, 1, 2], [0, 2, 3]])
    wall_grid = voxelize_mesh(wall, 3.0)
    assert wall_grid.occupancy.shape == (2, 1, 3) and wall_grid.occupancy.all()


HOUSE_V = np.array([[0, 0, 0], [12, 0, 0], [12, 9, 0], [0, 9, 0], [0, 0, 6], [12, 0, 6],
                    [12, 9, 6], [0, 9, 6], [0, 4.5, 10.5], [12, 4.5, 10.5]], float)
HOUSE_F = np.array([[0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4],
                    [3, 4, 7], [4, 5, 9], [4, 9, 8], [6, 7, 8], [6, 8, 9], [5, 6, 9], [7, 4, 8],
                    [0, 3, 2], [0, 2, 1]])


def test_a_z_up_gltf_is_read_as_specified_with_a_note(tmp_path):
    for name, vertices, noted in (("z_up.glb", HOUSE_V, True),
                                  ("y_up.glb", from_z_up(HOUSE_V, "y"), False)):
        path = tmp_path / name
        path.write_bytes(trimesh.Trimesh(vertices, HOUSE_F, process=False).export(file_type="glb"))
        grid, _ = voxelize_file(path, 3.0)
        assert grid.up == "y"
        assert any("read lying on its side; pass --up z" in n for n in grid.notes) == noted, grid.notes
        assert voxelize_file(path, 3.0, up="z")[0].notes == []


def test_a_floorless_building_fills_by_the_centre_rule_of_a_closed_one():
    """A mesh open only at its bottom is filled like its closed self: a 10 m box at 3 m
    cells has 3 storeys (the 4th layer's centre, 10.5 m, is above the roof), not 4; a
    floorless gabled house fills under its roof slopes as the closed house does."""
    box = trimesh.creation.box(extents=(9.0, 6.0, 10.0))
    box.apply_translation((4.5, 3.0, 5.0))
    floorless = box.faces[box.face_normals[:, 2] > -0.5]
    closed, open_ = voxelize_mesh(box, 3.0), voxelize(box.vertices, floorless, 3.0)
    assert not open_.closed and closed.closed
    assert np.array_equal(open_.occupancy, closed.occupancy)
    assert open_.occupancy.sum() == 3 * 2 * 3
    # a gabled house: walls to 6 m, ridge at 10.5 m along x
    v, f = HOUSE_V, HOUSE_F
    house = voxelize(v, f, 3.0)
    no_floor = voxelize(v, f[:-2], 3.0)
    assert house.closed and not no_floor.closed
    assert np.array_equal(no_floor.occupancy, house.occupancy)
    # open elsewhere (no roof): the surface-and-fill rule still holds the walls' cells
    roofless = voxelize(box.vertices, box.faces[box.face_normals[:, 2] < 0.5], 3.0)
    assert roofless.occupancy.sum() == 3 * 2 * 4


def test_y_up_glb_is_rotated_to_z_up_and_back(tmp_path):
    occ = _l_shape()
    mesh = quad_mesh(occ, None, 3.0, (3.0, 0.0, 0.0))
    y_up = trimesh.Trimesh(from_z_up(mesh.vertices, "y"), mesh.triangles, process=False)
    path = tmp_path / "l.glb"
    path.write_bytes(y_up.export(file_type="glb"))
    grid, loaded = voxelize_file(path, 3.0)              # default: y-up for glTF
    assert grid.up == "y" and np.array_equal(grid.occupancy, occ)
    np.testing.assert_allclose(grid.quads().vertices.min(0), loaded.vertices.min(0), atol=1e-5)
    np.testing.assert_allclose(grid.quads().vertices.max(0), loaded.vertices.max(0), atol=1e-5)
    z_read, _ = voxelize_file(path, 3.0, up="z")          # read as z-up, the L lies on its side
    assert z_read.occupancy.shape == (4, 3, 4)


def test_transfer_labels_puts_each_predicted_part_on_its_triangles():
    occ = _l_shape()
    rng = np.random.default_rng(0)
    labels = np.where(exterior_faces(occ), rng.integers(0, 5, occ.shape + (6,)), -1).astype(np.int8)
    source = quad_mesh(occ, labels, 3.0, (0.0, 0.0, 0.0))
    grid = voxelize(source.vertices, source.triangles, 3.0)
    parts = transfer_labels(source.vertices, source.triangles, grid, labels)
    assert np.array_equal(parts, source.triangle_parts)


def test_unit_mismatch_is_refused():
    box = trimesh.creation.box(extents=(900.0, 600.0, 1200.0))
    with pytest.raises(ValueError, match="larger cell size"):
        voxelize_mesh(box, 3.0)
    # a building in hundredths of its units (0.09 x 0.06 x 0.12): refused whether it is
    # closed or open, rather than labelled as a one-cell building
    small = trimesh.creation.box(extents=(0.09, 0.06, 0.12))
    for faces in (small.faces, small.faces[2:]):
        with pytest.raises(ValueError, match=r"0.09 x 0.06 x 0.12 units, smaller than one cell"):
            voxelize(small.vertices, faces, 3.0)
    assert voxelize(small.vertices, small.faces, 0.03).occupancy.shape == (3, 2, 4)


def test_intersecting_closed_parts_fill_their_union_not_their_parity():
    """A block-out of two overlapping boxes (each closed and outward-facing): the overlap is
    inside both, winding number 2; parity would call it outside."""
    a = trimesh.creation.box(extents=(6.0, 3.0, 3.0))
    a.apply_translation((3.0, 1.5, 1.5))
    b = trimesh.creation.box(extents=(3.0, 6.0, 3.0))
    b.apply_translation((1.5, 3.0, 1.5))
    vertices = np.concatenate([a.vertices, b.vertices])
    triangles = np.concatenate([a.faces, b.faces + len(a.vertices)])
    assert is_closed(vertices, triangles)
    grid = voxelize(vertices, triangles, 1.0, align=False)
    expected = np.zeros((6, 6, 3), dtype=bool)
    expected[:, :3] = True
    expected[:3, :] = True
    np.testing.assert_array_equal(grid.occupancy.astype(bool), expected)
    # one inverted triangle breaks the orientation: the parity rule is used instead
    flipped = triangles.copy()
    flipped[0] = flipped[0, ::-1]
    parity = voxelize(vertices, flipped, 1.0, align=False).occupancy.astype(bool)
    assert not parity[:3, :3].any() and parity[4:, :3].all()


def test_a_mesh_whose_size_looks_like_other_units_gets_a_note(tmp_path):
    from proc_ml.voxelize import scale_note

    assert scale_note((12.0, 9.0, 15.0), 3.0) is None                     # a house in metres
    assert scale_note((30.0, 30.0, 140.0), 3.0) is None                   # a tower
    kit = scale_note((1.0, 1.0, 1.2), 3.0)                                # a game-kit tile
    assert "one or two cells" in kit and "pass --cell-size a 3 m storey" in kit and "1 x 1 x 1.2" in kit
    cm = scale_note((1200.0, 900.0, 600.0), 3.0)                          # a house in cm
    assert "200 cells of 3 tall" in cm and "pass --cell-size a 3 m storey in its units (centimetres: 300" in cm
    assert scale_note((1200.0, 900.0, 600.0), 300.0) is None              # ... read in cm
    trimesh.creation.box(extents=(4.0, 4.0, 4.0)).export(tmp_path / "tile.obj")
    grid, _ = voxelize_file(tmp_path / "tile.obj", 3.0, up="z")
    assert any("one or two cells" in n for n in grid.notes)
    grid, _ = voxelize_file(tmp_path / "tile.obj", 0.25, up="z")
    assert not any("units" in n for n in grid.notes)


def _labels_by_facing(occ):
    """wall (0) on side faces, roof (3) on top faces, ground (6) on bottom faces."""
    labels = np.zeros(occ.shape + (6,), dtype=np.int8)
    labels[..., 4], labels[..., 5] = 3, 6
    return np.where(exterior_faces(occ), labels, -1).astype(np.int8)


def test_transferred_labels_follow_the_triangles_facing_and_skip_inner_slabs():
    """Three storeys modelled as three stacked boxes off the cell boundaries (a common
    block-out): wall triangles take wall faces (not the roof or ground faces along their
    edges), the outer top and bottom take roof and ground, and the slabs between the boxes,
    inside the massing, stay unlabelled."""
    boxes = []
    for storey in range(3):
        box = trimesh.creation.box(extents=(16.4, 10.6, 3.7))
        box.apply_translation((8.2, 5.3, 1.85 + 3.7 * storey))
        boxes.append(box)
    mesh = trimesh.util.concatenate(boxes)
    grid = voxelize(mesh.vertices, mesh.faces, 3.0, align=False)
    labels = _labels_by_facing(grid.occupancy)
    parts = transfer_labels(mesh.vertices, mesh.faces, grid, labels)
    normal_z = mesh.face_normals[:, 2]
    height = mesh.triangles_center[:, 2]
    assert np.all(parts[np.abs(normal_z) < 0.5] == 0)                      # every wall
    assert np.all(parts[(normal_z > 0.5) & (height > 11)] == 3)            # the roof
    assert np.all(parts[(normal_z < -0.5) & (height < 0.1)] == 6)          # the ground
    inner = (np.abs(normal_z) > 0.5) & (height > 0.1) & (height < 11)
    assert inner.sum() == 8 and np.all(parts[inner] == -1)                 # two slabs, both sides



def test_up_axis_is_not_tipped_by_a_shed_roof_or_inward_triangles():
    """A closed shed with a 10-degree mono-pitch roof (its back wall taller than its front)
    and a box with three wall triangles wound inward are z-up, read either way round; a
    closed gabled house is told by its roof slopes."""
    from proc_ml.voxelize import detect_up

    h = 6 + 20 * np.tan(np.radians(10))
    shed = trimesh.convex.convex_hull(np.array(
        [[0, 0, 0], [40, 0, 0], [40, 20, 0], [0, 20, 0], [0, 0, 6], [40, 0, 6], [40, 20, h],
         [0, 20, h]], float))
    assert detect_up(shed.vertices, shed.faces) == ("z", True)
    assert detect_up(from_z_up(shed.vertices, "y"), shed.faces) == ("y", True)
    box = trimesh.creation.box(extents=(12, 9, 15))
    faces = box.faces.copy()
    faces[:3] = faces[:3, ::-1]
    assert detect_up(box.vertices, faces)[0] == "z"
    assert detect_up(HOUSE_V, HOUSE_F) == ("z", True)
    assert detect_up(from_z_up(HOUSE_V, "y"), HOUSE_F) == ("y", True)


def _roof_slab(top, thickness):
    """A closed roof slab: its upper face (a planar polygon) and that face pushed down by
    ``thickness`` along its normal, as game kits and asset-store houses model roofs."""
    top = np.asarray(top, dtype=np.float64)
    normal = np.cross(top[1] - top[0], top[2] - top[0])
    normal /= np.linalg.norm(normal) * np.sign(normal[2])
    return trimesh.convex.convex_hull(np.vstack([top, top - thickness * normal]))


def _kit_house(roof, overhang=0.4, pitch=35.0, t=0.2, ridge="y", turn=0.0):
    """A z-up kit house square to the axes: a closed body box 4 wide (x), 6 deep (y), 3 tall,
    under a roof pitched at ``pitch`` degrees whose eaves overhang the walls by ``overhang``:
    "gable": two closed slabs ``t`` thick resting on the wall tops and passing each other at
    the ridge; "mitred": two slabs cut to meet in a vertical plane at the ridge; "hip": four
    slabs; "solid": one closed gable prism on the body. The ridge runs along ``ridge``, and
    the whole house is turned by ``turn`` degrees about z."""
    w, d, h = 4.0, 6.0, 3.0
    tan, cos, sin = (f(np.radians(pitch)) for f in (np.tan, np.cos, np.sin))
    body = trimesh.creation.box(extents=(w, d, h))
    body.apply_translation((0, 0, h / 2))
    parts = [body]
    under = lambda x: h + (w / 2 - abs(x)) * tan            # noqa: E731  the slabs' underside
    if roof in ("gable", "mitred"):
        for side in (-1, 1):
            eave, ends = side * (w / 2 + overhang), (-d / 2 - overhang, d / 2 + overhang)
            if roof == "gable":    # a rectangle on the upper plane, a little past the ridge
                past = -side * t * sin
                top = lambda x: h + (w / 2 - side * x) * tan + t / cos   # noqa: E731
                parts.append(_roof_slab([[eave, ends[0], top(eave)], [past, ends[0], top(past)],
                                         [past, ends[1], top(past)], [eave, ends[1], top(eave)]], t))
            else:
                parts.append(trimesh.convex.convex_hull(np.array(
                    [[x, y, under(x) + lift] for x in (eave, 0.0) for y in ends
                     for lift in (0.0, t / cos)])))
    elif roof == "hip":
        ew, ed = w / 2 + overhang, d / 2 + overhang
        z0 = h - overhang * tan + t / cos
        ridge_z, ridge_y = z0 + ew * tan, ed - ew
        a, b, c, e = [-ew, -ed, z0], [ew, -ed, z0], [ew, ed, z0], [-ew, ed, z0]
        r1, r2 = [0, -ridge_y, ridge_z], [0, ridge_y, ridge_z]
        parts += [_roof_slab(face, t) for face in ([a, b, r1], [b, c, r2, r1], [c, e, r2],
                                                    [e, a, r1, r2])]
    else:
        parts.append(trimesh.convex.convex_hull(np.array(
            [[x, y, under(x)] for x in (-w / 2, 0.0, w / 2) for y in (-d / 2, d / 2)])))
    house = trimesh.util.concatenate(parts)
    angle = np.radians(turn + (90.0 if ridge == "x" else 0.0))
    turned = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                       [0, 0, 1]])
    return house.vertices @ turned.T + (10.0, 20.0, 0.0), house.faces


@pytest.mark.parametrize("roof", ["gable", "mitred", "hip", "solid"])
@pytest.mark.parametrize("overhang", [0.4, 0.0])
def test_kit_houses_with_closed_roof_slabs_stand_up_either_way_round(roof, overhang):
    """A kit house square to the axes whose pitched roof is made of closed slabs 0.2 thick:
    each slab's top face points up and its bottom face down, so the lopsidedness cancels, and
    read on its side a slab's two faces are a level pair not square to the axes, which the
    wall cue took for walls: it was read on the wrong axis whichever way it was written.
    Its sloped faces lie in the top half along the true axis only (roofs on top). Turned 20
    degrees about the up axis, its walls tell it too."""
    from proc_ml.voxelize import detect_up

    for ridge in ("y", "x"):
        for turn in (0.0, 20.0):
            v, f = _kit_house(roof, overhang, ridge=ridge, turn=turn)
            assert detect_up(v, f) == ("z", True), (ridge, turn)
            assert detect_up(from_z_up(v, "y"), f) == ("y", True), (ridge, turn)
    v, f = _kit_house("hip", overhang, pitch=55.0)                  # a steep roof, low body
    assert detect_up(v, f) == ("z", True)
    assert detect_up(from_z_up(v, "y"), f) == ("y", True)


def test_overlapping_closed_parts_stay_solid_when_some_triangles_face_inward():
    """A tower pushed into a podium (two closed boxes): with every triangle facing out they
    fill by winding number; with one triangle wound inward (winding means nothing) each part
    fills by parity and the parts are united, so no void opens where they overlap."""
    from proc_ml.voxelize import mesh_parts

    podium = trimesh.creation.box(extents=(30, 30, 6))
    podium.apply_translation((15, 15, 3))
    tower = trimesh.creation.box(extents=(9, 9, 30))
    tower.apply_translation((10.5, 10.5, 15))
    block = trimesh.util.concatenate([podium, tower])
    faces = block.faces.copy()
    faces[0] = faces[0, ::-1]
    outward, one_inward = voxelize_mesh(block, 3.0), voxelize(block.vertices, faces, 3.0)
    assert len(mesh_parts(block.vertices, faces)) == 2
    assert one_inward.closed and np.array_equal(one_inward.occupancy, outward.occupancy)
    assert outward.occupancy.sum() == 10 * 10 * 2 + 3 * 3 * 8


def _double_sided(vertices, faces):
    """What a double-sided export (Kenney's OBJ kits) writes: every triangle twice, the
    copy wound the other way, on its own vertices."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    return np.vstack([vertices, vertices]), np.vstack([faces, faces[:, ::-1] + len(vertices)])


def test_double_sided_exports_fill_like_the_single_sided_mesh(tmp_path):
    """Every triangle written twice, wound both ways: a ray crosses each surface twice, so
    the copy made an open shell look closed (and a closed one cancel its winding) and the
    grid came out empty ("nothing to label"); the repeats are now dropped first."""
    from proc_ml.voxelize import detect_up, unique_triangles

    box = trimesh.creation.box(extents=(9, 6, 6))
    box.apply_translation([4.5, 3, 3])
    closed = voxelize(box.vertices, box.faces, 3.0, align=False).occupancy
    assert closed.sum() == 3 * 2 * 2
    v, f = _double_sided(box.vertices, box.faces)
    assert len(unique_triangles(v, f)) == len(box.faces)
    np.testing.assert_array_equal(voxelize(v, f, 3.0, align=False).occupancy, closed)
    # an open shell (a block-out without its floor), double-sided
    floorless = box.faces[box.face_normals[:, 2] > -0.5]
    v, f = _double_sided(box.vertices, floorless)
    np.testing.assert_array_equal(voxelize(v, f, 3.0, align=False).occupancy, closed)
    # and through the file reader, as the Kenney OBJ was read
    trimesh.Trimesh(v, f, process=False).export(tmp_path / "double.obj")
    grid, _ = voxelize_file(tmp_path / "double.obj", 3.0, up="z", align=False)
    np.testing.assert_array_equal(grid.occupancy, closed)
    # the copies no longer cancel the roof slopes that tell a y-up house
    v, f = _double_sided(from_z_up(HOUSE_V, "y"), HOUSE_F)
    assert detect_up(v, f) == ("y", True)


def test_stacked_solids_keep_both_sides_of_the_face_they_share():
    """Two closed boxes stacked with the same triangles on the face they share, wound
    opposite ways: not a double-sided export, so both sides stay and the mesh stays closed
    (dropping one side left the lower box without its top); a copy wound the same way is
    still dropped."""
    from proc_ml.voxelize import is_closed, unique_triangles

    lower = trimesh.creation.box(extents=(9, 9, 3))
    lower.apply_translation([4.5, 4.5, 1.5])
    upper = lower.copy()
    mirror = np.eye(4)
    mirror[2, 2], mirror[2, 3] = -1.0, 6.0      # z -> 6 - z: the shared face's own triangles
    upper.apply_transform(mirror)
    if upper.volume < 0:
        upper.invert()
    stack = trimesh.util.concatenate([lower, upper])
    v, f = stack.vertices, stack.faces
    sorted_faces = np.sort(np.unique(np.round(v, 9), axis=0, return_inverse=True)[1].reshape(-1)[f], axis=1)
    assert len(np.unique(sorted_faces, axis=0)) < len(f)      # the shared face's pairs exist
    assert len(unique_triangles(v, f)) == len(f) and is_closed(v, unique_triangles(v, f))
    assert voxelize(v, f, 3.0, align=False).occupancy.sum() == 3 * 3 * 2
    doubled = np.concatenate([f, f[:4]])                       # 4 triangles written twice
    assert len(unique_triangles(v, doubled)) == len(f)
