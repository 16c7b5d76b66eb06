"""The Houdini SOP scripts, cooked against the in-repo fake ``hou`` (tests/fake_hou/hou.py).

Each cook runs the script's source with the fake as ``hou`` and ``hou.pwd()`` set to the
node, the way a Python SOP runs its code; HOM exceptions (NodeError, NodeWarning) reach
the test the way Houdini would turn them into node errors and warnings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fake_hou"))

import hou  # noqa: E402  (the fake)

from proc_ml.datasets import open_dataset, read_faces_csv  # noqa: E402
from proc_ml.dcc import predict as dcc_predict  # noqa: E402
from proc_ml.dcc.geometry import from_z_up  # noqa: E402
from proc_ml.grid import exterior_faces  # noqa: E402
from proc_ml.procedural import generate_building  # noqa: E402
from proc_ml.procedural.config import default_config  # noqa: E402
from proc_ml.runtime import clear_cache  # noqa: E402

SCRIPTS = REPO / "hda_scripts"
PREDICT = compile((SCRIPTS / "predict_parts_sop.py").read_text(), "predict_parts_sop.py", "exec")
EXPORT = compile((SCRIPTS / "export_training_data_sop.py").read_text(),
                 "export_training_data_sop.py", "exec")
CELL = 3.0
OFFSET = np.array([30.0, -12.0, 0.0])   # z-up world offset of the building's grid


@pytest.fixture(scope="session")
def parts_model(tiny_massing_unet_onnx) -> Path:
    """A massing-only model: what DCC block-outs (no style features) are labelled with."""
    return Path(tiny_massing_unet_onnx)


def building(index: int = 3):
    return generate_building(default_config(), 1, index)


def voxel_points_geometry(occupancy) -> hou.Geometry:
    """Houdini (y-up) points at the centres of the filled cells, as Points from Volume makes."""
    cells = np.stack(np.nonzero(occupancy), axis=1)
    geo = hou.Geometry()
    geo.createPoints(from_z_up(OFFSET + (cells + 0.5) * CELL, "y").tolist())
    return geo


def box_polygons(boxes, cell=CELL, place=None):
    """Closed box polygons (z-up corners in cells) wound clockwise, as Houdini models them;
    ``place`` (optional) moves the z-up points (metres) before they go y-up."""
    points, polys = [], []
    for (x0, y0, z0), (x1, y1, z1) in boxes:
        corners = np.array([[x, y, z] for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)],
                           dtype=np.float64) * cell
        base = len(points) * 8
        # counter-clockwise from outside, then reversed for Houdini's clockwise convention
        faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
        polys += [[base + i for i in reversed(f)] for f in faces]
        points.append(corners)
    geo = hou.Geometry()
    zup = np.concatenate(points)
    geo.createPoints(from_z_up(place(zup) if place else zup, "y").tolist())
    geo.createPolygons(polys)
    return geo


def predict_node(geometry, model, **parms):
    values = {"model": str(model), "device": "cpu", "threads": 0, "cellsize": CELL,
              "inputtype": "auto", "upaxis": "y"}
    values.update(parms)
    return hou.make_sop_node(values, geometry)


def output_arrays(geo):
    k = len(geo.attribValue("part_names").split())
    n = geo.intrinsicValue("primitivecount")
    return {
        "part": np.array(geo.primIntAttribValues("part")),
        "name": np.array(geo.primStringAttribValues("part_name")),
        "prob": np.frombuffer(geo.primFloatAttribValuesAsString("part_prob"), np.float32).reshape(n, k),
        "cd": np.frombuffer(geo.primFloatAttribValuesAsString("Cd"), np.float32).reshape(n, 3),
        "points": np.frombuffer(geo.pointFloatAttribValuesAsString("P"), np.float32).reshape(-1, 3),
        "polys": np.array([[p.number() for p in prim.points()] for prim in geo.prims()]),
        "parts": geo.attribValue("part_names").split(),
    }


def check_labelled_output(geo, filled_centres_zup):
    """Valid attributes on every quad, and quads facing away from the filled cell they bound."""
    out = output_arrays(geo)
    k = len(out["parts"])
    assert ((out["part"] >= 0) & (out["part"] < k)).all()
    assert (out["name"] == np.array(out["parts"])[out["part"]]).all()
    assert np.allclose(out["prob"].sum(axis=1), 1.0, atol=1e-4)
    assert (out["prob"].argmax(axis=1) == out["part"]).all()
    assert ((out["cd"] >= 0) & (out["cd"] <= 1)).all()
    same_part = out["part"][:, None] == out["part"][None, :]
    same_colour = np.abs(out["cd"][:, None] - out["cd"][None, :]).max(axis=2) < 1e-6
    assert (same_colour[same_part]).all()
    corners = out["points"][out["polys"]].astype(np.float64)          # [F, 4, 3] y-up
    # Houdini: vertices clockwise seen from the front, so the front normal is (v2-v0) x (v1-v0).
    normal = np.cross(corners[:, 2] - corners[:, 0], corners[:, 1] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    inside = corners.mean(axis=1) - normal * CELL / 2
    from proc_ml.dcc.geometry import to_z_up
    inside_zup = to_z_up(inside, "y")
    filled = {tuple(np.round(c, 3)) for c in filled_centres_zup}
    assert all(tuple(np.round(c, 3)) in filled for c in inside_zup)
    return out


# -- predict_parts_sop.py ---------------------------------------------------------------
def test_voxel_points_input_labels_every_exterior_face(parts_model):
    b = building()
    node = predict_node(voxel_points_geometry(b.occupancy), parts_model)
    hou.cook(node, PREDICT)
    geo = node.geometry()
    assert geo.intrinsicValue("primitivecount") == int(exterior_faces(b.occupancy).sum())
    cells = np.stack(np.nonzero(b.occupancy), axis=1)
    out = check_labelled_output(geo, OFFSET + (cells + 0.5) * CELL)
    # The same labels as the runtime gives for the grid the points describe (cropped to
    # the building: phase features count from the grid's corner).
    from proc_ml.runtime import PartsPredictor
    nz = np.nonzero(b.occupancy)
    crop = b.occupancy[nz[0].min():nz[0].max() + 1, nz[1].min():nz[1].max() + 1, :nz[2].max() + 1]
    labels, _ = PartsPredictor(parts_model, "cpu").predict(crop)
    assert sorted(out["part"].tolist()) == sorted(labels[labels >= 0].tolist())


def test_style_aware_model_reads_the_style_parameters(tiny_unet_onnx):
    b = building()
    cells = np.stack(np.nonzero(b.occupancy), axis=1)
    outputs = []
    for side, period in (("+x", 1), ("-y", 3)):
        node = predict_node(voxel_points_geometry(b.occupancy), tiny_unet_onnx, streetside=side,
                            windowperiod=period, shopfront=1, balconies=0)
        hou.cook(node, PREDICT)
        outputs.append(check_labelled_output(node.geometry(), OFFSET + (cells + 0.5) * CELL))
    # The style reaches the model: its probabilities change with it.
    assert not np.allclose(outputs[0]["prob"], outputs[1]["prob"])
    node = predict_node(voxel_points_geometry(b.occupancy), tiny_unet_onnx, streetside="north")
    with pytest.raises(hou.NodeError, match="street side must be one of"):
        hou.cook(node, PREDICT)


def test_attribute_data_moves_in_bulk(parts_model):
    node = predict_node(voxel_points_geometry(building().occupancy), parts_model)
    hou.cook(node, PREDICT)
    calls = node.geometry().calls
    for bulk in ("createPoints", "createPolygons", "setPrimIntAttribValues",
                 "setPrimStringAttribValues", "setPrimFloatAttribValuesFromString"):
        assert calls.count(bulk) >= 1, bulk
    assert calls.count("createPoints") == 1 and calls.count("createPolygons") == 1


def test_polygon_massing_input_is_voxelised(parts_model):
    # An L-shaped block out of two boxes (4x2x3 and 2x3x3 cells overlapping on a face).
    geo = box_polygons([((0, 0, 0), (4, 2, 3)), ((0, 2, 0), (2, 5, 3))])
    node = predict_node(geo, parts_model)
    hou.cook(node, PREDICT)
    occ = np.zeros((4, 5, 3), np.uint8)
    occ[:4, :2] = 1
    occ[:2, 2:5] = 1
    out_geo = node.geometry()
    # Two boxes touching along a face: the inner faces vanish, the L's surface remains.
    assert out_geo.intrinsicValue("primitivecount") == int(exterior_faces(occ).sum())
    cells = np.stack(np.nonzero(occ), axis=1)
    check_labelled_output(out_geo, (cells + 0.5) * CELL)


def test_session_is_cached_between_cooks(parts_model, monkeypatch):
    loads = []
    real = dcc_predict.PartsPredictor

    def counting(path, device="auto", **options):
        loads.append((path, device, options))
        return real(path, device, **options)

    monkeypatch.setattr(dcc_predict, "PartsPredictor", counting)
    clear_cache()                      # proc-ml's one model cache, shared by every node
    node = predict_node(voxel_points_geometry(building().occupancy), parts_model)
    hou.cook(node, PREDICT)
    first = dcc_predict.open_session(parts_model, "cpu")
    hou.cook(node, PREDICT)
    assert len(loads) == 1
    assert dcc_predict.open_session(parts_model, "cpu") is first
    node.parm("device").set("auto")          # another device: a new session
    hou.cook(node, PREDICT)
    assert len(loads) == 2
    hou.cook(node, PREDICT)
    assert len(loads) == 2
    node.parm("threads").set(1)                 # fewer onnxruntime threads: a new session
    hou.cook(node, PREDICT)
    assert len(loads) == 3 and loads[-1][2] == {"intra_op_threads": 1}


def test_missing_model_is_a_node_error(tmp_path, parts_model):
    geo = voxel_points_geometry(building().occupancy)
    missing = tmp_path / "nope.onnx"
    with pytest.raises(hou.NodeError, match=r"nope\.onnx: model file not found"):
        hou.cook(predict_node(geo, missing), PREDICT)


def test_empty_model_cooks_with_the_installed_model():
    """An empty Model parameter means the model installed with proc-ml (docs/model-card.md)."""
    from proc_ml.runtime import PartsPredictor, default_model

    geo = voxel_points_geometry(building().occupancy)
    node = predict_node(geo, "", street="-y")
    hou.cook(node, PREDICT)
    out = output_arrays(node.geometry())
    assert out["parts"] == PartsPredictor(default_model(), device="cpu").parts
    assert len(out["part"]) > 0
    assert set(out["name"]) <= {"wall", "window", "door", "roof", "ground"}
    assert {"roof", "ground"} <= set(out["name"])


def test_the_installed_model_without_street_sides_warns_and_still_labels():
    """An empty Street parameter on a street-aware model: the node labels the building (every
    side a back facade) and its warning asks for the street sides."""
    geo = voxel_points_geometry(building().occupancy)
    node = predict_node(geo, "", street="")
    with pytest.raises(hou.NodeWarning, match="no street sides given"):
        hou.cook(node, PREDICT)
    assert len(output_arrays(node.geometry())["part"]) > 0


def test_a_block_of_buildings_standing_apart_labels_each_on_its_own():
    """Input 0 holding two 12 x 9 x 9 m houses one cell apart, the second on ground a storey
    higher (a street on a slope): each house gets the parts it gets alone, its door
    included (``PartsPredictor`` labels masses standing apart one by one)."""
    def parts_per_house(boxes):
        node = predict_node(box_polygons(boxes), "", street="-y")
        hou.cook(node, PREDICT)
        out = output_arrays(node.geometry())
        centres = out["points"][out["polys"]].mean(axis=1)                 # y-up: x is x
        k = len(out["parts"])
        return out["parts"], [np.bincount(out["part"][side], minlength=k)
                              for side in (centres[:, 0] < 4.5 * CELL, centres[:, 0] > 4.5 * CELL)]

    parts, (alone, nothing) = parts_per_house([((0, 0, 0), (4, 3, 3))])
    assert alone[parts.index("door")] > 0 and nothing.sum() == 0
    parts, (first, second) = parts_per_house([((0, 0, 0), (4, 3, 3)), ((5, 0, 1), (9, 3, 4))])
    assert (first == alone).all() and (second == alone).all()


def _row_houses(values, attrib="name"):
    """Three 4 x 3 x 3-cell houses in a row, touching (one mass), each box's six polygons
    carrying ``values[k]`` in the prim attribute ``attrib`` (None: no attribute)."""
    geo = box_polygons([((4 * k, 0, 0), (4 * k + 4, 3, 3)) for k in range(3)])
    if values is not None:
        geo.addAttrib(hou.attribType.Prim, attrib, values[0])
        per_prim = [v for v in values for _ in range(6)]
        if isinstance(values[0], str):
            geo.setPrimStringAttribValues(attrib, per_prim)
        elif isinstance(values[0], int):
            geo.setPrimIntAttribValues(attrib, per_prim)
        else:
            geo.setPrimFloatAttribValues(attrib, per_prim)
    return geo


def _doors_per_house(out):
    centres = out["points"][out["polys"]].mean(axis=1)
    house = np.floor(centres[:, 0] / (4 * CELL) - 1e-6).astype(int)
    door = out["parts"].index("door")
    return [int(((house == k) & (out["part"] == door)).sum()) for k in range(3)]


def test_row_houses_named_as_pieces_get_a_door_each():
    """Three row houses that touch (one mass), each named by the prim attribute ``name``
    (the Piece Attribute's default): each is labelled as a building of its own and gets its
    entrance; the faces between two houses are not output; the quads carry ``name``."""
    node = predict_node(_row_houses(None), "", street="-y")
    hou.cook(node, PREDICT)
    one_mass = output_arrays(node.geometry())
    assert sum(_doors_per_house(one_mass)) > 0 and min(_doors_per_house(one_mass)) == 0
    assert node.geometry().findPrimAttrib("name") is None

    node = predict_node(_row_houses(["house_a", "house_b", "house_c"]), "", street="-y")
    hou.cook(node, PREDICT)
    geo = node.geometry()
    out = output_arrays(geo)
    assert min(_doors_per_house(out)) > 0
    assert len(out["part"]) == len(one_mass["part"])        # the same outer faces, no party walls
    names = np.array(geo.primStringAttribValues("name"))
    centres = out["points"][out["polys"]].mean(axis=1)
    for k, name in enumerate(("house_a", "house_b", "house_c")):
        mine = np.floor(centres[:, 0] / (4 * CELL) - 1e-6).astype(int) == k
        assert (names[mine] == name).all()

    node = predict_node(_row_houses([3, 1, 2], "class"), "", street="-y", pieceattrib="class")
    hou.cook(node, PREDICT)
    assert min(_doors_per_house(output_arrays(node.geometry()))) > 0
    assert sorted(set(node.geometry().primIntAttribValues("class"))) == [1, 2, 3]


def test_voxel_points_carry_their_piece_as_a_point_attribute():
    occ = np.ones((12, 3, 3), np.uint8)
    geo = voxel_points_geometry(occ)
    cells = np.stack(np.nonzero(occ), axis=1)
    geo.addAttrib(hou.attribType.Point, "name", "")
    geo._set_values(hou.attribType.Point, "name", tuple(f"h{x // 4}" for x in cells[:, 0]),
                    hou.attribData.String)
    node = predict_node(geo, "", street="-y")
    hou.cook(node, PREDICT)
    names = node.geometry().primStringAttribValues("name")
    assert sorted(set(names)) == ["h0", "h1", "h2"]


@pytest.mark.parametrize("attrib, values, message", [
    ("name", [0.5, 1.5, 2.5], "must be a string or integer prim attribute"),
    ("part", [0, 1, 2], "an attribute the output writes"),
])
def test_piece_attribute_errors_are_node_errors(attrib, values, message):
    node = predict_node(_row_houses(values, attrib), "", street="-y", pieceattrib=attrib)
    with pytest.raises(hou.NodeError, match=message):
        hou.cook(node, PREDICT)


def test_unreadable_model_is_a_node_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an onnx file")
    node = predict_node(voxel_points_geometry(building().occupancy), bad)
    with pytest.raises(hou.NodeError, match=r"broken\.onnx: not a loadable ONNX model"):
        hou.cook(node, PREDICT)
    assert node.geometry().intrinsicValue("primitivecount") == 0


def test_wrong_cell_size_for_voxel_points_is_a_node_error(parts_model):
    node = predict_node(voxel_points_geometry(building().occupancy), parts_model, cellsize=2.0)
    with pytest.raises(hou.NodeError, match="not at the cell centres of a 2 grid"):
        hou.cook(node, PREDICT)


def test_empty_input_gives_empty_output_and_a_warning(parts_model):
    for node in (predict_node(hou.Geometry(), parts_model),
                 hou.make_sop_node({"model": str(parts_model), "device": "cpu"})):
        with pytest.raises(hou.NodeWarning, match="nothing to label"):
            hou.cook(node, PREDICT)
        assert node.geometry().intrinsicValue("pointcount") == 0
        assert node.geometry().intrinsicValue("primitivecount") == 0


def test_input_geometry_is_not_modified(parts_model):
    geo = voxel_points_geometry(building().occupancy)
    before = geo.pointFloatAttribValuesAsString("P")
    hou.cook(predict_node(geo, parts_model), PREDICT)
    assert geo.pointFloatAttribValuesAsString("P") == before


# -- export_training_data_sop.py ---------------------------------------------------------
def export_node(geometry, out, **parms):
    values = {"output": str(out), "buildingid": 0, "cellsize": CELL, "partattrib": "part_name",
              "parts": "", "formats": "all", "upaxis": "y", "archetype": "custom", "seed": 0,
              "valfraction": 0.0, "testfraction": 0.0, "updateindex": 1, "gridsize": (16, 16, 16)}
    values.update(parms)
    return hou.make_sop_node(values, geometry)


def test_predicted_buildings_export_to_a_dataset(parts_model, tmp_path):
    out = tmp_path / "houdini_ds"
    results = []
    for building_id, index in enumerate((3, 5)):
        b = building(index)
        predicted = predict_node(voxel_points_geometry(b.occupancy), parts_model)
        hou.cook(predicted, PREDICT)
        labelled = predicted.geometry().freeze(read_only=True)
        node = export_node(labelled, out, buildingid=building_id)
        hou.cook(node, EXPORT)
        assert node.geometry().intrinsicValue("primitivecount") == labelled.intrinsicValue(
            "primitivecount")                                   # geometry passes through
        results.append((b, output_arrays(labelled)))
    ds = open_dataset(out)
    assert ds.manifest["count"] == 2 and ds.manifest["style_present"] is False
    assert ds.manifest["source"] == "houdini"
    for building_id, (b, out_arrays) in enumerate(results):
        rec = ds.building(building_id)
        nz = np.nonzero(b.occupancy)
        crop = b.occupancy[nz[0].min():nz[0].max() + 1, nz[1].min():nz[1].max() + 1, :nz[2].max() + 1]
        X, Y, Z = crop.shape
        assert rec.occupancy.shape == (16, 16, 16)
        assert np.array_equal(rec.occupancy[:X, :Y, :Z], crop) and rec.occupancy.sum() == crop.sum()
        assert sorted(rec.labels[rec.labels >= 0].tolist()) == sorted(out_arrays["part"].tolist())
        assert not rec.style.any()
    ids, one_hot = read_faces_csv(out / "faces.csv", ds.parts)
    assert set(ids[:, 0].tolist()) == {0, 1}
    assert int(one_hot.sum()) == sum(int((ds.building(i).labels >= 0).sum()) for i in (0, 1))
    for name in ("adjacency.csv", "buildings.csv", "labels.json", "meshes/b000001.ply",
                 "points/b000000.npz"):
        assert (out / name).is_file(), name


def test_turned_massing_exports_with_the_street_sides_of_its_prediction(tmp_path):
    """A massing whose walls run at 25 degrees: Predict Parts labels it turned back onto it
    and writes the street sides it used as the detail ``street_sides``; Export Training Data
    turns the faces back onto the grid (it refused them: "not on the cell grid") and writes
    the street sides and the angle into the grid."""
    from proc_ml.alignment import rotation_z

    geo = box_polygons([((0, 0, 0), (4, 3, 2)), ((4, 0, 0), (6, 2, 1))],
                       place=lambda p: (p - 9.0) @ rotation_z(25.0).T + [300.0, 41.5, 0.0])
    predicted = predict_node(geo, "", street="-y +x")        # the installed, street-aware model
    hou.cook(predicted, PREDICT)
    labelled = predicted.geometry().freeze(read_only=True)
    assert labelled.attribValue("street_sides") == "+x -y"
    node = export_node(labelled, tmp_path / "ds")
    hou.cook(node, EXPORT)
    rec = open_dataset(tmp_path / "ds").building(0)
    assert rec.street_sides == ("+x", "-y")
    assert abs(abs(float(rec.extras["rotation_deg"])) - 25.0) < 1e-3
    assert int(rec.occupancy.sum()) == 4 * 3 * 2 + 2 * 2 * 1


def test_export_reads_int_parts_on_large_rectangles(tmp_path):
    # One 2x3x4-cell box as six big rectangles; int attribute 'part' (walls, roof, ground).
    geo = box_polygons([((0, 0, 0), (2, 3, 4))])
    geo.addAttrib(hou.attribType.Prim, "part", 0)
    geo.setPrimIntAttribValues("part", [6, 3, 0, 0, 0, 0])     # -z ground, +z roof, sides
    node = export_node(geo, tmp_path / "ds", partattrib="part", gridsize=(0, 0, 0))
    hou.cook(node, EXPORT)
    rec = open_dataset(tmp_path / "ds").building(0)
    assert rec.occupancy.shape == (2, 3, 4) and rec.occupancy.all()
    assert (rec.labels[..., 5][:, :, 0] == 6).all() and (rec.labels[..., 4][:, :, 3] == 3).all()
    assert np.bincount(rec.labels[rec.labels >= 0]).tolist() == [2 * (2 * 4 + 3 * 4), 0, 0, 6, 0, 0, 6]


@pytest.mark.parametrize("change, message", [
    ({"partattrib": "material"}, "no prim attribute 'material'"),
    ({"parts": "wall roof ground"}, "part 'window' is not in the vocabulary|part '.*' is not"),
    ({"gridsize": (4, 4, 4)}, "raise the grid size"),
    ({"output": ""}, "no output folder set"),
    ({"buildingid": 2}, "building ids must run 0..N-1; missing 0, 1"),
])
def test_export_errors_are_node_errors(parts_model, tmp_path, change, message):
    predicted = predict_node(voxel_points_geometry(building().occupancy), parts_model)
    hou.cook(predicted, PREDICT)
    if change.get("parts") and set(output_arrays(predicted.geometry())["name"]) <= {"wall", "roof", "ground"}:
        pytest.skip("the tiny model predicted only parts in the reduced vocabulary")
    node = export_node(predicted.geometry().freeze(read_only=True), tmp_path / "ds", **change)
    with pytest.raises(hou.NodeError, match=message):
        hou.cook(node, EXPORT)


def test_export_refuses_an_open_massing(tmp_path):
    geo = box_polygons([((0, 0, 0), (2, 2, 2))])
    geo.addAttrib(hou.attribType.Prim, "part_name", "")
    geo.setPrimStringAttribValues("part_name", ["ground", "roof", "wall", "wall", "wall", "wall"])
    open_geo = hou.Geometry()        # the same box without its roof
    points = np.frombuffer(geo.pointFloatAttribValuesAsString("P"), np.float32).reshape(-1, 3)
    open_geo.createPoints(points.tolist())
    open_geo.createPolygons([[p.number() for p in prim.points()] for prim in geo.prims()
                             if prim.number() != 1])
    open_geo.addAttrib(hou.attribType.Prim, "part_name", "")
    open_geo.setPrimStringAttribValues("part_name", ["ground", "wall", "wall", "wall", "wall"])
    with pytest.raises(hou.NodeError, match="closed"):
        hou.cook(export_node(open_geo, tmp_path / "ds", gridsize=(0, 0, 0)), EXPORT)
    hou.cook(export_node(geo, tmp_path / "ds", gridsize=(0, 0, 0)), EXPORT)
    assert open_dataset(tmp_path / "ds").building(0).occupancy.sum() == 8


def test_export_of_empty_input_warns(tmp_path):
    with pytest.raises(hou.NodeWarning, match="nothing exported"):
        hou.cook(export_node(hou.Geometry(), tmp_path / "ds"), EXPORT)
    assert not (tmp_path / "ds").exists()


def test_hda_code_runs_the_scripts_from_the_package_folder(parts_model, monkeypatch, tmp_path):
    from proc_ml.dcc.hda import run_script

    b = building()
    node = predict_node(voxel_points_geometry(b.occupancy), parts_model)
    with hou.cooking(node):
        run_script("predict_parts_sop.py")
    assert node.geometry().intrinsicValue("primitivecount") == int(exterior_faces(b.occupancy).sum())
    monkeypatch.setenv("PROC_ML_SCRIPTS", str(tmp_path))
    with hou.cooking(node), pytest.raises(hou.NodeError, match="SOP script not found"):
        run_script("predict_parts_sop.py")


def test_polygon_voxelisation_fast_path_matches_voxelize():
    """Shared-point massing skips voxelize's coordinate check; the grid must not change."""
    from proc_ml.dcc.geometry import closed_by_topology, grid_from_polygons, triangulate
    from proc_ml.meshing import quad_mesh
    from proc_ml.voxelize import voxelize

    occ = building(5).occupancy
    quads = quad_mesh(occ, None, CELL)
    soup_faces = np.arange(len(quads.vertices)).reshape(-1, 4)
    shared, index = np.unique(np.round(quads.vertices, 6), axis=0, return_inverse=True)
    for points, faces, closed in ((shared, index.reshape(-1, 4), True),
                                  (quads.vertices, soup_faces, None)):
        counts = np.full(len(faces), 4)
        tris = triangulate(counts, faces.reshape(-1))
        assert closed_by_topology(tris, len(points)) is closed
        fast = grid_from_polygons(points, counts, faces.reshape(-1), CELL)
        reference = voxelize(points, tris, CELL)
        assert np.array_equal(fast.occupancy, reference.occupancy)
        assert np.allclose(fast.origin, reference.origin)
    # A box missing its top is open by topology: voxelize decides (fills it from below).
    top_open = np.array([[0, 2, 3, 1], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]])
    corners = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], float)
    assert closed_by_topology(triangulate(np.full(5, 4), top_open.reshape(-1)), 8) is None
    assert grid_from_polygons(corners, np.full(5, 4), top_open.reshape(-1), 1.0).occupancy.all()


