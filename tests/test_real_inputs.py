"""Real buildings in: ``proc-ml import citygml`` datasets, scoring on them beside the baselines,
and the inputs real users bring to ``predict`` (plain occupancy grids, their own part
vocabularies, meshes whose walls do not run along x and y, Y-up files, street sides)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml

from proc_ml.cli import main
from proc_ml.datasets import open_dataset
from proc_ml.errors import DatasetError
from proc_ml.fileio import write_npz
from proc_ml.grid import exterior_faces
from proc_ml.meshing import quad_mesh

from test_citygml import DATA, box_surfaces, write_cityjson  # noqa: E402  (the CityGML builders)

REPO = Path(__file__).resolve().parents[1]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- proc-ml import citygml ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The committed LoD3 fixture (labelled), an LoD3 file without openings (massing), a
    CityJSON box written here, and a broken file, imported in one call."""
    folder = tmp_path_factory.mktemp("city")
    write_cityjson(folder / "box.city.json", box_surfaces())
    (folder / "broken.gml").write_text("<CityModel><unclosed>")
    out = folder / "out"
    code = main(["import", "citygml", str(DATA / "4018265.xml"), str(DATA / "4018142.xml"),
                 str(folder / "box.city.json"), str(folder / "broken.gml"), "--out", str(out),
                 "--licence", "CC BY-SA 4.0", "--attribution", "LOD3 Road Space Models, Ingolstadt"])
    return code, out


def test_import_writes_a_labelled_and_a_massing_dataset_and_goes_on_after_a_broken_file(imported, capsys):
    code, out = imported
    assert code == 2                                      # one file failed, the rest imported
    manifest = yaml.safe_load((out / "dataset.yaml").read_text())
    assert manifest["source"] == "citygml" and manifest["labelled"] is True
    assert manifest["licence"] == "CC BY-SA 4.0" and "Ingolstadt" in manifest["attribution"]
    assert manifest["count"] == 2 and manifest["style_present"] is False
    assert sorted(manifest["source_files"]) == ["4018265.xml", "box.city.json"]
    assert manifest["stats"]["faces_per_part"]["door"] >= 3
    massing = yaml.safe_load((out / "massing" / "dataset.yaml").read_text())
    assert massing["labelled"] is False and massing["count"] == 1
    for rel in ("grids/b000000.npz", "meshes/b000000.obj", "faces.csv", "adjacency.csv",
                "massing/grids/b000000.npz", "massing/meshes/b000000.ply"):
        assert (out / rel).is_file(), rel
    assert not (out / "massing" / "faces.csv").exists()


def test_imported_grids_carry_labels_street_sides_and_the_frame(imported):
    _, out = imported
    data = open_dataset(out)
    records = [data.building(i) for i in data.ids()]
    real = next(r for r in records if str(r.extras["source_file"]) == "4018265.xml")
    assert np.array_equal(real.labels >= 0, exterior_faces(real.occupancy))
    doors = np.argwhere(real.labels == data.parts.index("door"))
    assert len(doors) >= 2 and (doors[:, 2] == 0).all()           # doors on the ground layer
    assert real.street_sides == ("-y",) and real.extras["label_known"].shape == real.labels.shape
    assert list(real.extras["vocab"]) == data.parts
    assert real.extras["cell_size"] == 3.0 and real.extras["origin"].shape == (3,)
    massing = open_dataset(out / "massing")
    with pytest.raises(DatasetError, match="massing-to-label dataset"):
        massing.building(0)
    record = massing.building(0, require_labels=False)
    assert record.labels is None and record.occupancy.any()


def test_lod2_file_becomes_massing_to_label(tmp_path, capsys):
    from test_citygml import gml2_building, write_gml2

    surfaces = [(k, e, h, p) for k, e, h, p in box_surfaces(openings=False)]
    path = write_gml2(tmp_path / "lod2.gml", [gml2_building("L2", surfaces, lod=2)])
    code, out, err = run_cli(["import", "citygml", path, "--out", tmp_path / "out"], capsys)
    assert code == 0 and err == ""
    assert "1 massing to label" in out and not (tmp_path / "out" / "dataset.yaml").exists()
    assert yaml.safe_load((tmp_path / "out" / "massing" / "dataset.yaml").read_text())["labelled"] is False


