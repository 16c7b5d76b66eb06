"""The Blender add-on in real bpy (Blender as a Python module): register it, run the
operator on a generated building and on a hand-built L-shaped block, check the result."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

REPO = Path(__file__).resolve().parents[1]
ADDON_DIR = REPO / "blender_addon"
sys.path.insert(0, str(ADDON_DIR))

import proc_ml_parts  # noqa: E402

from proc_ml.grid import exterior_faces  # noqa: E402
from proc_ml.meshing import quad_mesh  # noqa: E402
from proc_ml.procedural import generate_building  # noqa: E402
from proc_ml.procedural.config import default_config  # noqa: E402

CELL = 3.0


@pytest.fixture(scope="module")
def addon():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    proc_ml_parts.register()
    yield proc_ml_parts
    proc_ml_parts.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def scene(addon):
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for mesh in list(bpy.data.meshes):
        bpy.data.meshes.remove(mesh)
    return bpy.context.scene


def mesh_object(name, vertices, faces, location=(0.0, 0.0, 0.0)):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(v) for v in np.asarray(vertices, float)], [], [tuple(f) for f in faces])
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    bpy.context.scene.collection.objects.link(obj)
    return obj


def select_only(obj):
    for other in bpy.context.scene.objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def run_operator(model, **props):
    return bpy.ops.object.proc_ml_predict_parts(model_path=str(model), device="cpu", **props)


def face_values(mesh, name, dtype):
    values = np.empty(len(mesh.polygons), dtype=dtype)
    mesh.attributes[name].data.foreach_get("value", values)
    return values


def check_result(source, expected_occupancy, parts_count):
    result = bpy.data.objects[source.name + "_parts"]
    mesh = result.data
    n = len(mesh.polygons)
    assert n == int(exterior_faces(expected_occupancy).sum())
    assert mesh.attributes["part"].domain == "FACE" and mesh.attributes["part"].data_type == "INT"
    part = face_values(mesh, "part", np.int32)
    assert ((part >= 0) & (part < parts_count)).all()
    material_index = np.empty(n, dtype=np.int32)
    mesh.polygons.foreach_get("material_index", material_index)
    assert (material_index == part).all()
    names = result["proc_ml_parts"].split()
    assert [m.name for m in mesh.materials] == [f"proc_ml_{p}" for p in names]
    colours = np.array([m.diffuse_color[:3] for m in mesh.materials])
    assert len({tuple(np.round(c, 4)) for c in colours}) == len(names)   # one colour per part
    probs = np.stack([face_values(mesh, f"part_prob_{p}", np.float32) for p in names], axis=1)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (probs.argmax(axis=1) == part).all()
    # Outward normals (Blender, like proc-ml, is counter-clockwise front-facing).
    normals = np.empty(3 * n, dtype=np.float32)
    mesh.polygons.foreach_get("normal", normals)
    centres = np.empty(3 * n, dtype=np.float32)
    mesh.polygons.foreach_get("center", centres)
    return result, part, normals.reshape(-1, 3), centres.reshape(-1, 3)


def test_manifest_is_a_blender_extension():
    manifest = tomllib.loads((ADDON_DIR / "proc_ml_parts" / "blender_manifest.toml").read_text())
    assert manifest["schema_version"] == "1.0.0" and manifest["type"] == "add-on"
    assert manifest["id"] == "proc_ml_parts" and manifest["blender_version_min"] == "4.2.0"
    assert "files" in manifest["permissions"]


def test_generated_building_is_labelled(scene, tiny_massing_unet_onnx):
    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    faces = np.arange(len(quads.vertices)).reshape(-1, 4)
    source = mesh_object("generated", quads.vertices, faces, location=(10.0, -4.0, 0.0))
    select_only(source)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    nz = np.nonzero(b.occupancy)
    crop = b.occupancy[nz[0].min():nz[0].max() + 1, nz[1].min():nz[1].max() + 1, :nz[2].max() + 1]
    result, part, normals, centres = check_result(source, crop, 7)
    # World space: the quads sit where the (moved) massing is.
    co = np.empty(3 * len(result.data.vertices), np.float32)
    result.data.vertices.foreach_get("co", co)
    lo = co.reshape(-1, 3).min(axis=0)
    assert np.allclose(lo, np.array([10.0, -4.0, 0.0]) + np.array([a.min() for a in nz]) * CELL,
                       atol=1e-4)
    # Same labels as the runtime gives for the same grid.
    from proc_ml.runtime import PartsPredictor
    labels, _ = PartsPredictor(tiny_massing_unet_onnx, "cpu").predict(crop)
    assert sorted(part.tolist()) == sorted(labels[labels >= 0].tolist())
    assert "generated" in bpy.data.objects and len(source.data.polygons) == len(faces)


def test_hand_built_l_block_is_labelled_and_rerun_updates(scene, tiny_massing_unet_onnx):
    # An L-shaped block a user might model: a cube scaled and extruded, not from proc-ml.
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(0.0, 0.0, 0.0))
    block = bpy.context.active_object
    block.name = "l_block"
    mesh = block.data
    # Stretch the cube into a 4x2x3-cell slab (cell 1.5 m), then add the L's wing.
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    co = (co.reshape(-1, 3) + 1.0) / 2.0 * np.array([6.0, 3.0, 4.5])
    wing = np.array([[x, y, z] for z in (0.0, 4.5) for y in (3.0, 7.5) for x in (0.0, 3.0)])
    wing_faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    verts = np.concatenate([co, wing])
    faces = [tuple(p.vertices) for p in mesh.polygons] + [tuple(8 + i for i in f) for f in wing_faces]
    block.data = bpy.data.meshes.new("l_block")
    block.data.from_pydata([tuple(v) for v in verts], [], faces)
    block.data.update()
    select_only(block)
    assert run_operator(tiny_massing_unet_onnx, cell_size=1.5) == {"FINISHED"}
    occ = np.zeros((4, 5, 3), np.uint8)
    occ[:, :2] = 1
    occ[:2, 2:] = 1
    result, part, normals, centres = check_result(block, occ, 7)
    # Each quad faces away from the filled cell it bounds.
    inside = (centres - normals * 0.75) / 1.5
    cells = np.floor(inside).astype(int)
    assert occ[cells[:, 0], cells[:, 1], cells[:, 2]].all()
    # Running again updates <name>_parts in place instead of adding objects.
    count = len(bpy.data.objects)
    assert run_operator(tiny_massing_unet_onnx, cell_size=1.5) == {"FINISHED"}
    assert len(bpy.data.objects) == count and bpy.data.objects["l_block_parts"] is result


def test_voxel_points_mesh_and_errors(scene, tiny_massing_unet_onnx, tmp_path):
    cells = np.stack(np.nonzero(np.ones((2, 3, 2))), axis=1)
    points = mesh_object("points", (cells + 0.5) * CELL, [])
    select_only(points)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    check_result(points, np.ones((2, 3, 2), np.uint8), 7)
    with pytest.raises(RuntimeError, match="model file not found"):
        run_operator(tmp_path / "missing.onnx", cell_size=CELL)
    empty = mesh_object("empty", np.zeros((0, 3)), [])
    select_only(empty)
    # An empty mesh: a warning, nothing created, the operator cancelled.
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"CANCELLED"}
    assert "empty_parts" not in bpy.data.objects


def test_panel_and_preferences_are_registered(addon):
    assert hasattr(bpy.types, "VIEW3D_PT_proc_ml_parts")
    assert bpy.types.VIEW3D_PT_proc_ml_parts.bl_category == "proc-ml"
    settings = bpy.context.scene.proc_ml_parts
    assert settings.device == "auto" and settings.cell_size == 0.0


def test_device_menu_lists_the_runtime_devices():
    from proc_ml.runtime import DEVICES

    assert [item[0] for item in proc_ml_parts.DEVICE_ITEMS] == list(DEVICES)


# -- part_fix: the artist's correction loop ------------------------------------------------
def face_slots(mesh):
    """(cell [F, 3], direction [F]) of every face in the grid the export builds (low corner
    at the faces' low corner), from each face's centre and outward normal."""
    n = len(mesh.polygons)
    normals = np.empty(3 * n, np.float32)
    mesh.polygons.foreach_get("normal", normals)
    centres = np.empty(3 * n, np.float32)
    mesh.polygons.foreach_get("center", centres)
    co = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", co)
    normals, centres = normals.reshape(-1, 3), centres.reshape(-1, 3)
    axis = np.argmax(np.abs(normals), axis=1)
    direction = 2 * axis + (normals[np.arange(n), axis] < 0)
    inside = centres - normals * CELL / 2
    return np.floor((inside - co.reshape(-1, 3).min(axis=0)) / CELL + 1e-4).astype(int), direction


def select_faces(mesh, faces):
    """Select exactly ``faces`` in object mode (what the operator reads there)."""
    mask = np.zeros(len(mesh.polygons), dtype=bool)
    mask[list(faces)] = True
    mesh.polygons.foreach_set("select", mask)


def select_faces_in_edit_mode(obj, faces):
    """Enter edit mode and select exactly ``faces``, as an artist clicking them does."""
    import bmesh

    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="DESELECT")
    bm = bmesh.from_edit_mesh(obj.data)
    bm.faces.ensure_lookup_table()
    for face in faces:
        bm.faces[int(face)].select_set(True)
    bmesh.update_edit_mesh(obj.data)


def test_part_fix_round_trip(scene, tiny_massing_unet_onnx, tmp_path):
    """Predict, set parts on some faces, predict again: the corrections override the
    prediction and survive; the export writes them as labels and marks exactly those faces
    in label_fixed."""
    from proc_ml.formats import grid_npz, grid_path

    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    source = mesh_object("corrected", quads.vertices, np.arange(len(quads.vertices)).reshape(-1, 4))
    select_only(source)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["corrected_parts"]
    names = result["proc_ml_parts"].split()
    predicted = face_values(result.data, "part", np.int32)
    assert "part_fix" not in result.data.attributes and result["proc_ml_cell_size"] == CELL
    cells, dirs = face_slots(result.data)

    # The artist selects faces and sets their part (object mode, then edit mode).
    rng = np.random.default_rng(3)
    doors, balconies = np.split(rng.choice(len(predicted), 6, replace=False), 2)
    select_only(result)
    select_faces(result.data, doors)
    assert bpy.ops.object.proc_ml_fix_part(part="door") == {"FINISHED"}
    select_faces_in_edit_mode(result, balconies)
    assert bpy.ops.object.proc_ml_fix_part(part="balcony") == {"FINISHED"}
    assert result.mode == "EDIT"
    bpy.ops.object.mode_set(mode="OBJECT")
    fix = face_values(result.data, "part_fix", np.int32)
    assert result.data.attributes["part_fix"].domain == "FACE"
    assert result.data.attributes["part_fix"].data_type == "INT"
    want = {(*cells[f], dirs[f]): names.index("door") for f in doors}
    want.update({(*cells[f], dirs[f]): names.index("balcony") for f in balconies})
    assert (fix[doors] == names.index("door")).all() and (fix[balconies] == names.index("balcony")).all()
    assert (np.delete(fix, np.concatenate([doors, balconies])) == -1).all()
    material_index = np.empty(len(fix), np.int32)
    result.data.polygons.foreach_get("material_index", material_index)
    assert (material_index == np.where(fix >= 0, fix, predicted)).all()   # shown at once

    # Predict again (twice): same faces, the corrections kept and overriding the model.
    for _ in range(2):
        select_only(source)
        assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
        assert bpy.data.objects["corrected_parts"] is result
        mesh = result.data
        part = face_values(mesh, "part", np.int32)
        fix = face_values(mesh, "part_fix", np.int32)
        cells, dirs = face_slots(mesh)
        got = {(*c, d): int(f) for c, d, f in zip(cells, dirs, fix) if f >= 0}
        assert got == want
        is_fixed = fix >= 0
        assert (part[is_fixed] == fix[is_fixed]).all()
        material_index = np.empty(len(part), np.int32)
        mesh.polygons.foreach_get("material_index", material_index)
        assert (material_index == part).all()
        assert result["proc_ml_part_fix_count"] == 6
    # the model's probabilities stay the model's
    probs = np.stack([face_values(mesh, f"part_prob_{p}", np.float32) for p in names], axis=1)
    unfixed = ~is_fixed
    assert (probs[unfixed].argmax(axis=1) == part[unfixed]).all()
    assert (probs[is_fixed].argmax(axis=1) != part[is_fixed]).any()    # the fixes overrode it

    # Export: labels are the corrections on exactly those faces; label_fixed marks them.
    select_only(result)
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds")) == {"FINISHED"}
    rec = grid_npz.read(grid_path(tmp_path / "ds", 0), n_parts=len(names))
    fixed = rec.extras["label_fixed"]
    assert fixed.shape == rec.labels.shape == (16, 16, 16, 6) and fixed.sum() == 6
    for key, value in want.items():
        assert fixed[key] and rec.labels[key] == value
    assert (rec.labels[cells[:, 0], cells[:, 1], cells[:, 2], dirs] == part).all()
    assert (tmp_path / "ds" / "dataset.yaml").is_file()
    assert not (tmp_path / "ds" / "meshes").exists()        # meshes need SciPy: not by default
    # a second export into the folder adds a building (the next free id), corrections kept
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds")) == {"FINISHED"}
    assert sorted(p.name for p in (tmp_path / "ds" / "grids").iterdir()) == ["b000000.npz",
                                                                             "b000001.npz"]
    assert grid_npz.read(grid_path(tmp_path / "ds", 0)).extras["label_fixed"].sum() == 6
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds"),
                                                       building_id=0) == {"FINISHED"}
    assert len(list((tmp_path / "ds" / "grids").iterdir())) == 2     # a given id is replaced

    # Clearing a correction: that face goes back to the model on the next prediction.
    first = next(iter(np.nonzero(is_fixed)[0]))
    select_faces(result.data, [first])
    assert bpy.ops.object.proc_ml_fix_part(part="NONE") == {"FINISHED"}
    select_only(source)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert (face_values(result.data, "part_fix", np.int32) >= 0).sum() == 5


def test_part_fix_errors(scene, tiny_massing_unet_onnx, tmp_path):
    cells = np.stack(np.nonzero(np.ones((2, 2, 2))), axis=1)
    points = mesh_object("box", (cells + 0.5) * CELL, [])
    select_only(points)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["box_parts"]
    select_only(result)
    select_faces(result.data, [])
    assert bpy.ops.object.proc_ml_fix_part(part="door") == {"CANCELLED"}   # nothing selected
    assert "part_fix" not in result.data.attributes
    with pytest.raises(TypeError):
        bpy.ops.object.proc_ml_fix_part(part="dor")                          # not a part
    # A part_fix index outside the vocabulary (e.g. written by a script): one-line errors.
    values = np.full(len(result.data.polygons), -1, np.int32)
    values[5] = 42
    attribute = result.data.attributes.new("part_fix", "INT", "FACE")
    attribute.data.foreach_set("value", values)
    with pytest.raises(RuntimeError, match=r"box_parts: building 0, face 5: part_fix 42 is outside -1\.\.6"):
        bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds"))
    select_only(points)
    with pytest.raises(RuntimeError, match=r"box_parts: face 5: part_fix 42 is outside -1\.\.6"):
        run_operator(tiny_massing_unet_onnx, cell_size=CELL)


def test_part_fix_on_the_massing_itself(scene, tiny_massing_unet_onnx):
    """part_fix on a massing face (an index into the model's parts) fixes every cell face
    that face covers."""
    corners = np.array([[x, y, z] for z in (0, 4) for y in (0, 2) for x in (0, 3)], float) * CELL
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    massing = mesh_object("massing", corners, faces)                 # a 3 x 2 x 4-cell box
    parts = ("wall", "window", "door", "roof", "balcony", "shopfront", "ground")
    values = np.array([-1, -1, parts.index("shopfront"), -1, -1, -1], np.int32)   # the -y side
    massing.data.attributes.new("part_fix", "INT", "FACE").data.foreach_set("value", values)
    select_only(massing)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["massing_parts"]
    assert result["proc_ml_parts"].split() == list(parts)
    part = face_values(result.data, "part", np.int32)
    fix = face_values(result.data, "part_fix", np.int32)
    _, dirs = face_slots(result.data)
    assert (dirs == 3).sum() == 12
    assert (part[dirs == 3] == parts.index("shopfront")).all() and (fix[dirs == 3] >= 0).all()
    assert (fix[dirs != 3] == -1).all() and result["proc_ml_part_fix_count"] == 12


def test_symmetry_averaging_property(scene):
    """The operator's Symmetry averaging: the model's own (the installed model: dihedral) by
    default, None for one network run; the scene setting reaches the operator."""
    from proc_ml.runtime import PartsPredictor, default_model
    from proc_ml.symmetry import SYMMETRIES

    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    source = mesh_object("sym", quads.vertices, np.arange(len(quads.vertices)).reshape(-1, 4))
    nz = np.nonzero(b.occupancy)
    crop = b.occupancy[nz[0].min():nz[0].max() + 1, nz[1].min():nz[1].max() + 1, :nz[2].max() + 1]
    predictor = PartsPredictor(default_model(), "cpu")

    def labelled(**props):
        select_only(source)
        assert bpy.ops.object.proc_ml_predict_parts(device="cpu", cell_size=CELL, street_sides={"+x"},
                                                    **props) == {"FINISHED"}
        part = face_values(bpy.data.objects["sym_parts"].data, "part", np.int32)
        assert len(part) == int(exterior_faces(crop).sum())
        return part

    for props, symmetry in (({}, "dihedral"), ({"symmetry": "none"}, "none"),
                            ({"symmetry": "rotate"}, "rotate")):
        labels, _ = predictor.predict(crop, street=("+x",), symmetry=symmetry)
        assert sorted(labelled(**props).tolist()) == sorted(labels[labels >= 0].tolist())
    assert scene.proc_ml_parts.symmetry == "MODEL"
    assert {item.identifier for item in
            type(scene.proc_ml_parts).bl_rna.properties["symmetry"].enum_items} == \
        {"MODEL", *SYMMETRIES}            # the add-on lists what proc_ml.symmetry knows


def test_entrance_rule_property(scene):
    """The operator's Entrance rule: the model's own (the installed model: on) by default, Off
    leaves a building the network gave no door without one; the scene setting reaches the
    operator."""
    from proc_ml.runtime import PartsPredictor, default_model

    b = generate_building(default_config(), 1, 0)      # a corner house the network gives no door
    street = tuple(s for s, on in zip(("+x", "-x", "+y", "-y"), b.extras["street"]) if on)
    quads = quad_mesh(b.occupancy, None, CELL)
    source = mesh_object("entrance", quads.vertices, np.arange(len(quads.vertices)).reshape(-1, 4))
    nz = np.nonzero(b.occupancy)
    crop = b.occupancy[nz[0].min():nz[0].max() + 1, nz[1].min():nz[1].max() + 1, :nz[2].max() + 1]
    predictor = PartsPredictor(default_model(), "cpu")
    door = predictor.parts.index("door")

    def labelled(**props):
        select_only(source)
        assert bpy.ops.object.proc_ml_predict_parts(device="cpu", cell_size=CELL,
                                                    street_sides=set(street), **props) == {"FINISHED"}
        return face_values(bpy.data.objects["entrance_parts"].data, "part", np.int32)

    doors = {}
    for props, entrance in (({}, None), ({"entrance": "OFF"}, False)):
        labels, _ = predictor.predict(crop, street=street, entrance=entrance)
        part = labelled(**props)
        assert sorted(part.tolist()) == sorted(labels[labels >= 0].tolist())
        doors[entrance] = int((part == door).sum())
    assert doors == {None: 1, False: 0}
    assert scene.proc_ml_parts.entrance == "MODEL"


def test_no_street_side_on_a_street_model_is_noted(scene):
    """The installed (street-aware) model with no Street Sides ticked: the result records the
    note the operator reports, and with a street side there is none."""
    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    source = mesh_object("nostreet", quads.vertices, np.arange(len(quads.vertices)).reshape(-1, 4))
    for sides, noted in ((set(), True), ({"-y"}, False)):
        select_only(source)
        assert bpy.ops.object.proc_ml_predict_parts(device="cpu", cell_size=CELL,
                                                    street_sides=sides) == {"FINISHED"}
        notes = bpy.data.objects["nostreet_parts"]["proc_ml_notes"]
        assert notes.startswith("no street sides given") == noted, notes


def test_turned_building_exports_with_its_street_sides(scene, tiny_massing_unet_onnx, tmp_path):
    """A building whose walls run at 30 degrees (as real ones do): the prediction comes back
    turned onto it, and Export Training Data turns it back onto the grid (it used to refuse
    the add-on's own result: "not on the cell grid"), recording the angle and the street
    sides the prediction used."""
    from proc_ml.alignment import rotation_z
    from proc_ml.formats import grid_npz, grid_path

    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    turned = (quads.vertices - 20.0) @ rotation_z(30.0).T + [512.3, -77.1, 4.0]
    source = mesh_object("turned", turned, np.arange(len(turned)).reshape(-1, 4))
    select_only(source)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL, street_sides={"-y", "+x"}) == {"FINISHED"}
    result = bpy.data.objects["turned_parts"]
    assert result["proc_ml_street"] == "+x -y"
    names = result["proc_ml_parts"].split()
    select_only(result)
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds")) == {"FINISHED"}
    rec = grid_npz.read(grid_path(tmp_path / "ds", 0), n_parts=len(names))
    assert rec.street_sides == ("+x", "-y")
    assert abs(abs(float(rec.extras["rotation_deg"])) - 30.0) < 1e-3
    def crop(occ):
        idx = np.argwhere(occ)
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        return occ[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(bool)

    got, built = crop(rec.occupancy), crop(b.occupancy)       # the same massing, a quarter turn apart at most
    assert any(np.rot90(built, k, axes=(0, 1)).shape == got.shape
               and (np.rot90(built, k, axes=(0, 1)) == got).all() for k in range(4))


def test_one_bad_object_does_not_stop_the_others_and_results_alone_are_refused(
        scene, tiny_massing_unet_onnx, capfd):
    """A building selected with an edge-only outline: the building is labelled, the outline
    is named in a warning (it used to cancel the whole run after writing the building's
    result); a game-kit-sized massing gets the units note; a selection of results only says
    what to select instead of doing nothing in silence."""
    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    good = mesh_object("good", quads.vertices, np.arange(len(quads.vertices)).reshape(-1, 4))
    outline = bpy.data.meshes.new("outline")
    outline.from_pydata([(0.3, 0.1, 0.0), (5.2, 0.4, 0.0), (5.0, 7.7, 0.0)], [(0, 1), (1, 2)], [])
    line = bpy.data.objects.new("outline", outline)
    bpy.context.scene.collection.objects.link(line)
    bpy.ops.object.select_all(action="DESELECT")
    good.select_set(True)
    line.select_set(True)
    bpy.context.view_layer.objects.active = good
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert "good_parts" in bpy.data.objects and "outline_parts" not in bpy.data.objects
    # two floors of one building as two objects: labelled together as one building (each
    # got a ground floor and a roof of its own when labelled alone), and told so
    floor = quad_mesh(np.ones((3, 2, 1), np.uint8), None, CELL)
    low = mesh_object("floor_0", floor.vertices, np.arange(len(floor.vertices)).reshape(-1, 4))
    high = mesh_object("floor_1", floor.vertices + [0, 0, CELL], np.arange(len(floor.vertices)).reshape(-1, 4))
    bpy.ops.object.select_all(action="DESELECT")
    low.select_set(True)
    high.select_set(True)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert {"floor_0_parts", "floor_1_parts"} <= set(bpy.data.objects.keys())
    printed = capfd.readouterr().out                     # headless Blender prints its reports
    assert "outline: not labelled: voxel points are not at the cell centres" in printed
    assert "floor_0, floor_1 touch: labelled together" in printed
    lower, upper = (world_points(bpy.data.objects[f"floor_{k}_parts"]) for k in (0, 1))
    assert len(lower) + len(upper) == 4 * int(exterior_faces(np.ones((3, 2, 2), np.uint8)).sum())
    assert lower[:, 2].max() == pytest.approx(CELL)      # no roof between the two floors ...
    assert upper[:, 2].min() == pytest.approx(CELL)      # ... and no ground floor above it
    cube = quad_mesh(np.ones((1, 1, 1), np.uint8), None, 4.0)          # a 4-unit kit tile
    tile = mesh_object("tile", cube.vertices, np.arange(len(cube.vertices)).reshape(-1, 4))
    select_only(tile)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert "one or two cells" in bpy.data.objects["tile_parts"]["proc_ml_notes"]
    assert "set Cell Size to a 3 m storey" in bpy.data.objects["tile_parts"]["proc_ml_notes"]
    select_only(bpy.data.objects["good_parts"])
    with pytest.raises(RuntimeError, match="only proc-ml results are selected"):
        run_operator(tiny_massing_unet_onnx, cell_size=CELL)


# -- geometry and scenes nobody here wrote ---------------------------------------------------
BOX_FACES = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]


def box_object(name, low, high, extra_points=()):
    """A closed box massing (faces: -z, +z, -y, +y, -x, +x), plus loose ``extra_points``."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    points = np.concatenate([low + corners * (high - low), np.asarray(extra_points, float).reshape(-1, 3)])
    return mesh_object(name, points, BOX_FACES)


def world_points(obj):
    co = np.empty(3 * len(obj.data.vertices), np.float32)
    obj.data.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world, np.float64)
    return co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def test_utm_coordinates_keep_the_result_on_the_cell_grid(scene, tiny_massing_unet_onnx, tmp_path):
    """A building in UTM metres (northing 5.4e6, where float32 keeps half metres) with walls
    at 30 degrees, as the Ingolstadt LoD3 buildings come: the result used to be written in
    world space as float32, off the cell grid, so Export Training Data refused the add-on's
    own result ('not on the cell grid'). Now it sits at a rounded origin, corrections are
    kept and the export takes it."""
    from proc_ml.alignment import rotation_z
    from proc_ml.formats import grid_npz, grid_path

    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    turned = (quads.vertices - 20.0) @ rotation_z(30.0).T
    source = mesh_object("utm", turned, np.arange(len(turned)).reshape(-1, 4),
                         location=(678123.4, 5403789.1, 413.9))
    select_only(source)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["utm_parts"]
    names = result["proc_ml_parts"].split()
    select_only(result)
    select_faces(result.data, [0, 7, 11])
    assert bpy.ops.object.proc_ml_fix_part(part="door") == {"FINISHED"}
    select_only(source)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert result["proc_ml_part_fix_count"] == 3
    select_only(result)
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds")) == {"FINISHED"}
    rec = grid_npz.read(grid_path(tmp_path / "ds", 0), n_parts=len(names))
    assert rec.extras["label_fixed"].sum() == 3
    assert (rec.labels[rec.extras["label_fixed"]] == names.index("door")).all()
    assert abs(abs(float(rec.extras["rotation_deg"])) - 30.0) < 1e-3
    assert rec.occupancy.sum() == b.occupancy.sum()
    assert tuple(result.location) == (678000.0, 5404000.0, 0.0)      # float32 keeps the quads exact
    assert np.abs(world_points(result).mean(axis=0) - world_points(source).mean(axis=0)).max() < CELL


def test_scene_unit_scale_is_honoured(scene, tmp_path):
    """A centimetre scene (Unit Scale 0.01): a 9 x 6 x 12 m block is 900 x 600 x 1200 units.
    The model's 3 m cell used to be taken as 3 units (300 cells across: refused), and a cell
    size given in the scene's units was written to the dataset as metres."""
    from proc_ml.formats import grid_npz, grid_path, manifest

    scene.unit_settings.scale_length = 0.01
    try:
        block = box_object("cm_block", (0, 0, 0), (900, 600, 1200))
        select_only(block)
        assert bpy.ops.object.proc_ml_predict_parts(device="cpu", street_sides={"+x"},
                                                    symmetry="none") == {"FINISHED"}
        result = bpy.data.objects["cm_block_parts"]
        assert len(result.data.polygons) == 2 * (3 * 2 + 3 * 4 + 2 * 4)
        assert result["proc_ml_cell_size"] == 3.0                       # metres
        points = world_points(result)                                    # the scene's units
        assert np.allclose(points.min(axis=0), 0.0, atol=1e-3)
        assert np.allclose(points.max(axis=0), (900, 600, 1200), atol=1e-3)
        select_only(result)
        assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds"),
                                                           cell_size=300.0) == {"FINISHED"}
        assert manifest.read(tmp_path / "ds")["cell_size"] == 3.0
        assert grid_npz.read(grid_path(tmp_path / "ds", 0)).occupancy.sum() == 3 * 2 * 4
    finally:
        scene.unit_settings.scale_length = 1.0


def test_loose_vertices_do_not_stretch_the_grid(scene, tiny_massing_unet_onnx, capfd):
    """A massing with a stray vertex far off (a pivot helper, a leftover of a boolean): it
    used to size the grid (a 187 x 167 x 167 grid over the memory budget: not labelled), and
    one near another selected building made them 'touch' (join them, said the warning)."""
    block = box_object("stray", (0, 0, 0), (9, 6, 12), extra_points=[(500, 500, 500), (-60, 3, 1),
                                                                       (31, 3, 3)])
    neighbour = box_object("neighbour", (30, 0, 0), (36, 9, 6))
    bpy.ops.object.select_all(action="DESELECT")
    block.select_set(True)
    neighbour.select_set(True)
    bpy.context.view_layer.objects.active = block
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["stray_parts"]
    assert len(result.data.polygons) == 52
    points = world_points(result)
    assert np.allclose(points.min(axis=0), 0.0, atol=1e-4) and np.allclose(points.max(axis=0), (9, 6, 12), atol=1e-4)
    assert "touch" not in capfd.readouterr().out


def test_an_artists_own_parts_object_or_mesh_is_never_overwritten(scene, tiny_massing_unet_onnx, capfd):
    """An object the artist named <name>_parts, or another object's mesh of that name, used
    to be taken as the result and overwritten (geometry and materials lost)."""
    house = box_object("house", (0, 0, 0), (9, 6, 12))
    own = box_object("house_parts", (20, 0, 0), (23, 3, 3))
    own.data.materials.append(bpy.data.materials.new("artist_paint"))
    villa = box_object("villa", (40, 0, 0), (49, 6, 12))
    other = box_object("other", (60, 0, 0), (61, 1, 1))
    other.data.name = "villa_parts"
    bpy.ops.object.select_all(action="DESELECT")
    house.select_set(True)
    villa.select_set(True)
    bpy.context.view_layer.objects.active = house
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert len(own.data.polygons) == 6 and [m.name for m in own.data.materials] == ["artist_paint"]
    assert "part" not in own.data.attributes and "proc_ml_source" not in own
    assert len(other.data.polygons) == 6 and other.data.name == "villa_parts"
    result = bpy.data.objects["villa_parts"]
    assert result.data is not other.data and len(result.data.polygons) == 52
    printed = capfd.readouterr().out
    assert "house: not labelled: house_parts already exists and is not the proc-ml result of house" in printed


def test_source_in_a_linked_collection(scene, tiny_massing_unet_onnx, tmp_path):
    """A massing linked from a library inside its (linked) collection: the result used to be
    linked into that collection (a traceback) and left in no collection, out of sight."""
    block = box_object("libhouse", (0, 0, 0), (9, 6, 12))
    collection = bpy.data.collections.new("LibHouses")
    collection.objects.link(block)
    scene.collection.objects.unlink(block)
    library_path = str(tmp_path / "lib.blend")
    bpy.data.libraries.write(library_path, {collection})
    bpy.data.objects.remove(block)
    bpy.data.collections.remove(collection)
    with bpy.data.libraries.load(library_path, link=True) as (_, linked):
        linked.collections = ["LibHouses"]
    scene.collection.children.link(linked.collections[0])
    try:
        source = bpy.data.objects["libhouse"]
        assert source.library is not None
        select_only(source)
        assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
        result = bpy.data.objects["libhouse_parts"]
        assert [c.name for c in result.users_collection] == [scene.collection.name]
        assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}   # in place
        assert len([o for o in bpy.data.objects if o.name.startswith("libhouse_parts")]) == 1
    finally:
        bpy.data.libraries.remove(bpy.data.libraries[0])


