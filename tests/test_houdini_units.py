"""The hip file's Unit Length (Hip File Options; HScript ``unitlength``): the SOP scripts read
it through HOM (``hou.scaleToMKS("m1")``: metres per Houdini unit), work in metres inside
and write back in the scene's units, so a studio modelling in centimetres (Unit Length 0.01,
common for Unreal pipelines) gets the same building as one modelling in metres.

Cooked against the in-repo fake ``hou`` (tests/fake_hou/hou.py), whose ``set_unit_length``
stands for Hip File Options > Unit Length; every test leaves it at Houdini's default, 1 m.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fake_hou"))

import hou  # noqa: E402  (the fake)

from proc_ml.datasets import open_dataset  # noqa: E402
from proc_ml.dcc.geometry import from_z_up  # noqa: E402
from test_houdini_sop import (CELL, EXPORT, PREDICT, SCRIPTS, box_polygons, building,  # noqa: E402
                              export_node, output_arrays, predict_node)

CM = 0.01           # Unit Length of a centimetre scene: metres per Houdini unit
TEXTURE = compile((SCRIPTS / "texture_building_sop.py").read_text(), "texture_building_sop.py", "exec")
L_BLOCK = [((0, 0, 0), (4, 2, 3)), ((0, 2, 0), (2, 5, 3))]
EXPORT_MODULE = (REPO / "houdini" / "otls" / "proc_ml.hda" /
                 "proc__ml_8_8Sop_1export__training__data_8_81.0" / "PythonModule")


@pytest.fixture(autouse=True)
def metres_after_each_test():
    hou.set_unit_length(1.0)
    yield
    hou.set_unit_length(1.0)


@pytest.fixture(scope="module")
def parts_model(tiny_massing_unet_onnx) -> Path:
    return Path(tiny_massing_unet_onnx)


def in_units(geo_metres: hou.Geometry, unit_length: float) -> hou.Geometry:
    """The same geometry modelled in a scene of ``unit_length`` metres per unit."""
    points = np.frombuffer(geo_metres.pointFloatAttribValuesAsString("P", hou.numericData.Float64),
                           np.float64).reshape(-1, 3)
    geo = hou.Geometry()
    geo.createPoints((points / unit_length).tolist())
    geo.createPolygons([[p.number() for p in prim.points()] for prim in geo_metres.prims()])
    return geo


def voxel_points(occupancy, cell: float) -> hou.Geometry:
    cells = np.stack(np.nonzero(occupancy), axis=1)
    geo = hou.Geometry()
    geo.createPoints(from_z_up((cells + 0.5) * cell + [30.0 * cell / CELL, 0.0, 0.0], "y").tolist())
    return geo


# -- the fake hou: scaleToMKS / scaleFromMKS as HOM defines them ------------------------------
def test_fake_hou_unit_scales_follow_hom():
    assert hou.scaleToMKS("m1") == 1.0 and hou.scaleFromMKS("m1") == 1.0     # Houdini's default
    hou.set_unit_length(CM)
    assert hou.scaleToMKS("m1") == pytest.approx(0.01)       # Houdini units -> metres
    assert hou.scaleFromMKS("m1") == pytest.approx(100.0)    # metres -> Houdini units
    assert hou.scaleToMKS("m2") == pytest.approx(1e-4)
    assert hou.scaleToMKS("m1s-2") == pytest.approx(0.01)    # acceleration: time stays seconds
    assert hou.scaleToMKS("kg1m-3") == pytest.approx(1e6)    # density, Unit Mass 1 kg
    with pytest.raises(hou.OperationFailed):
        hou.scaleToMKS("ft1")
    with pytest.raises(hou.OperationFailed):
        hou.set_unit_length(0.0)


# -- Predict Parts ---------------------------------------------------------------------------
@pytest.mark.parametrize("cell_parm_m", [CELL, 0.0])       # explicit, and the model's own (3 m)
def test_a_centimetre_building_gets_the_labels_of_the_metre_one(parts_model, cell_parm_m):
    """The L block modelled in metres (Unit Length 1) and in centimetres (Unit Length 0.01,
    Cell Size 300 or 0): the same quads and labels, the centimetre output overlaying its
    input in centimetres. It was voxelised 100x too big (Cell Size 0: refused, 300 cells of
    3 cm across at most 256; and quads in metres laid over a centimetre massing)."""
    metres = box_polygons(L_BLOCK)
    reference = predict_node(metres, parts_model, cellsize=cell_parm_m)
    hou.cook(reference, PREDICT)
    ref = output_arrays(reference.geometry())

    hou.set_unit_length(CM)
    node = predict_node(in_units(metres, CM), parts_model, cellsize=cell_parm_m / CM)
    hou.cook(node, PREDICT)
    out = output_arrays(node.geometry())
    assert np.array_equal(out["part"], ref["part"]) and np.array_equal(out["polys"], ref["polys"])
    assert np.allclose(out["prob"], ref["prob"], atol=1e-6)
    assert np.allclose(out["points"], ref["points"] / CM, atol=1e-3)      # centimetres
    # the quads lie on the massing's own surface, in its units: the bounding boxes agree
    given = np.frombuffer(node.inputs()[0].geometry().pointFloatAttribValuesAsString("P"),
                          np.float32).reshape(-1, 3)
    assert np.allclose(out["points"].min(0), given.min(0), atol=1e-3)
    assert np.allclose(out["points"].max(0), given.max(0), atol=1e-3)


def test_centimetre_voxel_points_are_read_at_the_centimetre_spacing(parts_model):
    occupancy = building().occupancy
    reference = predict_node(voxel_points(occupancy, CELL), parts_model)
    hou.cook(reference, PREDICT)
    hou.set_unit_length(CM)
    node = predict_node(voxel_points(occupancy, CELL / CM), parts_model, cellsize=CELL / CM)
    hou.cook(node, PREDICT)
    ref, out = output_arrays(reference.geometry()), output_arrays(node.geometry())
    assert np.array_equal(out["part"], ref["part"])
    assert np.allclose(out["points"], ref["points"] / CM, atol=1e-3)


def test_part_fix_round_trip_in_centimetres(parts_model):
    """Corrections are mapped by position: in centimetres as in metres."""
    hou.set_unit_length(CM)
    node = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))], cell=CELL / CM), parts_model, cellsize=0.0)
    hou.cook(node, PREDICT)
    geo = node.geometry().freeze()
    geo.addAttrib(hou.attribType.Prim, "part_fix", "")
    fix = [""] * geo.intrinsicValue("primitivecount")
    fix[0], fix[5] = "door", "shopfront"
    geo.setPrimStringAttribValues("part_fix", fix)
    again = predict_node(geo.freeze(read_only=True), parts_model, cellsize=0.0)
    hou.cook(again, PREDICT)
    out = again.geometry()
    assert out.attribValue("part_fix_count") == 2
    assert output_arrays(out)["name"][[0, 5]].tolist() == ["door", "shopfront"]


def test_32_bit_far_from_the_origin_is_explained_in_metres(parts_model):
    """The precision warning counts kilometres and metre steps whatever the scene's units."""
    utm = np.array([678088.5, 5403796.9, 413.9])
    hou.set_unit_length(CM)
    node = predict_node(box_polygons([((0, 0, 0), (3, 2, 2))], cell=CELL / CM,
                                     place=lambda p: p + utm / CM), parts_model, cellsize=0.0)
    with pytest.raises(hou.NodeWarning, match=r"the building is 5404 km from the origin, where Houdini's "
                                              r"32-bit P keeps only 0\.64 m steps"):
        hou.cook(node, PREDICT)