def test_import_report_lists_every_building_with_its_notes_and_skips_garden_sheds(tmp_path, capsys):
    """A city tile with a shed under half a cell and a building that is a BuildingPart
    extract: rc 0, the shed counted as skipped (not failed), the notes printed and in
    import.json beside each building's grid file."""
    write_cityjson(tmp_path / "box.city.json", box_surfaces())
    shed = [(k, e * [0.2, 0.3, 0.3], [h * [0.2, 0.3, 0.3] for h in hs], p)
            for k, e, hs, p in box_surfaces(openings=False)]
    doc = json.loads(write_cityjson(tmp_path / "shed.city.json", shed).read_text())
    doc["CityObjects"]["B1"].update(type="BuildingPart", parents=["SHED"])
    (tmp_path / "shed.city.json").write_text(json.dumps(doc))
    write_cityjson(tmp_path / "lod2.city.json", box_surfaces(openings=False))
    out = tmp_path / "out"
    code, printed, err = run_cli(["import", "citygml", tmp_path / "box.city.json",
                                  tmp_path / "shed.city.json", tmp_path / "lod2.city.json",
                                  "--out", out], capsys)
    assert code == 0 and err == ""
    assert "imported 2 buildings" in printed and "1 skipped (smaller than half a cell), 0 failed" in printed
    assert re.search(r"skipped: .*shed\.city\.json: building SHED: smaller than half a 3 m cell", printed)
    report = json.loads((out / "import.json").read_text())
    assert [(b["grid"], b["source_file"], b["labelled"]) for b in report["buildings"]] == [
        ("grids/b000000.npz", "box.city.json", True),
        ("massing/grids/b000000.npz", "lod2.city.json", False)]
    assert report["buildings"][0]["street_sides"] == ["+x", "+y", "-y"]
    assert report["buildings"][0]["stats"]["openings"]["Window"] == 3
    assert len(report["skipped"]) == 1 and report["failed"] == []
    assert (out / report["buildings"][1]["grid"]).is_file()
    # a re-run with --overwrite replaces the report with the rest of the import
    code, _, _ = run_cli(["import", "citygml", tmp_path / "box.city.json", "--out", out,
                          "--overwrite"], capsys)
    assert code == 0 and len(json.loads((out / "import.json").read_text())["buildings"]) == 1
    assert not (out / "massing").exists()


def test_import_prints_what_each_building_needed(tmp_path, capsys):
    doc = json.loads(write_cityjson(tmp_path / "src.json", box_surfaces()).read_text())
    part = doc["CityObjects"].pop("B1")
    part.update(type="BuildingPart", parents=["PAND"])
    part["geometry"][0]["lod"] = "2.2"
    doc["CityObjects"]["PAND-0"] = part
    (tmp_path / "extract.city.json").write_text(json.dumps(doc))
    code, printed, _ = run_cli(["import", "citygml", tmp_path / "extract.city.json", "--out",
                                tmp_path / "out"], capsys)
    assert code == 0 and "1 labelled" in printed
    assert "note: " in printed and "building PAND: a BuildingPart whose Building is not in" in printed
    assert "windows / doors in LoD2 geometry: labelled like LoD3" in printed