def test_edit_mode_result_exports_and_predicts_again(scene, tiny_massing_unet_onnx, tmp_path):
    """Corrections set in edit mode, then Export Training Data (or Predict again on the
    massing) with the result still in edit mode: the export was a traceback (attributes
    read as empty in edit mode), and predicting cleared the result, then failed ('Cannot add
    vertices in edit mode'), losing its corrections."""
    from proc_ml.formats import grid_npz, grid_path

    massing = box_object("edited", (0, 0, 0), (9, 6, 12))
    select_only(massing)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["edited_parts"]
    select_only(result)
    select_faces_in_edit_mode(result, [3, 4])
    assert bpy.ops.object.proc_ml_fix_part(part="door") == {"FINISHED"}
    assert result.mode == "EDIT"
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds")) == {"FINISHED"}
    assert result.mode == "EDIT"                       # the artist stays in edit mode
    assert grid_npz.read(grid_path(tmp_path / "ds", 0)).extras["label_fixed"].sum() == 2
    # the massing made active while the result stays in edit mode (e.g. from the outliner)
    bpy.context.view_layer.objects.active = massing
    massing.select_set(True)
    assert result.mode == "EDIT"
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert result.mode == "OBJECT" and len(result.data.polygons) == 52
    assert (face_values(result.data, "part_fix", np.int32) >= 0).sum() == 2


