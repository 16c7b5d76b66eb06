"""proc_ml.textures (numpy only): facades, label maps, procedural textures, pairs,
paired-image loaders, atlas packing and textured GLBs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from proc_ml.datasets.pix2pix import hash_split, open_pairs
from proc_ml.errors import DatasetError, ModelError
from proc_ml.grid import NO_PART, exterior_faces
from proc_ml.procedural import generate_building
from proc_ml.procedural.config import default_config
from proc_ml.textures.atlas import pack
from proc_ml.textures.building import texture_building
from proc_ml.textures.glb import Z_UP_TO_Y_UP, write_textured_glb
from proc_ml.textures.images import read_rgb, write_png
from proc_ml.textures.layout import facade_sheets, front_views
from proc_ml.textures.palette import Palette, facade_palette
from proc_ml.textures.pairs import write_facade_pairs
from proc_ml.textures.render import pixel_layout, render_facade

CFG = default_config()
PARTS = CFG["parts"]
PALETTE = facade_palette(PARTS)


def building(index: int, seed: int = 4):
    return generate_building(CFG, seed, index)


# -- facades ----------------------------------------------------------------------------------
@pytest.mark.parametrize("index", range(6))
def test_sheets_cover_every_side_face_once_with_its_part(index):
    b = building(index)
    ext = exterior_faces(b.occupancy)
    sheets = facade_sheets(b.occupancy, b.labels)
    seen = set()
    for sheet in sheets:
        for (x, y, z), (row, col) in zip(sheet.faces, sheet.modules):
            key = (sheet.direction, int(x), int(y), int(z))
            assert key not in seen
            seen.add(key)
            assert ext[x, y, z, sheet.direction]
            assert sheet.parts[row, col] == b.labels[x, y, z, sheet.direction]
    assert len(seen) == int(ext[..., :4].sum())


def test_front_view_shows_the_outermost_face_and_reads_left_to_right():
    occ = np.zeros((4, 3, 2), dtype=np.uint8)
    occ[0:2, :, :] = 1          # a block, and a lower block in front of it along +x
    occ[2:4, 0, 0] = 1
    labels = np.full(occ.shape + (6,), NO_PART, dtype=np.int8)
    labels[..., 0] = np.arange(3)[None, :, None]          # +x faces: part = y
    labels[3, 0, 0, 0] = 5                                 # the front block's face
    (view,) = [f for f in front_views(occ, labels) if f.direction == 0]
    # seen from +x, +y is to the right: column 0 is y = 0, where the front block stands
    assert view.parts[0].tolist() == [5, 1, 2]
    assert view.parts[1].tolist() == [0, 1, 2]
    (minus_x,) = [f for f in front_views(occ, labels) if f.direction == 1]
    assert minus_x.shape == (2, 3)


# -- label maps and textures --------------------------------------------------------------------
def test_label_map_and_texture_agree_and_are_seeded():
    view = front_views(building(1).occupancy, building(1).labels)[0]
    classes, tex = render_facade(view, PARTS, PALETTE, "brick", 8, np.random.default_rng(0))
    _, same = render_facade(view, PARTS, PALETTE, "brick", 8, np.random.default_rng(0))
    _, other = render_facade(view, PARTS, PALETTE, "brick", 8, np.random.default_rng(1))
    assert classes.shape == tex.shape[:2] == (view.shape[0] * 8, view.shape[1] * 8)
    background = classes == PALETTE.index("background")
    assert (tex[background] == 0).all() and (tex[~background].max(axis=1) > 0).all()
    assert np.array_equal(tex, same) and not np.array_equal(tex, other)
    # the texture differs per draw only a little: the layout decides it
    assert np.abs(tex.astype(int) - other)[~background].mean() < 0.05 * 255


def test_module_centres_carry_their_part_class():
    b = building(2)
    for view in front_views(b.occupancy, b.labels):
        classes, _ = render_facade(view, PARTS, PALETTE, "plaster", 16, None)
        rows = view.shape[0]
        for r, c in np.argwhere(view.parts != NO_PART):
            part = PARTS[view.parts[r, c]]
            want = {"wall": "plaster", "balcony": "window"}.get(part, part)
            y, x = (rows - 1 - r) * 16 + 8, c * 16 + 8
            assert PALETTE.names[classes[y, x]] == want


def test_brick_and_plaster_use_their_own_classes():
    view = front_views(building(0).occupancy, building(0).labels)[0]
    for material in ("plaster", "brick"):
        classes, _ = render_facade(view, PARTS, PALETTE, material, 8, None)
        assert PALETTE.index(material) in classes
    with pytest.raises(ValueError, match="material"):
        render_facade(view, PARTS, PALETTE, "marble", 8, None)


def test_pixel_layout_marks_ground_and_top_edges():
    parts = np.array([[0, 0], [0, NO_PART]], dtype=np.int8)      # row 0 lowest
    layout = pixel_layout(parts, PARTS, 4, on_ground=True)
    assert layout.ground[-1].all() and not layout.ground[0].any()
    assert layout.top_edge[0, :4].all() and layout.top_edge[4, 4:].all() and not layout.top_edge[4, :4].any()


# -- palette ------------------------------------------------------------------------------------
def test_palette_round_trip_and_unknown_colour_message():
    classes = np.arange(len(PALETTE)).reshape(1, -1).repeat(2, axis=0)
    rgb = PALETTE.rgb(classes)
    assert np.array_equal(PALETTE.classes(rgb), classes)
    rgb[1, 3] = (1, 2, 3)
    with pytest.raises(DatasetError, match=r"labels/x\.png: label colour \(1, 2, 3\) at pixel \(x=3, y=1\)"):
        PALETTE.classes(rgb, "labels/x.png")


def test_palette_json_is_checked():
    with pytest.raises(DatasetError, match="duplicate"):
        Palette.from_json([{"name": "a", "colour": [0, 0, 0]}, {"name": "a", "colour": [1, 1, 1]}])
    with pytest.raises(DatasetError, match="0..255"):
        Palette.from_json([{"name": "a", "colour": [0, 0, 300]}])


# -- generated pairs ------------------------------------------------------------------------------
def test_write_facade_pairs_is_deterministic_and_in_palette(tmp_path):
    a = write_facade_pairs(CFG, 3, 7, tmp_path / "a", size=128, module_px=8)
    b = write_facade_pairs(CFG, 3, 7, tmp_path / "b", size=128, module_px=8)
    assert a["count"] == len(a["pairs"]) >= 3 and a["module_px"] == 8
    assert [p["name"] for p in b["pairs"]] == [p["name"] for p in a["pairs"]]
    for pair in a["pairs"]:
        name = pair["name"]
        for folder in ("labels", "images"):
            assert (tmp_path / "a" / folder / f"{name}.png").read_bytes() == \
                   (tmp_path / "b" / folder / f"{name}.png").read_bytes()
        labels = read_rgb(tmp_path / "a" / "labels" / f"{name}.png")
        assert labels.shape == (128, 128, 3)
        PALETTE.classes(labels)
    data = open_pairs(tmp_path / "a")
    assert data.layout == "labels" and data.palette == PALETTE
    assert sorted(data.names()) == sorted(p["name"] for p in a["pairs"])
    assert {data.split_of[p["name"]] for p in a["pairs"]} <= {"train", "val", "test"}
    assert json.loads((tmp_path / "a" / "facades.json").read_text())["palette"] == PALETTE.to_json()


# -- real paired datasets ----------------------------------------------------------------------------
def _label_folder(root, colours):
    pal = [{"name": "background", "colour": [0, 0, 0]}, {"name": "wall", "colour": [200, 100, 50]}]
    (root / "labels").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "palette.json").write_text(json.dumps(pal))
    for i, colour in enumerate(colours):
        labels = np.zeros((8, 6, 3), dtype=np.uint8)
        labels[2:, 1:5] = colour
        write_png(root / "labels" / f"img{i}.png", labels)
        write_png(root / "images" / f"img{i}.png", np.full((8, 6, 3), 40 * i, dtype=np.uint8))
    return root


def test_label_folder_dataset_reads_pairs_and_hash_splits(tmp_path):
    data = open_pairs(_label_folder(tmp_path / "d", [(200, 100, 50)] * 3))
    assert data.palette.names == ("background", "wall")
    assert data.names() == ["img0", "img1", "img2"]
    a, b = data.pair("img2")
    assert a.shape == b.shape == (8, 6, 3) and (b == 80).all() and tuple(a[4, 2]) == (200, 100, 50)
    assert data.split_of["img1"] == hash_split("img1")


def test_label_folder_rejects_a_colour_outside_the_palette(tmp_path):
    data = open_pairs(_label_folder(tmp_path / "d", [(200, 100, 50), (201, 100, 50)]))
    data.pair("img0")
    with pytest.raises(DatasetError) as err:
        data.pair("img1")
    message = str(err.value)
    assert "img1.png" in message and "(201, 100, 50)" in message and "not in the palette" in message
    assert "\n" not in message


def test_label_folder_needs_matching_images_and_a_palette(tmp_path):
    root = _label_folder(tmp_path / "d", [(200, 100, 50)] * 2)
    (root / "images" / "img1.png").unlink()
    with pytest.raises(DatasetError, match="img1.png: no matching image img1"):
        open_pairs(root)
    (root / "palette.json").unlink()
    with pytest.raises(DatasetError, match="palette.json"):
        open_pairs(root)


def test_side_by_side_dataset_splits_and_direction(tmp_path):
    for split, n in (("train", 2), ("val", 1)):
        (tmp_path / split).mkdir()
        for i in range(n):
            both = np.zeros((4, 8, 3), dtype=np.uint8)
            both[:, :4] = 10 + i
            both[:, 4:] = 200
            write_png(tmp_path / split / f"{i}.png", both)
    data = open_pairs(tmp_path)
    assert data.layout == "side-by-side" and data.palette is None
    assert data.names("train") == ["train/0", "train/1"] and data.names("val") == ["val/0"]
    a, b = data.pair("train/1")
    assert (a == 11).all() and (b == 200).all() and a.shape == (4, 4, 3)
    a, b = open_pairs(tmp_path, "BtoA").pair("train/1")
    assert (a == 200).all() and (b == 11).all()
    write_png(tmp_path / "train" / "odd.png", np.zeros((4, 7, 3), dtype=np.uint8))
    with pytest.raises(DatasetError, match="odd.png: side-by-side image width 7 is odd"):
        open_pairs(tmp_path).pair("train/odd")


def test_unknown_folder_layout_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="not a paired image dataset"):
        open_pairs(tmp_path)


# -- atlas, texturing and GLB ----------------------------------------------------------------------
def test_pack_places_images_without_overlap():
    rng = np.random.default_rng(0)
    images = [np.full((int(h), int(w), 3), i, dtype=np.uint8)
              for i, (h, w) in enumerate(rng.integers(4, 40, size=(12, 2)))]
    atlas = pack(images)
    W, H = atlas.size
    taken = np.zeros((H, W), dtype=int)
    for (x, y), im in zip(atlas.origins, images):
        assert x >= 2 and y >= 2 and x + im.shape[1] <= W - 0 and y + im.shape[0] <= H
        assert np.array_equal(atlas.image[y:y + im.shape[0], x:x + im.shape[1]], im)
        taken[y:y + im.shape[0], x:x + im.shape[1]] += 1
    assert taken.max() == 1


@pytest.mark.parametrize("index", (1, 5))
def test_textured_building_uvs_land_on_each_faces_module(index):
    b = building(index)
    m = 8
    built = texture_building(b.occupancy, b.labels, PARTS, None, module_px=m, material="brick",
                             cell_size=3.0)
    W, H = built.atlas.size
    uv = built.uv.reshape(-1, 4, 2)
    centre = uv.mean(axis=1)
    px = np.floor(centre[:, 0] * W).astype(int)
    py = np.floor((1.0 - centre[:, 1]) * H).astype(int)
    classes = PALETTE.classes(built.label_atlas.image[py, px])
    quads = built.vertices.reshape(-1, 4, 3)
    side = np.array([PARTS[p] if p >= 0 else "" for p in built.parts])
    normals = np.cross(quads[:, 1] - quads[:, 0], quads[:, 3] - quads[:, 0])
    is_side = np.abs(normals[:, 2]) < 1e-9
    want = np.array([PALETTE.index({"wall": "brick", "balcony": "window"}.get(p, p)) for p in side[is_side]])
    assert np.array_equal(classes[is_side], want)
    # within a side face: texture v grows with height, u grows to the viewer's right
    up = quads[is_side][..., 2]
    v = uv[is_side][..., 1]
    assert np.all((np.diff(up, axis=1) > 0) == (np.diff(v, axis=1) > 0))
    # a viewer facing the wall (looking along -normal, z up) has up x normal to the right
    right = np.cross([0.0, 0.0, 1.0], normals[is_side])
    along = np.einsum("fk,fck->fc", right, quads[is_side])
    u = uv[is_side][..., 0]
    assert np.all((np.diff(along, axis=1) > 1e-9) == (np.diff(u, axis=1) > 1e-12))


def test_textured_glb_loads_with_uvs_and_image(tmp_path):
    import trimesh

    b = building(3)
    built = texture_building(b.occupancy, b.labels, PARTS, None, module_px=8, cell_size=3.0)
    path = tmp_path / "b.glb"
    write_textured_glb(path, built.vertices, built.triangles, built.uv, built.atlas.image)
    mesh = trimesh.load(path, force="mesh")
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals)
    assert mesh.visual.uv.shape == (len(built.vertices), 2)
    image = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    assert np.array_equal(image, built.atlas.image)
    np.testing.assert_allclose(mesh.visual.uv, built.uv, atol=1e-6)
    np.testing.assert_allclose(mesh.vertices, built.vertices @ Z_UP_TO_Y_UP.T, atol=1e-5)
    assert mesh.bounds[1][1] == pytest.approx(built.vertices[:, 2].max(), abs=1e-5)   # y is up


def test_texturer_output_goes_into_the_atlas_and_palette_is_checked():
    b = building(0)
    calls = []

    def texturer(maps):
        calls.append(len(maps))
        return [np.full_like(m, 123) for m in maps]
    built = texture_building(b.occupancy, b.labels, PARTS, texturer, module_px=4)
    assert calls == [len(built.sheets)]
    for (x, y), sheet in zip(built.atlas.origins, built.sheets):
        h, w = sheet.shape[0] * 4, sheet.shape[1] * 4
        assert (built.atlas.image[y:y + h, x:x + w] == 123).all()
    small = Palette(("background", "plaster"), ((0, 0, 0), (1, 1, 1)))
    with pytest.raises(ModelError, match="palette has no class"):
        texture_building(b.occupancy, b.labels, PARTS, texturer, module_px=4, palette=small)


def test_procedural_building_texture_cli_and_no_torch(tmp_path, no_torch_source):
    from proc_ml.cli import main

    assert main(["generate", "buildings", "--count", "2", "--seed", "1", "--out", str(tmp_path / "ds"),
                 "--formats", "grids", "--quiet"]) == 0
    script = no_torch_source + textwrap.dedent(f"""
        import sys
        from proc_ml.cli import main
        code = main(["predict", "texture", "--procedural", "--building",
                     r"{tmp_path / 'ds' / 'grids' / 'b000001.npz'}", "--out", r"{tmp_path / 'b.glb'}"])
        assert code == 0
        import proc_ml.runtime.textures, proc_ml.textures.building
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for name in ("b.glb", "b_atlas.png", "b_labels.png"):
        assert (tmp_path / name).is_file()