def test_a_broken_file_is_one_line(tmp_path, capsys):
    (tmp_path / "junk.json").write_text("{not json")
    code, out, err = run_cli(["import", "citygml", tmp_path / "junk.json", "--out", tmp_path / "o"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "junk.json" in err
    assert "imported 0 buildings" in out and not (tmp_path / "o").exists()


# -- scoring on real buildings ------------------------------------------------------------------
def test_evaluate_real_scores_models_and_baselines_on_the_same_faces(imported, tiny_massing_unet_onnx,
                                                                      tmp_path, capsys):
    _, out = imported
    code, printed, _ = run_cli(["evaluate", "--real", out, "--model", tiny_massing_unet_onnx,
                                "--device", "cpu", "--out", tmp_path / "eval"], capsys)
    assert code == 0
    result = json.loads((tmp_path / "eval" / "real.json").read_text())
    systems = result["systems"]
    assert {"geometry", "per_floor", "model (without street)"} <= set(systems)
    assert "model (with street)" in result["not_run"]           # a massing-only model
    faces = {name: s["all"]["faces"] for name, s in systems.items()}
    assert len(set(faces.values())) == 1                          # every system, the same faces
    street = systems["geometry"]["street"]
    assert 0 < street["faces"] < faces["geometry"]
    # the geometry baseline is right on every roof, ground and wall face, never on an opening
    geometry = systems["geometry"]["all"]["per_class"]
    assert geometry["roof"]["recall"] == geometry["ground"]["recall"] == 1.0
    assert geometry["window"]["recall"] == geometry["door"]["recall"] == 0.0
    assert len(result["pictures"]) == 2 and all(Path(p).is_file() for p in result["pictures"])
    assert "| geometry |" in (tmp_path / "eval" / "real.md").read_text()


# -- inputs users bring -----------------------------------------------------------------------------
def _building(index=2):
    from proc_ml.procedural import generate_building
    from proc_ml.procedural.config import default_config

    return generate_building(default_config(), 4, index)


def test_a_plain_occupancy_npz_is_labelled(tiny_massing_unet_onnx, tmp_path, capsys):
    b = _building()
    write_npz(tmp_path / "mine.npz", {"occupancy": b.occupancy.astype(np.float32)})
    code, printed, _ = run_cli(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                                "--input", tmp_path / "mine.npz", "--out", tmp_path / "p"], capsys)
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert code == 0 and summary["faces"] == int(exterior_faces(b.occupancy).sum())
    assert summary["accuracy"] is None and not (tmp_path / "p" / "accuracy.json").exists()


def test_an_npz_with_its_own_vocabulary_is_scored_in_that_order(tiny_massing_unet_onnx, tmp_path, capsys):
    from proc_ml.procedural.parts import DEFAULT_PARTS

    b = _building()
    theirs = ["roof", "ground", "window", "wall", "door", "balcony", "shopfront", "cornice"]
    remap = np.array([theirs.index(p) for p in DEFAULT_PARTS])
    labels = np.where(b.labels >= 0, remap[np.maximum(b.labels, 0)], -1).astype(np.int8)
    write_npz(tmp_path / "v.npz", {"occupancy": b.occupancy, "labels": labels,
                                   "vocab": np.array(theirs)})
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx),
                 "--input", str(tmp_path / "v.npz"), "--out", str(tmp_path / "p")]) == 0
    accuracy = json.loads((tmp_path / "p" / "accuracy.json").read_text())
    assert accuracy["vocabulary"] == theirs
    present = [theirs[k] for k in np.unique(labels[labels >= 0])]
    assert list(accuracy["per_part"]) == [p for p in theirs if p in present]
    # the same prediction scored on the model's own vocabulary gives the same accuracy
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx),
                 "--input", str(_write_grid(tmp_path / "g.npz", b)), "--out", str(tmp_path / "q")]) == 0
    same = json.loads((tmp_path / "q" / "accuracy.json").read_text())
    assert accuracy["accuracy"] == pytest.approx(same["accuracy"])
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert any("cannot predict cornice" in n for n in summary["notes"])
    # a vocabulary that shares no part with the model cannot be mapped: refused in one line
    write_npz(tmp_path / "x.npz", {"occupancy": b.occupancy, "labels": np.where(b.labels >= 0, 0, -1).astype(np.int8),
                                   "vocab": np.array(["facade"])})
    code, _, err = run_cli(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                            "--input", tmp_path / "x.npz", "--out", tmp_path / "x"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot score" in err
    # labels without a vocabulary that do not fit the model's: refused, never re-indexed
    write_npz(tmp_path / "n.npz", {"occupancy": b.occupancy, "labels": np.where(b.labels >= 0, 9, -1).astype(np.int8)})
    code, _, err = run_cli(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                            "--input", tmp_path / "n.npz", "--out", tmp_path / "n"], capsys)
    assert code == 1 and "names no part vocabulary" in err


def _write_grid(path, b):
    write_npz(path, {"occupancy": b.occupancy, "labels": b.labels, "style": b.style.vector()})
    return path