def test_part_fix_as_names_as_int8_or_on_the_wrong_domain(scene, tiny_massing_unet_onnx):
    """part_fix made with Blender's own Add Attribute: a String of part names (was a
    traceback), an 8-bit integer (was refused as float32); on points instead of faces it is
    an error naming the object (was ignored without a word)."""
    parts = ("wall", "window", "door", "roof", "balcony", "shopfront", "ground")
    for kind in ("STRING", "INT8"):
        massing = box_object(f"fix_{kind}", (0, 0, 0), (9, 6, 12))
        attribute = massing.data.attributes.new("part_fix", kind, "FACE")
        if kind == "STRING":
            for i, item in enumerate(attribute.data):
                item.value = b"door" if i == 2 else b""            # the -y side
        else:
            attribute.data.foreach_set("value", np.array([-1, -1, 2, -1, -1, -1], np.int8))
        select_only(massing)
        assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
        result = bpy.data.objects[f"fix_{kind}_parts"]
        fix = face_values(result.data, "part_fix", np.int32)
        assert (fix >= 0).sum() == 12 and (fix[fix >= 0] == parts.index("door")).all()
    on_points = box_object("fix_points", (0, 0, 0), (9, 6, 12))
    on_points.data.attributes.new("part_fix", "INT", "POINT")
    select_only(on_points)
    with pytest.raises(RuntimeError, match=r"fix_points: 'part_fix' is a point attribute; proc-ml reads "
                                           r"it per face"):
        run_operator(tiny_massing_unet_onnx, cell_size=CELL)
    result = bpy.data.objects["fix_INT8_parts"]
    result.data.attributes.remove(result.data.attributes["part_fix"])
    result.data.attributes.new("part_fix", "FLOAT", "FACE")
    select_only(result)
    select_faces(result.data, [0])
    with pytest.raises(RuntimeError, match=r"fix_INT8_parts: 'part_fix' is a FLOAT attribute"):
        bpy.ops.object.proc_ml_fix_part(part="door")