def test_texturing_a_grid_without_a_roof_part_names_the_file(tmp_path, capsys):
    from proc_ml.cli import main
    from proc_ml.formats import grid_npz
    from proc_ml.grid import exterior_faces

    occupancy = np.ones((3, 3, 2), np.uint8)
    labels = np.where(exterior_faces(occupancy), 0, -1)
    path = tmp_path / "kit.npz"
    grid_npz.write(path, 0, "studio", occupancy, labels, vocab=["brick", "glass"])
    out = tmp_path / "b.glb"
    assert main(["predict", "texture", "--procedural", "--building", str(path),
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (f"proc-ml predict: error: {path}: parts: vocabulary must contain wall, roof, "
                   f"ground; texturing needs them\n")
    assert not out.exists()


def test_generate_facades_cli(tmp_path, capsys):
    from proc_ml.cli import main

    assert main(["generate", "facades", "--count", "2", "--seed", "3", "--size", "128",
                 "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert "facade pairs of 2 buildings" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "f" / "facades.json").read_text())
    assert manifest["size"] == 128 and manifest["seed"] == 3 and manifest["module_px"] == 16
    assert len(list((tmp_path / "f" / "labels").glob("*.png"))) == manifest["count"]


# -- DCC: the Houdini Texture Building SOP (fake hou) ----------------------------------------------
def _labelled_quads_geometry(b, hou):
    from proc_ml.dcc import houdini as hgeo
    from proc_ml.dcc.prims import labelled_prims
    from proc_ml.voxelize import VoxelGrid

    grid = VoxelGrid(b.occupancy, np.array([30.0, -12.0, 0.0]), 3.0)
    probs = np.zeros(b.labels.shape + (len(PARTS),), np.float32)
    prims = labelled_prims(grid, b.labels, probs, PARTS, None, "y", True)
    geo = hou.Geometry()
    hgeo.write_labelled_prims(geo, prims)
    return geo


def test_houdini_texture_sop_writes_uvs_texture_path_and_atlas(tmp_path, monkeypatch):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(repo / "tests" / "fake_hou"))
    import hou

    script = compile((repo / "hda_scripts" / "texture_building_sop.py").read_text(),
                     "texture_building_sop.py", "exec")
    b = building(2)
    atlas = tmp_path / "tex" / "atlas.png"
    node = hou.make_sop_node({"atlas": str(atlas), "procedural": 1, "material": "brick",
                              "modulepx": 8, "seed": 0}, _labelled_quads_geometry(b, hou))
    hou.cook(node, script)
    geo = node.geometry()
    uvw = np.frombuffer(geo.pointFloatAttribValuesAsString("uv"), np.float32).reshape(-1, 3)
    want = texture_building(b.occupancy, b.labels, PARTS, None, module_px=8, material="brick",
                            cell_size=3.0)
    np.testing.assert_allclose(uvw[:, :2], want.uv, atol=1e-6)
    assert set(geo.primStringAttribValues("texture_path")) == {str(atlas)}
    assert np.array_equal(read_rgb(atlas), want.atlas.image)

    empty = hou.make_sop_node({"atlas": str(atlas)}, hou.Geometry())
    with pytest.raises(hou.NodeError, match="Predict Parts"):
        hou.cook(empty, script)
    no_model = hou.make_sop_node({"atlas": str(atlas), "model": ""}, _labelled_quads_geometry(b, hou))
    with pytest.raises(hou.NodeError, match="no model file set"):
        hou.cook(no_model, script)


# -- DCC: the Blender add-on's Texture Building operator (real bpy) ----------------------------------
def test_blender_texture_operator_writes_uvs_and_material(tmp_path):
    bpy = pytest.importorskip("bpy")
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "blender_addon"))
    import proc_ml_parts
    from proc_ml.dcc import blender as bgeo
    from proc_ml.dcc.prims import labelled_prims
    from proc_ml.voxelize import VoxelGrid

    bpy.ops.wm.read_factory_settings(use_empty=True)
    proc_ml_parts.register()
    try:
        b = building(2)
        grid = VoxelGrid(b.occupancy, np.zeros(3), 3.0)
        prims = labelled_prims(grid, b.labels, np.zeros(b.labels.shape + (len(PARTS),), np.float32), PARTS)
        mesh = bpy.data.meshes.new("house_parts")
        bgeo.write_labelled_mesh(mesh, prims)
        obj = bpy.data.objects.new("house_parts", mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj["proc_ml_parts"] = " ".join(PARTS)
        bpy.context.view_layer.objects.active = obj
        atlas = tmp_path / "atlas.png"
        result = bpy.ops.object.proc_ml_texture_building(atlas_path=str(atlas), material="brick", module_px=8)
        assert result == {"FINISHED"}
        want = texture_building(b.occupancy, b.labels, PARTS, None, module_px=8, material="brick",
                                cell_size=3.0)
        loops = np.empty(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", loops)
        uv = np.empty(2 * len(mesh.loops), dtype=np.float32)
        mesh.uv_layers["proc_ml_atlas"].data.foreach_get("uv", uv)
        np.testing.assert_allclose(uv.reshape(-1, 2), want.uv[loops], atol=1e-6)
        assert np.array_equal(read_rgb(atlas), want.atlas.image)
        (material,) = mesh.materials
        node = material.node_tree.nodes["proc_ml_atlas"]
        assert Path(bpy.path.abspath(node.image.filepath)).resolve() == atlas.resolve()
        assert node.outputs["Color"].links[0].to_socket.name == "Base Color"
    finally:
        proc_ml_parts.unregister()
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_place_on_canvas_centres_small_and_crops_large_facades():
    from proc_ml.textures.pairs import place_on_canvas

    small = np.ones((2, 3), dtype=np.uint8)
    out = place_on_canvas(small, 6, 0)
    assert out[4:, 1:4].all() and out.sum() == 6
    large = np.arange(10 * 12).reshape(10, 12)
    out = place_on_canvas(large, 4, -1)
    assert np.array_equal(out, large[6:, 4:8])            # bottom rows, centre columns
