"""One cell-size rule everywhere (``proc_ml.units``): the same mesh, given to every entry
point without a cell size, becomes the same grid — at the model's training cell size, which
here is 2 m (not the 3 m default), so a path falling back to a default would show.

Entry points: ``predict building-parts``, ``predict texture --building --parts-model``,
``batch --task parts``, ``batch --task texture``, the Houdini SOP (fake ``hou``) and the
Blender operator (real ``bpy``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from proc_ml.cli import main
from proc_ml.grid import exterior_faces
from proc_ml.units import DEFAULT_CELL_SIZE, resolve_cell_size

REPO = Path(__file__).resolve().parents[1]
CELL = 2.0


@pytest.fixture(scope="module")
def two_metre(tmp_path_factory):
    """(dataset, massing-only ONNX model trained at 2 m cells, a building mesh, its grid)."""
    from proc_ml.datasets import open_dataset
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.procedural import load_generator_config

    root = tmp_path_factory.mktemp("cell2")
    # legacy rules: their meshes are the voxel faces, so voxelising one gives the grid back
    cfg = load_generator_config(None, ["rules=legacy", "grid.size=[10,10,8]", f"grid.cell_size={CELL}"])
    generate_dataset(cfg, 8, 4, root / "data", ("grids", "meshes"), workers=1, progress=False)
    assert main(["train", "building-parts", "--data", str(root / "data"), "--out", str(root / "run"),
                 "--config", "tiny_parts_unet3d", "--quiet", "--set", "dataset.use_style=false",
                 "--set", "training.epochs=1"]) == 0
    export_run(root / "run", root / "model.onnx", data_dir=root / "data", log=lambda line: None)
    record = open_dataset(root / "data").building(2)
    occ = record.occupancy
    nonzero = np.nonzero(occ)
    grid = occ[tuple(slice(a.min(), a.max() + 1) for a in nonzero)]     # the mesh's bounding box
    assets = root / "assets"
    assets.mkdir()
    mesh = assets / "building.obj"
    mesh.write_bytes((root / "data" / "meshes" / "b000002.obj").read_bytes())
    return {"root": root, "model": root / "model.onnx", "mesh": mesh, "grid": grid}


def _faces(grid) -> int:
    return int(exterior_faces(grid).sum())


def test_resolution_order():
    assert resolve_cell_size(None) == DEFAULT_CELL_SIZE == 3.0
    assert resolve_cell_size(0, model=None, manifest=2.5) == 2.5
    assert resolve_cell_size(None, model=2.0, manifest=2.5) == 2.0
    assert resolve_cell_size(1.5, model=2.0, manifest=2.5) == 1.5
    with pytest.raises(Exception, match="--cell-size must be > 0"):
        resolve_cell_size(-1, what="--cell-size")


def test_predict_building_parts_uses_the_models_cell_size(two_metre, tmp_path):
    assert main(["predict", "building-parts", "--model", str(two_metre["model"]),
                 "--input", str(two_metre["mesh"]), "--out", str(tmp_path / "p"), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["cell_size"] == CELL
    assert summary["grid_shape"] == list(two_metre["grid"].shape)
    assert summary["cells"] == int(two_metre["grid"].sum())


def test_predict_texture_building_voxelises_at_the_parts_models_cell_size(two_metre, tmp_path, capsys):
    # regression: this path voxelised meshes at 1.0 whatever the parts model said
    out = tmp_path / "t" / "building.glb"
    assert main(["predict", "texture", "--building", str(two_metre["mesh"]), "--procedural",
                 "--parts-model", str(two_metre["model"]), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    faces = int(re.search(r"textured (\d+) faces", printed).group(1))
    grid = re.search(r"grid \[(\d+), (\d+), (\d+)\]", printed)
    assert faces == _faces(two_metre["grid"])
    assert tuple(int(g) for g in grid.groups()) == two_metre["grid"].shape


@pytest.mark.parametrize("task", ["parts", "texture"])
def test_batch_tasks_use_the_models_cell_size(two_metre, tiny_pix2pix_onnx, tmp_path, task):
    from proc_ml.batch import read_records

    model = two_metre["model"] if task == "parts" else tiny_pix2pix_onnx[0]
    extra = ["--parts-model", str(two_metre["model"])] if task == "texture" else []
    out = tmp_path / "out"
    assert main(["batch", str(two_metre["mesh"].parent), "--task", task, "--model", str(model),
                 "--out", str(out), "--quiet", *extra]) == 0
    records, _ = read_records(out / "manifest.jsonl")
    summary = records["building.obj"]["summary"]
    assert summary["grid_shape"] == list(two_metre["grid"].shape)
    if task == "parts":
        assert summary["faces"] == _faces(two_metre["grid"])


def test_houdini_sop_uses_the_models_cell_size(two_metre):
    sys.path.insert(0, str(REPO / "tests" / "fake_hou"))
    import hou

    import trimesh

    from proc_ml.dcc.geometry import from_z_up
    mesh = trimesh.load(two_metre["mesh"], force="mesh", process=False)
    geo = hou.Geometry()
    geo.createPoints(from_z_up(np.asarray(mesh.vertices), "y").tolist())
    geo.createPolygons([list(reversed(f)) for f in np.asarray(mesh.faces).tolist()])  # clockwise
    code = compile((REPO / "hda_scripts" / "predict_parts_sop.py").read_text(), "sop", "exec")
    node = hou.make_sop_node({"model": str(two_metre["model"]), "device": "cpu", "threads": 0,
                              "cellsize": 0.0, "inputtype": "auto", "upaxis": "y"}, geo)
    hou.cook(node, code)
    assert node.geometry().intrinsicValue("primitivecount") == _faces(two_metre["grid"])


def test_blender_operator_uses_the_models_cell_size(two_metre):
    bpy = pytest.importorskip("bpy")
    import trimesh

    sys.path.insert(0, str(REPO / "blender_addon"))
    import proc_ml_parts

    bpy.ops.wm.read_factory_settings(use_empty=True)
    proc_ml_parts.register()
    try:
        mesh = trimesh.load(two_metre["mesh"], force="mesh", process=False)
        data = bpy.data.meshes.new("massing")
        data.from_pydata([tuple(v) for v in np.asarray(mesh.vertices, float)], [],
                         [tuple(f) for f in np.asarray(mesh.faces).tolist()])
        data.update()
        obj = bpy.data.objects.new("massing", data)
        bpy.context.scene.collection.objects.link(obj)
        obj.select_set(True)
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.object.proc_ml_predict_parts(model_path=str(two_metre["model"]), device="cpu",
                                                    cell_size=0.0) == {"FINISHED"}
        assert len(bpy.data.objects["massing_parts"].data.polygons) == _faces(two_metre["grid"])
    finally:
        proc_ml_parts.unregister()
        bpy.ops.wm.read_factory_settings(use_empty=True)