def test_outputs_stay_in_the_chosen_folder_and_write_errors_are_one_line(
        scene, tiny_massing_unet_onnx, tmp_path, monkeypatch):
    """With the .blend file not saved yet, a '//' folder (or the atlas' default
    //proc_ml_atlas.png) used to be written relative to wherever Blender was started; a
    folder that is a file was a traceback."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert not bpy.data.filepath
    massing = box_object("paths", (0, 0, 0), (9, 6, 12))
    select_only(massing)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    select_only(bpy.data.objects["paths_parts"])
    with pytest.raises(RuntimeError, match=r"dataset folder '//ds' is relative to the \.blend file, "
                                           r"which is not saved yet"):
        bpy.ops.object.proc_ml_export_training_data(directory="//ds")
    with pytest.raises(RuntimeError, match=r"dataset folder 'ds' is a relative path"):
        bpy.ops.object.proc_ml_export_training_data(directory="ds")
    with pytest.raises(RuntimeError, match=r"atlas '//proc_ml_atlas.png' is relative to the \.blend"):
        bpy.ops.object.proc_ml_texture_building()
    assert not list(cwd.iterdir())
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(RuntimeError, match=r"paths_parts: cannot write to .*a_file") as error:
        bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "a_file"))
    assert "Traceback" not in str(error.value)


def test_export_refuses_what_the_dataset_folder_cannot_take(scene, tiny_massing_unet_onnx, tmp_path):
    """A building on another grid size, vocabulary or cell size than the folder's used to be
    written before the index rebuild refused it, leaving a folder every later export failed
    on (or, with a reordered vocabulary, relabelling the older buildings without a word); a
    First Building ID past the next free one did the same ('ids must run 0..N-1')."""
    from proc_ml.formats import grid_npz, grid_path

    massing = box_object("folder", (0, 0, 0), (9, 6, 12))
    select_only(massing)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    result = bpy.data.objects["folder_parts"]
    select_only(result)
    ds = tmp_path / "ds"
    export = bpy.ops.object.proc_ml_export_training_data
    assert export(directory=str(ds)) == {"FINISHED"}
    before = grid_npz.read(grid_path(ds, 0)).labels.copy()
    with pytest.raises(RuntimeError, match=r"holds buildings on a 16x16x16 grid but this one is 3x2x4"):
        export(directory=str(ds), grid_size=(0, 0, 0))
    with pytest.raises(RuntimeError, match=r"holds buildings at cell size 3 but this one is at 1\.5"):
        export(directory=str(ds), cell_size=1.5)
    parts = result["proc_ml_parts"]
    result["proc_ml_parts"] = " ".join(reversed(parts.split()))
    with pytest.raises(RuntimeError, match=r"folder_parts: .* holds buildings labelled with parts"):
        export(directory=str(ds))
    result["proc_ml_parts"] = parts
    with pytest.raises(RuntimeError, match=r"First Building ID 5 would leave ids 1-4 missing"):
        export(directory=str(ds), building_id=5)
    with pytest.raises(RuntimeError, match=r"^Error: Formats: unknown format 'mesh'"):
        export(directory=str(ds), formats="grids,mesh")
    assert sorted(p.name for p in (ds / "grids").iterdir()) == ["b000000.npz"]      # nothing written
    assert (grid_npz.read(grid_path(ds, 0)).labels == before).all()
    assert export(directory=str(ds)) == {"FINISHED"}                                  # the folder still works
    assert sorted(p.name for p in (ds / "grids").iterdir()) == ["b000000.npz", "b000001.npz"]


def test_a_curve_selected_alone_says_what_to_select(scene, tmp_path):
    """A building outline drawn as a curve, selected alone: the operators were greyed out
    (from a script: 'context is incorrect') without saying why."""
    curve = bpy.data.objects.new("outline_curve", bpy.data.curves.new("outline_curve", "CURVE"))
    scene.collection.objects.link(curve)
    select_only(curve)
    with pytest.raises(RuntimeError, match=r"Select one or more mesh massings \(convert curves or text "
                                           r"first: Object > Convert > Mesh\)"):
        bpy.ops.object.proc_ml_predict_parts(device="cpu")
    with pytest.raises(RuntimeError, match=r"Select the <name>_parts results of Predict Building Parts"):
        bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds"))
    assert not (tmp_path / "ds").exists()
    bpy.data.objects.remove(curve)


def test_a_building_lying_on_its_side_is_noted(scene, tiny_massing_unet_onnx, capfd):
    """A Z-up file imported with Blender's default Y up (OBJ, glTF) lies on its side: 12 of
    the 13 Ingolstadt LoD3 buildings were labelled so without a word. The walls and roofs
    say so (proc_ml.voxelize.detect_up, as proc-ml predict reads mesh files); upright, no
    note."""
    from proc_ml.alignment import rotation_z

    b = generate_building(default_config(), 1, 3)
    quads = quad_mesh(b.occupancy, None, CELL)
    turned = quads.vertices @ rotation_z(30.0).T          # real walls are seldom square to x / y
    source = mesh_object("tipped", turned, np.arange(len(turned)).reshape(-1, 4))
    for rotation, noted in (((np.pi / 2, 0.0, 0.0), True), ((0.0, 0.0, 0.0), False)):
        source.rotation_euler = rotation
        bpy.context.view_layer.update()
        select_only(source)
        assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
        notes = bpy.data.objects["tipped_parts"]["proc_ml_notes"]
        assert ("tipped: it lies on its side" in capfd.readouterr().out) == noted
        assert ("lies on its side" in notes and "Alt+R" in notes) == noted, notes


def test_one_object_holding_a_street_labels_each_building_on_its_own(scene):
    """One object holding two 12 x 9 x 9 m houses 3 m apart, the second on ground 3 m higher
    (a street on a slope imported as one mesh): each house gets the labels it gets alone,
    its door included; labelled as one building, the raised one had no ground floor."""
    def house(name, x, z):
        return box_object(name, (x, 0, z), (x + 12, 9, z + 9))

    def part_counts(obj):
        select_only(obj)
        assert bpy.ops.object.proc_ml_predict_parts(device="cpu", cell_size=CELL,
                                                    street_sides={"-y"}) == {"FINISHED"}
        result = bpy.data.objects[obj.name + "_parts"]
        names = result["proc_ml_parts"].split()
        part = face_values(result.data, "part", np.int32)
        centres = np.empty(3 * len(part), np.float32)
        result.data.polygons.foreach_get("center", centres)
        return names, part, centres.reshape(-1, 3)

    names, alone, _ = part_counts(house("alone", 0, 0))
    street = house("street", 0, 0)
    raised = house("raised", 15, 3)
    select_only(street)
    raised.select_set(True)
    bpy.context.view_layer.objects.active = street
    bpy.ops.object.join()                                  # one object, two loose parts
    assert len(street.data.vertices) == 16
    names, both, centres = part_counts(street)
    door = names.index("door")
    counts = np.bincount(alone, minlength=len(names))
    assert counts[door] > 0
    for first in (True, False):                            # each house: the parts it has alone
        mine = (centres[:, 0] < 13.5) == first
        assert (np.bincount(both[mine], minlength=len(names)) == counts).all(), first


def test_touching_objects_side_by_side_are_row_houses(scene):
    """Three 12 x 9 x 9 m houses as three objects that touch (row houses): labelled together,
    each as a building of its own, so each gets the parts it gets alone on its outside
    faces (its door included), and the party walls between them are not output."""
    def labelled(objects):
        for other in bpy.context.scene.objects:
            other.select_set(False)
        for obj in objects:
            obj.select_set(True)
        bpy.context.view_layer.objects.active = objects[0]
        assert bpy.ops.object.proc_ml_predict_parts(device="cpu", cell_size=CELL,
                                                    street_sides={"-y"}) == {"FINISHED"}
        results = [bpy.data.objects[obj.name + "_parts"] for obj in objects]
        names = results[0]["proc_ml_parts"].split()
        return names, [face_values(r.data, "part", np.int32) for r in results], results

    names, (alone,), _ = labelled([box_object("alone", (0, 0, 0), (12, 9, 9))])
    door = names.index("door")
    row = [box_object(f"row_{k}", (12 * k, 20, 0), (12 * k + 12, 29, 9)) for k in range(3)]
    names, parts, results = labelled(row)
    for k, (part, result) in enumerate(zip(parts, results)):
        assert (part == door).sum() == (alone == door).sum() > 0, k
        x = world_points(result)[:, 0]
        inner = [12.0 * k] * (k > 0) + [12.0 * k + 12] * (k < 2)   # its walls against a neighbour
        quads = x.reshape(-1, 4)
        assert not any(np.allclose(q, w) for q in quads for w in inner), k
    assert sum(len(p) for p in parts) == 3 * len(alone) - 4 * 3 * 3     # 2 party walls x 2 sides


def test_a_block_labelled_together_is_exported_as_one_building(scene, tiny_massing_unet_onnx,
                                                               tmp_path):
    """Two floors of a building as two objects, labelled together: each result alone is not
    a closed massing, so Export Training Data writes the block's results as one building,
    corrections included, and refuses a selection holding only part of the block."""
    from proc_ml.formats import grid_npz, grid_path, manifest

    low = box_object("storey_0", (0, 0, 0), (9, 6, 3))
    high = box_object("storey_1", (0, 0, 3), (9, 6, 6))
    for obj in (low, high):
        obj.select_set(True)
    bpy.context.view_layer.objects.active = low
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    results = [bpy.data.objects[f"storey_{k}_parts"] for k in (0, 1)]
    assert all(r["proc_ml_block"] == "storey_0\nstorey_1" for r in results)
    select_only(results[1])
    corrected = len(results[1].data.polygons)
    select_faces(results[1].data, np.arange(corrected))         # the upper storey, every face
    assert bpy.ops.object.proc_ml_fix_part(part="window") == {"FINISHED"}
    select_only(results[1])
    with pytest.raises(RuntimeError, match="labelled together with storey_0_parts: select them too"):
        bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds"))
    results[0].select_set(True)
    assert bpy.ops.object.proc_ml_export_training_data(directory=str(tmp_path / "ds")) == {"FINISHED"}
    assert manifest.read(tmp_path / "ds")["count"] == 1
    record = grid_npz.read(grid_path(tmp_path / "ds", 0))
    assert record.occupancy.sum() == 3 * 2 * 2
    assert int(record.extras["label_fixed"].sum()) == corrected
    # labelled alone again, the result is no longer part of a block
    select_only(low)
    assert run_operator(tiny_massing_unet_onnx, cell_size=CELL) == {"FINISHED"}
    assert "proc_ml_block" not in results[0]