def test_a_style_vector_that_no_building_has_is_refused(tiny_unet_onnx, tmp_path, capsys):
    b = _building()
    quads = quad_mesh(b.occupancy, None, 3.0)
    trimesh.Trimesh(quads.vertices, quads.triangles, process=False).export(tmp_path / "m.obj")
    for style, message in (("1,0,0", "expected 9 values"), ("1,1,0,0,1,0,0,0,0", "not a possible style"),
                           ("1,0,0,0,1,0,0,0,nan", "finite")):
        code, _, err = run_cli(["predict", "building-parts", "--model", tiny_unet_onnx, "--input",
                                tmp_path / "m.obj", "--out", tmp_path / "o", "--style", style], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1 and message in err, err


def test_a_turned_mesh_is_aligned_and_predictions_come_back_onto_it(tiny_massing_unet_onnx, tmp_path):
    from proc_ml.alignment import rotation_z

    b = _building()
    quads = quad_mesh(b.occupancy, None, 3.0)
    turned = (quads.vertices - 20.0) @ rotation_z(30.0).T + 20.0
    trimesh.Trimesh(turned, quads.triangles, process=False).export(tmp_path / "turned.obj")
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx), "--input",
                 str(tmp_path / "turned.obj"), "--out", str(tmp_path / "p")]) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["rotation_deg"] == pytest.approx(30.0, abs=0.01)
    nonzero = np.nonzero(b.occupancy)
    cropped = b.occupancy[tuple(slice(a.min(), a.max() + 1) for a in nonzero)]
    assert summary["grid_shape"] == list(cropped.shape) and summary["cells"] == int(cropped.sum())
    assert any("turned by -30.0 degrees" in n for n in summary["notes"])
    out = trimesh.load(tmp_path / "p" / "parts.ply", process=False)
    np.testing.assert_allclose(out.bounds, trimesh.Trimesh(turned, quads.triangles).bounds, atol=1e-6)
    source = trimesh.load(tmp_path / "p" / "input_parts.ply", process=False)
    parts = source.metadata["_ply_raw"]["face"]["data"]["part"]
    assert len(parts) == len(quads.triangles) and (parts >= 0).all()


def _real_shell(name: str):
    """The outer shell of a committed development building (walls, roofs, ground; openings
    dropped) as triangles in its georeferenced z-up coordinates."""
    from proc_ml.citygml.geometry import fan_triangles
    from proc_ml.citygml.gml import read_citygml
    from proc_ml.citygml.model import SHELL_KINDS

    city = read_citygml(DATA / name)
    corners = np.concatenate([fan_triangles(poly) for b in city.buildings for surface in b.surfaces
                              if surface.kind in SHELL_KINDS for poly in surface.polygons])
    return corners.reshape(-1, 3), np.arange(len(corners) * 3).reshape(-1, 3)


@pytest.mark.parametrize("name", ["4018142.xml", "4018265.xml"])
def test_up_axis_of_real_buildings_from_their_walls(name):
    """Two real buildings whose roofs and floor balance out (the up-minus-down cue shows
    nothing): their walls, level and in opposite pairs, tell the up axis either way round."""
    from proc_ml.voxelize import UP_EVIDENCE, WALL_EVIDENCE, _wall_pairs, detect_up, from_z_up

    vertices, triangles = _real_shell(name)
    corners = vertices[triangles]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert abs(cross[:, 2].sum()) / np.linalg.norm(cross, axis=1).sum() < UP_EVIDENCE
    # the walls alone tell (4018142's roofs, all in its upper half, tell it first)
    area = np.linalg.norm(cross, axis=1)
    normal = np.divide(cross, area[:, None], out=np.zeros_like(cross), where=area[:, None] > 0)
    assert _wall_pairs(normal, area, 2) / area.sum() >= WALL_EVIDENCE
    assert _wall_pairs(normal, area, 1) == 0
    assert detect_up(vertices, triangles) == ("z", True)
    assert detect_up(from_z_up(vertices, "y"), triangles) == ("y", True)
    assert detect_up(vertices - vertices.mean(axis=0), triangles) == ("z", True)


def test_y_up_files_are_detected_when_the_geometry_tells(tiny_massing_unet_onnx, tmp_path):
    from proc_ml.voxelize import detect_up, from_z_up

    b = _building()
    quads = quad_mesh(b.occupancy, None, 3.0)
    no_floor = quads.triangles[np.repeat(quads.directions != 5, 2)]      # a block-out: no floor
    assert detect_up(quads.vertices, no_floor) == ("z", True)
    y_up = from_z_up(quads.vertices, "y")
    assert detect_up(y_up, no_floor) == ("y", True)
    assert detect_up(quads.vertices, quads.triangles)[1] is False          # a closed box: unsure
    trimesh.Trimesh(y_up, no_floor, process=False).export(tmp_path / "yup.obj")
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx), "--input",
                 str(tmp_path / "yup.obj"), "--out", str(tmp_path / "p")]) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["up"] == "y" and any("detected" in n for n in summary["notes"])
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx), "--input",
                 str(tmp_path / "yup.obj"), "--out", str(tmp_path / "q"), "--up", "z"]) == 0
    assert json.loads((tmp_path / "q" / "summary.json").read_text())["up"] == "z"