# -- part_fix: the artist's correction loop ------------------------------------------------
def quad_slots(geo):
    """(cell [F, 3], direction [F]) of every quad of ``geo`` in the grid the export builds
    (low corner at the quads' low corner), from each quad's centre and outward normal."""
    from proc_ml.dcc.geometry import to_z_up

    points = np.frombuffer(geo.pointFloatAttribValuesAsString("P"), np.float32).reshape(-1, 3)
    polys = np.array([[p.number() for p in prim.points()] for prim in geo.prims()])
    corners = to_z_up(points[polys].astype(np.float64), "y")                  # [F, 4, 3] z-up
    # Houdini quads run clockwise seen from the front: reversed, they are counter-clockwise
    ccw = corners[:, ::-1]
    normal = np.cross(ccw[:, 1] - ccw[:, 0], ccw[:, 3] - ccw[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    axis = np.argmax(np.abs(normal), axis=1)
    direction = 2 * axis + (normal[np.arange(len(axis)), axis] < 0)
    low = corners.reshape(-1, 3).min(axis=0)
    inside = corners.mean(axis=1) - normal * CELL / 2
    return np.floor((inside - low) / CELL).astype(int), direction


def painted(geo, fixes: dict) -> hou.Geometry:
    """A copy of ``geo`` with ``s@part_fix`` set on the prims ``fixes`` names, "" elsewhere
    (what an Attribute Paint / Attribute Wrangle leaves)."""
    geo = geo.freeze()
    if geo.findPrimAttrib("part_fix") is None:
        geo.addAttrib(hou.attribType.Prim, "part_fix", "")
    values = list(geo.primStringAttribValues("part_fix"))
    for prim, name in fixes.items():
        values[prim] = name
    geo.setPrimStringAttribValues("part_fix", values)
    return geo.freeze(read_only=True)


def chosen_fixes(out, count=6, seed=7) -> dict:
    """``count`` prims and a part other than the predicted one for each (deterministic)."""
    rng = np.random.default_rng(seed)
    prims = rng.choice(len(out["part"]), size=count, replace=False)
    choices = ("door", "balcony", "shopfront")
    return {int(p): next(c for c in np.roll(choices, i) if c != out["name"][p])
            for i, p in enumerate(prims)}


def test_part_fix_round_trip(parts_model, tmp_path):
    """Predict, paint part_fix on some faces, predict again (twice): the corrections
    override the prediction and survive; the export writes them as labels and marks exactly
    those faces in label_fixed."""
    b = building()
    first = predict_node(voxel_points_geometry(b.occupancy), parts_model)
    hou.cook(first, PREDICT)
    predicted = first.geometry().freeze(read_only=True)
    base = output_arrays(predicted)
    assert predicted.findPrimAttrib("part_fix") is None        # nothing to carry: not added
    fixes = chosen_fixes(base)
    # A plain re-prediction of the same quads: what the unfixed faces must match.
    plain = predict_node(predicted, parts_model)
    hou.cook(plain, PREDICT)
    plain_out = output_arrays(plain.geometry())
    assert plain.geometry().findGlobalAttrib("part_fix_count") is None

    geo = painted(predicted, fixes)
    for _ in range(2):                                          # re-predict, then again
        node = predict_node(geo, parts_model)
        hou.cook(node, PREDICT)
        geo = node.geometry().freeze(read_only=True)
        out = output_arrays(geo)
        assert len(out["part"]) == len(base["part"])
        slot_of = {(*c, d): i for i, (c, d) in enumerate(zip(*quad_slots(geo)))}
        in_cells, in_dirs = quad_slots(predicted)
        fixed_out = np.array([slot_of[(*in_cells[p], in_dirs[p])] for p in fixes])
        names = np.array(geo.primStringAttribValues("part_fix"), dtype=object)
        assert (names[fixed_out] == np.array(list(fixes.values()))).all()   # carried on
        assert (np.delete(names, fixed_out) == "").all()
        assert (out["name"][fixed_out] == np.array(list(fixes.values()))).all()   # overridden
        assert (out["part"][fixed_out] == [out["parts"].index(n) for n in fixes.values()]).all()
        rest = np.setdiff1d(np.arange(len(out["part"])), fixed_out)
        assert (out["part"][rest] == plain_out["part"][rest]).all()
        assert (out["prob"][fixed_out].argmax(axis=1) == plain_out["part"][fixed_out]).all()
        colour_of = {int(p): tuple(np.round(c, 5)) for p, c in zip(plain_out["part"], plain_out["cd"])}
        door = out["parts"].index("door")
        if door in colour_of:
            assert all(tuple(np.round(out["cd"][i], 5)) == colour_of[door]
                       for i in fixed_out if out["part"][i] == door)
        assert geo.attribValue("part_fix_count") == len(fixes)
        assert "setPrimStringAttribValues" in node.geometry().calls

    # Export: labels are the corrections on exactly those faces; label_fixed marks them.
    from proc_ml.formats import grid_npz, grid_path

    node = export_node(geo, tmp_path / "ds", gridsize=(16, 16, 16))
    hou.cook(node, EXPORT)
    rec = grid_npz.read(grid_path(tmp_path / "ds", 0), n_parts=len(out["parts"]))
    cells, dirs = quad_slots(geo)
    fixed = rec.extras["label_fixed"]
    assert fixed.dtype == bool and fixed.shape == rec.labels.shape
    assert fixed.sum() == len(fixes)
    assert fixed[cells[fixed_out, 0], cells[fixed_out, 1], cells[fixed_out, 2], dirs[fixed_out]].all()
    assert (rec.labels[cells[:, 0], cells[:, 1], cells[:, 2], dirs] == out["part"]).all()
    want = [out["parts"].index(n) for n in fixes.values()]
    assert (rec.labels[cells[fixed_out, 0], cells[fixed_out, 1], cells[fixed_out, 2], dirs[fixed_out]]
            == want).all()

    # Exporting the painted prediction directly (not re-predicted) writes the same grid:
    # part_fix overrides the predicted part_name there.
    node = export_node(painted(predicted, fixes), tmp_path / "direct", gridsize=(16, 16, 16))
    hou.cook(node, EXPORT)
    direct = grid_npz.read(grid_path(tmp_path / "direct", 0))
    assert np.array_equal(direct.labels, rec.labels)
    assert np.array_equal(direct.extras["label_fixed"], fixed)


def test_part_fix_on_massing_faces_covers_their_cells(parts_model, tmp_path):
    """part_fix painted on a big massing polygon fixes every cell face it covers."""
    geo = box_polygons([((0, 0, 0), (3, 2, 4))])     # faces: -z, +z, -y, +y, -x, +x
    geo.addAttrib(hou.attribType.Prim, "part_fix", "")
    geo.setPrimStringAttribValues("part_fix", ["", "", "shopfront", "", "", ""])
    node = predict_node(geo, parts_model)
    hou.cook(node, PREDICT)
    out_geo = node.geometry()
    out = output_arrays(out_geo)
    cells, dirs = quad_slots(out_geo)
    on_side = dirs == 3                                          # the -y side: 3 x 4 cells
    assert on_side.sum() == 12
    assert (out["name"][on_side] == "shopfront").all()
    names = np.array(out_geo.primStringAttribValues("part_fix"))
    assert (names[on_side] == "shopfront").all() and (names[~on_side] == "").all()
    assert out_geo.attribValue("part_fix_count") == 12
    # ... and exported straight from the massing, label_fixed covers the same 12 faces.
    geo = geo.freeze()
    geo.addAttrib(hou.attribType.Prim, "part_name", "")
    geo.setPrimStringAttribValues("part_name", ["ground", "roof", "wall", "wall", "wall", "wall"])
    hou.cook(export_node(geo, tmp_path / "ds", gridsize=(0, 0, 0)), EXPORT)
    from proc_ml.formats import grid_npz, grid_path

    rec = grid_npz.read(grid_path(tmp_path / "ds", 0))
    assert rec.extras["label_fixed"].sum() == 12 and rec.extras["label_fixed"][:, 0, :, 3].all()
    assert (rec.labels[:, 0, :, 3] == 5).all()                  # shopfront in the default parts
    assert (rec.labels[rec.extras["label_fixed"] == 0] != 5).all()


def test_unknown_part_fix_is_a_one_line_error(parts_model, tmp_path):
    predicted = predict_node(voxel_points_geometry(building().occupancy), parts_model)
    hou.cook(predicted, PREDICT)
    geo = painted(predicted.geometry(), {4: "door", 9: "dor"})
    with pytest.raises(hou.NodeError) as err:
        hou.cook(predict_node(geo, parts_model), PREDICT)
    assert str(err.value).startswith("prim 9: part_fix 'dor' is not in the vocabulary (wall, ")
    assert "\n" not in str(err.value)
    with pytest.raises(hou.NodeError) as err:
        hou.cook(export_node(geo, tmp_path / "ds", buildingid=0), EXPORT)
    assert str(err.value).startswith("building 0, prim 9: part_fix 'dor' is not in the vocabulary")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "ds" / "grids").exists()


def test_part_fix_off_the_new_grid_is_dropped_with_a_warning(parts_model):
    """Re-predicted at another cell size, corrections no longer on the lattice are dropped
    (and said so); the output is still written."""
    predicted = predict_node(voxel_points_geometry(building().occupancy), parts_model)
    hou.cook(predicted, PREDICT)
    geo = painted(predicted.geometry(), {3: "door", 8: "balcony"})
    node = predict_node(geo, parts_model, cellsize=2.0)
    with pytest.raises(hou.NodeWarning, match=r"2 polygon\(s\) with part_fix \(first: prim 3\) .* "
                                              r"cell size 2: their corrections were dropped"):
        hou.cook(node, PREDICT)
    out = node.geometry()
    assert out.intrinsicValue("primitivecount") > 0
    assert set(out.primStringAttribValues("part_fix")) == {""}
    assert out.attribValue("part_fix_count") == 0


# -- real-world input: georeferenced positions, stray attributes, paths, orientation --------
UTM = np.array([678088.5, 5403796.9, 413.9])     # z-up easting, northing, height (Ingolstadt)


def turned_utm_box(p64: bool, angle_deg: float = 21.5) -> hou.Geometry:
    """A 3x2x2-cell box turned about z and placed at UTM coordinates; P 64-bit when ``p64``
    (an Attribute Cast upstream), else Houdini's default 32-bit P."""
    a = np.radians(angle_deg)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    source = box_polygons([((0, 0, 0), (3, 2, 2))], place=lambda p: p @ turn.T + UTM)
    geo = hou.Geometry()
    if p64:
        hou.cast_attrib(geo, hou.attribType.Point, "P", hou.numericData.Float64)
    geo.createPoints(np.frombuffer(source.pointFloatAttribValuesAsString("P", hou.numericData.Float64),
                                   np.float64).reshape(-1, 3).tolist())
    geo.createPolygons([[p.number() for p in prim.points()] for prim in source.prims()])
    return geo


def test_64_bit_positions_at_utm_keep_the_cell_grid(parts_model, tmp_path):
    """64-bit P at UTM coordinates: positions are read as 64-bit (they were read as 32-bit,
    half-metre steps), so the quads stay on the cell grid, export, and keep part_fix."""
    node = predict_node(turned_utm_box(p64=True), parts_model)
    hou.cook(node, PREDICT)
    predicted = node.geometry().freeze(read_only=True)
    fixes = {0: "door", 5: "shopfront"}
    hou.cook(export_node(painted(predicted, fixes), tmp_path / "ds", gridsize=(0, 0, 0)), EXPORT)
    assert open_dataset(tmp_path / "ds").building(0).extras["label_fixed"].sum() == 2
    again = predict_node(painted(predicted, fixes), parts_model)
    hou.cook(again, PREDICT)
    assert again.geometry().attribValue("part_fix_count") == 2


def test_32_bit_positions_far_from_the_origin_are_explained(parts_model, tmp_path):
    """Default 32-bit P at UTM keeps half metres: the prediction warns (it said nothing) and
    the export's 'not on the cell grid' error says why and what to do."""
    node = predict_node(turned_utm_box(p64=False), parts_model)
    with pytest.raises(hou.NodeWarning, match="32-bit P keeps only 0.5 m steps.*Attribute Cast"):
        hou.cook(node, PREDICT)
    with pytest.raises(hou.NodeError, match=r"not on the cell grid.*\(the building is 5404 km from the origin"):
        hou.cook(export_node(node.geometry().freeze(read_only=True), tmp_path / "ds",
                             gridsize=(0, 0, 0)), EXPORT)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("kind", ["point", "detail"])
def test_part_fix_on_another_class_is_a_node_error(parts_model, tmp_path, kind):
    """A point or detail ``part_fix`` was ignored without a word; now one line says so."""
    geo = box_polygons([((0, 0, 0), (3, 2, 2))])
    attrib_type = {"point": hou.attribType.Point, "detail": hou.attribType.Global}[kind]
    geo.addAttrib(attrib_type, "part_fix", "")
    message = f"'part_fix' is a {kind} attribute; proc-ml reads it per primitive"
    with pytest.raises(hou.NodeError, match=message):
        hou.cook(predict_node(geo, parts_model), PREDICT)
    node = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))]), parts_model)
    hou.cook(node, PREDICT)
    labelled = node.geometry().freeze()
    labelled.addAttrib(attrib_type, "part_fix", "")
    with pytest.raises(hou.NodeError, match=message):
        hou.cook(export_node(labelled, tmp_path / "ds"), EXPORT)