# -- Texture Building ------------------------------------------------------------------------
def test_texture_of_a_centimetre_building_matches_the_metre_one(parts_model, tmp_path):
    uvs = []
    for unit in (1.0, CM):
        hou.set_unit_length(unit)
        node = predict_node(box_polygons(L_BLOCK, cell=CELL / unit), parts_model, cellsize=0.0)
        hou.cook(node, PREDICT)
        tex = hou.make_sop_node({"procedural": 1, "atlas": str(tmp_path / f"{unit}.png"), "modulepx": 4},
                                node.geometry().freeze(read_only=True))
        hou.cook(tex, TEXTURE)
        uvs.append(np.frombuffer(tex.geometry().pointFloatAttribValuesAsString("uv"), np.float32))
        assert np.array_equal(np.frombuffer(tex.geometry().pointFloatAttribValuesAsString("P"), np.float32),
                              np.frombuffer(node.geometry().pointFloatAttribValuesAsString("P"), np.float32))
    assert np.array_equal(uvs[0], uvs[1])
    assert (tmp_path / "1.0.png").read_bytes() == (tmp_path / "0.01.png").read_bytes()


# -- Export Training Data --------------------------------------------------------------------
def predicted(parts_model, unit: float):
    node = predict_node(box_polygons(L_BLOCK, cell=CELL / unit), parts_model, cellsize=0.0)
    hou.cook(node, PREDICT)
    return node.geometry().freeze(read_only=True)