def test_outputs_of_a_y_up_input_overlay_it_upright(tiny_massing_unet_onnx, tmp_path):
    """A glTF building (y-up, as glTF requires): parts.glb shows where the input is in a glTF
    viewer (not turned onto its side by a second y-up rotation), parts.ply and input_parts.ply
    lie on the input in its own frame, and the picture is drawn z-up."""
    from proc_ml.voxelize import from_z_up

    b = _building()
    quads = quad_mesh(b.occupancy, None, 3.0)
    source = trimesh.Trimesh(from_z_up(quads.vertices + [30.0, -12.0, 0.0], "y"), quads.triangles,
                             process=False)
    source.export(tmp_path / "house.glb")
    glb_in = trimesh.load(tmp_path / "house.glb", force="scene").bounds
    assert glb_in[1, 1] - glb_in[0, 1] == pytest.approx(np.ptp(quads.vertices[:, 2]))   # y is up
    assert main(["predict", "building-parts", "--model", str(tiny_massing_unet_onnx), "--input",
                 str(tmp_path / "house.glb"), "--out", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "summary.json").read_text())["up"] == "y"
    np.testing.assert_allclose(trimesh.load(tmp_path / "p" / "parts.glb", force="scene").bounds,
                               glb_in, atol=1e-6)
    for name in ("parts.ply", "input_parts.ply"):
        np.testing.assert_allclose(trimesh.load(tmp_path / "p" / name, process=False).bounds,
                                   source.bounds, atol=1e-6)


# -- street sides everywhere ----------------------------------------------------------------------
def test_street_sides_through_predict(tiny_massing_unet_onnx, tiny_unet_onnx, tiny_dataset, tmp_path, capsys):
    grid = tiny_dataset / "grids" / "b000001.npz"
    code, printed, _ = run_cli(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                                "--input", grid, "--out", tmp_path / "m", "--street", "+x,-y"], capsys)
    assert code == 0 and "not used" in printed and "massing-only" in printed
    assert json.loads((tmp_path / "m" / "summary.json").read_text())["street"] == ["+x", "-y"]
    # a style-aware model takes the street side into its style
    from proc_ml.datasets import read_building_npz
    from proc_ml.runtime import PartsPredictor

    record = read_building_npz(grid)
    predictor = PartsPredictor.open(tiny_unet_onnx, device="cpu")
    style, _ = predictor._inputs(record.style, ("-y",))
    assert style[:4].tolist() == [0, 0, 0, 1] and style[4:].tolist() == record.style[4:].tolist()
    probs = {side: predictor.predict(record.occupancy, record.style, (side,))[1] for side in ("+x", "-y")}
    assert np.abs(probs["+x"] - probs["-y"]).max() > 1e-4
    code, printed, _ = run_cli(["predict", "building-parts", "--model", tiny_unet_onnx, "--input", grid,
                                "--out", tmp_path / "s", "--street", "-y,+x"], capsys)
    assert code == 0 and "takes one street side; used +x" in printed
    code, _, err = run_cli(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                            "--input", grid, "--out", tmp_path / "bad", "--street", "north"], capsys)
    assert code == 1 and "'north' is not a side" in err


def test_street_sides_through_batch(tiny_massing_unet_onnx, tiny_dataset, tmp_path, capsys):
    from proc_ml.batch import read_records

    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "a.npz").write_bytes((tiny_dataset / "grids" / "b000002.npz").read_bytes())
    assert main(["batch", str(assets), "--model", str(tiny_massing_unet_onnx), "--out",
                 str(tmp_path / "out"), "--street", "-x", "--quiet"]) == 0
    records, _ = read_records(tmp_path / "out" / "manifest.jsonl")
    summary = records["a.npz"]["summary"]
    assert summary["street"] == ["-x"] and any("not used" in n for n in summary["notes"])