def test_texture_replaces_uv_and_texture_path_of_another_type(parts_model, tmp_path):
    """A float2 point ``uv``, an int ``texture_path`` (InvalidSize / OperationFailed
    tracebacks before) and a vertex ``uv`` (it would hide the point uv) are replaced."""
    texture = compile((SCRIPTS / "texture_building_sop.py").read_text(), "texture_building_sop.py", "exec")
    node = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))]), parts_model)
    hou.cook(node, PREDICT)
    geo = node.geometry().freeze()
    geo.addAttrib(hou.attribType.Point, "uv", (0.0, 0.0))
    geo.addAttrib(hou.attribType.Prim, "texture_path", 0)
    hou.declare_vertex_attrib(geo, "uv", (0.0, 0.0, 0.0))
    tex = hou.make_sop_node({"procedural": 1, "atlas": str(tmp_path / "atlas.png"), "modulepx": 4},
                            geo.freeze(read_only=True))
    hou.cook(tex, texture)
    out = tex.geometry()
    assert out.findPointAttrib("uv").size() == 3 and out.findVertexAttrib("uv") is None
    assert set(out.primStringAttribValues("texture_path")) == {str(tmp_path / "atlas.png")}


def test_outputs_need_an_absolute_folder_or_a_saved_scene(parts_model, tmp_path, monkeypatch):
    """A relative output or $HIP in a scene never saved wrote into the folder Houdini was
    started from; a folder that cannot be written was a traceback. Each is one node error."""
    monkeypatch.chdir(tmp_path)
    node = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))]), parts_model)
    hou.cook(node, PREDICT)
    labelled = node.geometry().freeze(read_only=True)
    with pytest.raises(hou.NodeError, match=r"'output' is a relative path \(data\); .*use \$HIP/data"):
        hou.cook(export_node(labelled, "data"), EXPORT)
    monkeypatch.setattr(hou, "hipFile", hou._HipFile())
    with pytest.raises(hou.NodeError, match=r"'output' uses \$HIP but the scene has never been saved"):
        hou.cook(export_node(labelled, "$HIP/data"), EXPORT)
    assert list(tmp_path.iterdir()) == []
    hou.hipFile.save(str(tmp_path / "shots" / "scene.hip"))
    hou.cook(export_node(labelled, "$HIP/data"), EXPORT)
    assert (tmp_path / "shots" / "data" / "dataset.yaml").is_file()
    (tmp_path / "file").write_text("")
    with pytest.raises(hou.NodeError, match="cannot write the dataset") as err:
        hou.cook(export_node(labelled, str(tmp_path / "file" / "ds")), EXPORT)
    assert "\n" not in str(err.value)