def test_export_of_a_centimetre_building_writes_metres(parts_model, tmp_path):
    """Cell Size is in scene units (300 in a centimetre scene); the dataset is in metres, as
    every proc-ml dataset is: the same grid, labels and cell size (3, not 300) as the metre
    scene's export, so both train the same model and can share a dataset folder."""
    labelled_m = predicted(parts_model, 1.0)
    hou.cook(export_node(labelled_m, tmp_path / "m"), EXPORT)
    hou.set_unit_length(CM)
    labelled_cm = predicted(parts_model, CM)
    node = export_node(labelled_cm, tmp_path / "cm", cellsize=CELL / CM)
    hou.cook(node, EXPORT)
    assert node.geometry().pointFloatAttribValuesAsString("P") == labelled_cm.pointFloatAttribValuesAsString("P")
    m, cm = open_dataset(tmp_path / "m"), open_dataset(tmp_path / "cm")
    assert float(cm.manifest["cell_size"]) == float(m.manifest["cell_size"]) == CELL
    a, b = m.building(0), cm.building(0)
    assert np.array_equal(a.occupancy, b.occupancy) and np.array_equal(a.labels, b.labels)
    assert (tmp_path / "m" / "meshes" / "b000000.ply").read_bytes() == \
        (tmp_path / "cm" / "meshes" / "b000000.ply").read_bytes()
    # and into the metre scene's folder: one dataset, whichever scene each building came from
    hou.cook(export_node(labelled_cm, tmp_path / "m", buildingid=1, cellsize=CELL / CM), EXPORT)
    assert open_dataset(tmp_path / "m").manifest["count"] == 2


def test_export_cell_size_left_in_metres_in_a_centimetre_scene_says_so(parts_model, tmp_path):
    """Cell Size 3 in a centimetre scene is 3 cm: the error says Cell Size is in scene units."""
    hou.set_unit_length(CM)
    labelled = predicted(parts_model, CM)
    with pytest.raises(hou.NodeError, match=r"Cell Size is in scene units \(Unit Length 0\.01 m\): "
                                            r"a 3 m cell is 300") as err:
        hou.cook(export_node(labelled, tmp_path / "ds", cellsize=CELL), EXPORT)
    assert "\n" not in str(err.value)


def test_rebuild_index_button_takes_cell_size_in_scene_units(parts_model, tmp_path, monkeypatch):
    hou.set_unit_length(CM)
    labelled = predicted(parts_model, CM)
    node = export_node(labelled, tmp_path / "ds", cellsize=CELL / CM, updateindex=0)
    hou.cook(node, EXPORT)
    module = types.ModuleType("proc_ml_export_hda")
    module.__dict__["hou"] = hou
    exec(compile(EXPORT_MODULE.read_text(), "PythonModule", "exec"), module.__dict__)
    monkeypatch.setattr(hou, "isUIAvailable", lambda: False, raising=False)
    with hou.cooking(node):
        manifest = module.rebuild_index(node)
    assert float(manifest["cell_size"]) == CELL


# -- Unit Length 1: unchanged ----------------------------------------------------------------
def test_metre_scene_output_is_unchanged(parts_model):
    """Unit Length 1 (Houdini's default): positions pass through untouched (multiplied and
    divided by exactly 1), so output is bit-for-bit what it was."""
    assert hou.scaleToMKS("m1") == 1.0
    node = predict_node(box_polygons(L_BLOCK), parts_model)
    hou.cook(node, PREDICT)
    points = output_arrays(node.geometry())["points"]
    assert np.array_equal(points, np.round(points / CELL) * CELL)         # exact cell multiples


class _Recorder:
    """Stands for the nodes the shelf tool creates: records every parameter it sets."""

    def __init__(self, log, name="obj"):
        self.log, self.name = log, name

    def createNode(self, type_name, name=None, **kwargs):
        return _Recorder(self.log, name or type_name)

    def parm(self, name):
        return types.SimpleNamespace(set=lambda value: self.log.__setitem__((self.name, name), value))

    parmTuple = parm

    def __getattr__(self, attr):            # setInput, bypass, layoutChildren, flags ...
        return lambda *args, **kwargs: None


@pytest.mark.parametrize("unit_length", [1.0, CM])
def test_shelf_tool_builds_its_example_in_scene_units(unit_length, monkeypatch):
    """The shelf tool's 12 x 9 x 15 m box and 3 m cells are set in the scene's units: at
    Unit Length 0.01 a 1200 x 900 x 1500 box and Cell Size 300, the same 4 x 3 x 5 cells."""
    import xml.etree.ElementTree as ET

    script = ET.parse(REPO / "houdini" / "toolbar" / "proc_ml.shelf").getroot() \
        .find("tool").findtext("script")
    log = {}
    fake = types.SimpleNamespace(node=lambda path: _Recorder(log),
                                 scaleFromMKS=lambda dims: 1.0 / unit_length,
                                 isUIAvailable=lambda: False)
    monkeypatch.setitem(sys.modules, "hou", fake)          # the script's own `import hou`
    exec(compile(script, "proc_ml.shelf", "exec"), {"__name__": "shelf"})
    per_metre = 1.0 / unit_length
    assert log[("massing", "size")] == pytest.approx((12 * per_metre, 9 * per_metre, 15 * per_metre))
    assert log[("massing", "t")] == pytest.approx((0.0, 4.5 * per_metre, 0.0))
    assert log[("predict_parts", "cellsize")] == pytest.approx(3 * per_metre)
    assert log[("export_training_data", "cellsize")] == pytest.approx(3 * per_metre)