def test_street_sides_through_the_houdini_sop(tiny_massing_unet_onnx):
    sys.path.insert(0, str(REPO / "tests" / "fake_hou"))
    import hou

    b = _building()
    cells = np.stack(np.nonzero(b.occupancy), axis=1)
    geo = hou.Geometry()
    from proc_ml.dcc.geometry import from_z_up
    geo.createPoints(from_z_up((cells + 0.5) * 3.0, "y").tolist())
    code = compile((REPO / "hda_scripts" / "predict_parts_sop.py").read_text(), "sop", "exec")
    node = hou.make_sop_node({"model": str(tiny_massing_unet_onnx), "device": "cpu", "threads": 0,
                              "cellsize": 3.0, "inputtype": "auto", "upaxis": "y", "street": "+y"}, geo)
    with pytest.raises(hou.NodeWarning, match="street sides \\+y not used"):
        hou.cook(node, code)
    assert node.geometry().intrinsicValue("primitivecount") == int(exterior_faces(b.occupancy).sum())
    node.parm("street").set("up")
    with pytest.raises(hou.NodeError, match="'up' is not a side"):
        hou.cook(node, code)


def test_street_sides_through_the_blender_operator(tiny_massing_unet_onnx):
    bpy = pytest.importorskip("bpy")
    sys.path.insert(0, str(REPO / "blender_addon"))
    import proc_ml_parts

    bpy.ops.wm.read_factory_settings(use_empty=True)
    proc_ml_parts.register()
    try:
        b = _building()
        quads = quad_mesh(b.occupancy, None, 3.0)
        mesh = bpy.data.meshes.new("massing")
        mesh.from_pydata([tuple(v) for v in quads.vertices], [], [tuple(t) for t in quads.triangles.tolist()])
        obj = bpy.data.objects.new("massing", mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj.select_set(True)
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.object.proc_ml_predict_parts(model_path=str(tiny_massing_unet_onnx),
                                                    device="cpu", street_sides={"+x", "-y"}) == {"FINISHED"}
        result = bpy.data.objects["massing_parts"]
        assert len(result.data.polygons) == int(exterior_faces(b.occupancy).sum())
        assert result["proc_ml_street"] == "+x -y"
        assert re.search(r"street sides \+x, -y not used", result["proc_ml_notes"])
    finally:
        proc_ml_parts.unregister()
        bpy.ops.wm.read_factory_settings(use_empty=True)


# -- benchmarks/bench_real_finetune.py ------------------------------------------------------------
def test_real_finetune_bench_holds_each_file_out_of_its_own_fold(tmp_path, capsys):
    """Leave-one-file-out: one fold per source file, whose buildings are the fold's test
    split and in no training split; every building is predicted by its own fold's model and
    scored beside the installed model and the baselines on the same faces. Each fold trains
    on one small building alone (batch 1; the box is 4 cells wide): the batch is padded to two
    strides so BatchNorm has more than one value per channel at the bottleneck, and the
    export traces a padded copy (both failed before)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_real_finetune as bench

    write_cityjson(tmp_path / "box.city.json", box_surfaces())
    files = [str(DATA / "4018265.xml"), str(tmp_path / "box.city.json")]
    code = bench.main(["--citygml", *files, "--work", str(tmp_path / "work"), "--out",
                       str(tmp_path / "out"), "--threads", "1", "--set", "training.epochs=1"])
    assert code in (0, 1)                       # 1: the real-building targets are not met
    result = json.loads((tmp_path / "out" / "real_finetune.json").read_text())
    assert sorted(result["folds"]) == ["4018265", "box.city"]
    (real_dir,) = (tmp_path / "work").glob("imported_3m_*")     # these files' own import cache
    for name, held_out in result["folds"].items():
        split = yaml.safe_load((tmp_path / "work" / "finetune_folds" / name / "data" / "dataset.yaml")
                               .read_text())["split"]
        assert split["test"] == held_out and not set(held_out) & set(split["train"] + split["val"])
        assert sorted(split["train"] + held_out) == sorted(open_dataset(real_dir).ids())
    systems = result["systems"]
    assert {"geometry", "per_floor", "installed (with street)",
            "fine-tuned, leave-one-file-out (with street)"} == set(systems)
    faces = {s["all"]["faces"] for s in systems.values()}
    assert len(faces) == 1 and faces.pop() > 0
    assert "fine-tuned, leave-one-file-out (with street): face accuracy" in capsys.readouterr().out


def test_real_correction_loop_corrects_k_wrong_seen_faces_of_the_models_predictions(tmp_path):
    """``--corrections K``: the training labels are the installed model's predictions but K
    faces per building it got wrong among the faces the scan saw (never one it got right, nor
    a side the scan never saw), which hold the real label and are marked in ``label_fixed``;
    the same faces on a rerun; those faces are left out of the same-building score."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_real_finetune as bench

    from proc_ml import real_buildings
    from proc_ml.runtime import PartsPredictor, default_model

    write_cityjson(tmp_path / "box.city.json", box_surfaces())
    real_dir = bench.import_real([str(DATA / "4018265.xml"), str(tmp_path / "box.city.json")],
                                 tmp_path / "work", 3.0)
    real = real_buildings.load_real(real_dir)
    installed = PartsPredictor.open(default_model(), device="cpu")
    k = 3
    guesses = [real_buildings.to_truth_vocabulary(real_buildings.predict_model(installed, b, True)[0],
                                                  installed.parts, real.parts) for b in real.buildings]
    masks = bench.corrected_dataset(real_dir, real, guesses, k, 3000, tmp_path / "k3")
    data = open_dataset(tmp_path / "k3")
    ids = [int(i) for i in data.ids()]
    assert sorted(masks) == ids and len(ids) == len(real.buildings) == 2
    total = 0
    for building_id, b, predicted in zip(ids, real.buildings, guesses):
        seen_wrong = (b.labels >= 0) & b.known & (predicted != b.labels)
        fixed = masks[building_id]
        assert fixed.sum() == min(k, seen_wrong.sum()) and not (fixed & ~seen_wrong).any()
        record = data.building(building_id)
        assert np.array_equal(record.extras["label_fixed"], fixed)
        assert np.array_equal(record.labels, np.where(fixed, b.labels, predicted))
        total += int(fixed.sum())
    assert total > 0
    split = yaml.safe_load((tmp_path / "k3" / "dataset.yaml").read_text())["split"]
    assert split["train"] == ids and split["val"] == ids and split["test"] == []
    again = bench.corrected_dataset(real_dir, real, guesses, k, 3000, tmp_path / "k3_again")
    assert all(np.array_equal(again[i], masks[i]) for i in ids)
    other = bench.corrected_dataset(real_dir, real, guesses, k, 3001, tmp_path / "k3_seed")
    assert sum(int(m.sum()) for m in other.values()) == total
    unfixed = bench.without_faces(real, [masks[i] for i in ids])
    before = real_buildings.score(real, [b.labels for b in real.buildings], "all")["faces"]
    assert real_buildings.score(unfixed, [b.labels for b in real.buildings], "all")["faces"] == before - total


@pytest.mark.slow
def test_real_correction_bench_scores_new_and_the_same_buildings(tmp_path, capsys):
    """The whole ``--corrections`` run (one epoch per fold): leave-one-file-out on the
    corrected predictions, and the same buildings scored without their corrected faces."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_real_finetune as bench

    write_cityjson(tmp_path / "box.city.json", box_surfaces())
    files = [str(DATA / "4018265.xml"), str(tmp_path / "box.city.json")]
    code = bench.main(["--citygml", *files, "--work", str(tmp_path / "work"), "--out",
                       str(tmp_path / "out"), "--threads", "1", "--set", "training.epochs=1",
                       "--corrections", "2"])
    assert code == 0
    result = json.loads((tmp_path / "out" / "real_finetune.json").read_text())
    assert set(result["systems"]) == {
        "geometry", "per_floor", "installed (with street)",
        "fine-tuned on corrected predictions, K = 2, leave-one-file-out (with street)"}
    row = result["corrections"]["2"]
    assert len(row["fixed"]) == 2 and all(0 <= n <= 2 for n in row["fixed"]) and sum(row["fixed"]) > 0
    assert sorted(row["fold_seconds"]) == sorted(result["folds"])
    same = row["same_buildings"]["systems"]
    assert len(same) == 2
    all_faces = result["systems"]["installed (with street)"]["all"]["faces"]
    assert {s["all"]["faces"] for s in same.values()} == {all_faces - sum(row["fixed"])}
    assert "**The same buildings, K = 2**" in capsys.readouterr().out