def test_export_into_a_dataset_of_another_grid_size_is_one_node_error(parts_model, tmp_path):
    node = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))]), parts_model)
    hou.cook(node, PREDICT)
    labelled = node.geometry().freeze(read_only=True)
    hou.cook(export_node(labelled, tmp_path / "ds"), EXPORT)
    with pytest.raises(hou.NodeError, match=r"holds buildings on a 16x16x16 grid but this one is "
                                            r"3x2x2; export it with grid size 16 16 16") as err:
        hou.cook(export_node(labelled, tmp_path / "ds", buildingid=1, gridsize=(0, 0, 0)), EXPORT)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "ds" / "grids" / "b000001.npz").exists()


def test_a_massing_lying_on_its_side_is_noted(parts_model):
    """A turned building read from a Z-up file without turning it (its up is Houdini's Z)
    was labelled as it lay without a word; now a warning says how to stand it up."""
    a = np.radians(20.0)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    upright = box_polygons([((0, 0, 0), (3, 2, 2))], place=lambda p: p @ turn.T)
    hou.cook(predict_node(upright, parts_model), PREDICT)          # no warning standing up
    raw = hou.Geometry()          # the z-up coordinates taken as Houdini's (a raw OBJ read)
    zup = np.frombuffer(upright.pointFloatAttribValuesAsString("P", hou.numericData.Float64),
                        np.float64).reshape(-1, 3)
    raw.createPoints(np.stack([zup[:, 0], -zup[:, 2], zup[:, 1]], axis=1).tolist())
    raw.createPolygons([[p.number() for p in prim.points()] for prim in upright.prims()])
    with pytest.raises(hou.NodeWarning, match="it lies on its side .*Houdini's Z axis.*Up Axis is y"):
        hou.cook(predict_node(raw, parts_model), PREDICT)


def test_a_loose_point_does_not_stretch_the_grid(parts_model):
    """A point in no polygon (a stray pivot) is ignored (shared fix of proc_ml.dcc.geometry,
    checked here for the Houdini polygon input)."""
    clean = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))]), parts_model)
    hou.cook(clean, PREDICT)
    stray = box_polygons([((0, 0, 0), (3, 2, 2))])
    stray.createPoints([(500.0, 0.0, 0.0)])
    node = predict_node(stray, parts_model)
    hou.cook(node, PREDICT)
    assert np.array_equal(output_arrays(node.geometry())["points"], output_arrays(clean.geometry())["points"])
