"""Dataset writers: file layout, contents against the generator, meshes, point clouds, determinism."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml

from proc_ml.exporters.dataset import generate_dataset
from proc_ml.formats import FORMATS, parse_formats
from proc_ml.formats.faces_csv import header as faces_header, one_hot_faces, opara_rows
from proc_ml.formats.manifest import split_ids
from proc_ml import FORMAT_VERSION
from proc_ml.encoding import STYLE_FEATURES, adjacency_feature_names, adjacency_features
from proc_ml.errors import ConfigError
from proc_ml.grid import DIRECTION_VECTORS, DIRECTIONS, exterior_faces
from proc_ml.meshing import quad_mesh, sample_points, sample_triangle_points
from proc_ml.procedural import Vocabulary, generate_building, load_generator_config

COUNT, SEED = 10, 13
CELL = 2.5


def small_config(*extra):
    """The legacy rules: meshes are the voxel faces, which these writer tests check face by
    face (the grammar's sloped meshes: test_facade_grammar.py)."""
    return load_generator_config(None, ["rules=legacy", "grid.size=[12,10,9]",
                                        f"grid.cell_size={CELL}", "points.per_building=300", *extra])


def file_hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "one_worker"
    manifest = generate_dataset(small_config(), COUNT, SEED, out, workers=1, progress=False)
    cfg = small_config()
    return out, manifest, [generate_building(cfg, SEED, i) for i in range(COUNT)]


def test_layout_and_manifest(dataset):
    out, manifest, buildings = dataset
    stems = [f"b{i:06d}" for i in range(COUNT)]
    expected = {"dataset.yaml", "labels.json", "faces.csv", "adjacency.csv", "buildings.csv"}
    expected |= {f"grids/{s}.npz" for s in stems} | {f"points/{s}.{e}" for s in stems for e in ("npz", "ply")}
    expected |= {f"meshes/{s}.{e}" for s in stems for e in ("obj", "ply", "glb")}
    assert set(file_hashes(out)) == expected          # no temp files left behind
    on_disk = yaml.safe_load((out / "dataset.yaml").read_text())
    assert on_disk == manifest
    assert manifest["format"] == "proc-ml-buildings" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["count"] == COUNT and manifest["seed"] == SEED
    assert manifest["grid_size"] == [12, 10, 9] and manifest["cell_size"] == CELL
    assert manifest["directions"] == list(DIRECTIONS)
    assert manifest["style_features"] == list(STYLE_FEATURES)
    assert manifest["adjacency_features"] == list(adjacency_feature_names(True))
    assert manifest["formats"] == list(FORMATS) and manifest["layout"] == "named"
    stats = manifest["stats"]
    assert stats["cells"] == sum(int(b.occupancy.sum()) for b in buildings)
    faces = np.concatenate([b.labels[b.labels >= 0] for b in buildings])
    assert stats["faces"] == len(faces)
    assert list(stats["faces_per_part"].values()) == np.bincount(faces, minlength=7).tolist()
    assert sum(stats["buildings_per_archetype"].values()) == COUNT
    split = manifest["split"]
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(COUNT))
    assert (len(split["val"]), len(split["test"])) == (1, 1)


def test_split_rule():
    split = split_ids(200, 7, 0.1, 0.15)
    assert [len(split[k]) for k in ("train", "val", "test")] == [150, 20, 30]
    assert split == split_ids(200, 7, 0.1, 0.15)
    assert split != split_ids(200, 8, 0.1, 0.15)
    assert all(v == sorted(v) for v in split.values())


def test_files_are_readable_by_others(dataset):
    out, _, _ = dataset
    umask = os.umask(0)
    os.umask(umask)
    for name in ("faces.csv", "dataset.yaml", "grids/b000000.npz", "meshes/b000000.glb"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask


def read_csv_rows(path: Path, header: bool = True):
    lines = path.read_text().splitlines()
    return (lines[0].split(",") if header else None), [line.split(",") for line in lines[header:]]


def test_faces_csv_named_layout(dataset):
    out, manifest, buildings = dataset
    header, rows = read_csv_rows(out / "faces.csv")
    parts = manifest["parts"]
    assert header[:4] == ["building_id", "x", "y", "z"]
    assert header[4:] == [f"{d}:{p}" for d in DIRECTIONS for p in parts]
    assert header[4] == "+x:wall" and header[4 + len(parts)] == "-x:wall"
    data = np.array(rows, dtype=np.int64)
    start = 0
    for b in buildings:
        coords = np.stack(np.nonzero(b.occupancy), 1)
        block = data[start:start + len(coords)]
        start += len(coords)
        assert (block[:, 0] == b.building_id).all()
        np.testing.assert_array_equal(block[:, 1:4], coords)
        one_hot = block[:, 4:].reshape(-1, 6, len(parts))
        ext = exterior_faces(b.occupancy)[tuple(coords.T)]
        # exactly one 1 per existing face, all zeros where there is no face
        np.testing.assert_array_equal(one_hot.sum(-1), ext.astype(int))
        labels = b.labels[tuple(coords.T)]
        n, d = np.nonzero(ext)
        np.testing.assert_array_equal(one_hot[n, d].argmax(-1), labels[n, d])
    assert start == len(data)


def test_faces_csv_opara_layout(dataset, tmp_path):
    out, _, _ = dataset
    generate_dataset(small_config(), COUNT, SEED, tmp_path, formats=("faces",), workers=1,
                     layout="opara", progress=False)
    _, named = read_csv_rows(out / "faces.csv")
    _, opara = read_csv_rows(tmp_path / "faces.csv", header=False)
    assert opara == [row[4:] for row in named]
    assert all(set(row) <= {"0", "1"} for row in opara)
    assert yaml.safe_load((tmp_path / "dataset.yaml").read_text())["layout"] == "opara"
    assert opara_rows(b"1,2,3,4,0,1\n5,6,7,8,1,0\n") == b"0,1\n1,0\n"


def test_one_hot_faces_blocks():
    labels = np.full((1, 1, 2, 6), -1, np.int8)
    labels[0, 0, 0, 0] = 2
    labels[0, 0, 1, 5] = 0
    out = one_hot_faces(labels, np.array([[0, 0, 0], [0, 0, 1]]), 3)
    assert out.shape == (2, 18)
    assert out[0].tolist() == [0, 0, 1] + [0] * 15
    assert out[1].tolist() == [0] * 15 + [1, 0, 0]


def test_adjacency_csv_matches_encoding(dataset):
    out, _, buildings = dataset
    header, rows = read_csv_rows(out / "adjacency.csv")
    assert header == ["building_id", "x", "y", "z"] + list(adjacency_feature_names(True))
    data = np.array(rows, dtype=np.float64)
    start = 0
    for b in buildings:
        coords, feats = adjacency_features(b.occupancy, b.style.vector())
        block = data[start:start + len(coords)]
        start += len(coords)
        np.testing.assert_array_equal(block[:, :4], np.column_stack([np.full(len(coords), b.building_id), coords]))
        np.testing.assert_allclose(block[:, 4:], feats, rtol=1e-5)
    assert start == len(data)


def test_buildings_csv(dataset):
    out, _, buildings = dataset
    header, rows = read_csv_rows(out / "buildings.csv")
    assert header == ["building_id", "archetype", "size_x", "size_y", "size_z", "cells", "faces",
                      *STYLE_FEATURES]
    assert len(rows) == COUNT
    for row, b in zip(rows, buildings):
        assert row[:7] == [str(b.building_id), b.archetype, "12", "10", "9",
                           str(int(b.occupancy.sum())), str(int((b.labels >= 0).sum()))]
        np.testing.assert_array_equal(np.array(row[7:], float), b.style.vector())


def test_grids_npz(dataset):
    out, _, buildings = dataset
    for b in buildings:
        with np.load(out / "grids" / f"b{b.building_id:06d}.npz", allow_pickle=False) as z:
            assert sorted(z.files) == ["archetype", "building_id", "labels", "occupancy", "style"]
            assert z["occupancy"].dtype == np.uint8 and z["labels"].dtype == np.int8
            assert z["style"].dtype == np.float32 and z["building_id"].dtype == np.int64
            np.testing.assert_array_equal(z["occupancy"], b.occupancy)
            np.testing.assert_array_equal(z["labels"], b.labels)
            np.testing.assert_array_equal(z["style"], b.style.vector())
            assert str(z["archetype"]) == b.archetype and int(z["building_id"]) == b.building_id


def test_labels_json(dataset):
    out, manifest, _ = dataset
    legend = json.loads((out / "labels.json").read_text())
    vocab = Vocabulary(tuple(manifest["parts"]))
    assert legend["parts"] == manifest["parts"]
    assert legend["colours"] == {n: list(c) for n, c in zip(vocab.names, vocab.colours())}


def outward_check(vertices, faces, normals, occupancy):
    """Every triangle's normal is an axis direction pointing from its cell into empty space."""
    centroids = vertices[faces].mean(axis=1) / CELL
    assert np.allclose(np.abs(normals).max(axis=1), 1.0)
    inside = np.floor(centroids - 0.25 * normals).astype(int)
    outside = np.floor(centroids + 0.25 * normals).astype(int)
    assert occupancy[tuple(inside.T)].all()
    padded = np.pad(occupancy, 1)
    assert not padded[tuple((outside + 1).T)].any()


def test_ply_mesh_parts_and_normals(dataset):
    out, _, buildings = dataset
    b = buildings[3]
    mesh = trimesh.load(out / "meshes" / "b000003.ply", process=False)
    parts = mesh.metadata["_ply_raw"]["face"]["data"]["part"]
    quads = quad_mesh(b.occupancy, b.labels, CELL)
    np.testing.assert_array_equal(parts, quads.triangle_parts)
    np.testing.assert_array_equal(np.sort(parts), np.sort(np.repeat(b.labels[b.labels >= 0], 2)))
    np.testing.assert_allclose(mesh.face_normals, np.repeat(DIRECTION_VECTORS[quads.directions], 2, 0), atol=1e-6)
    outward_check(mesh.vertices, mesh.faces, mesh.face_normals, b.occupancy)
    colours = Vocabulary(tuple(small_config()["parts"])).colours()
    np.testing.assert_array_equal(mesh.visual.face_colors[:, :3], np.array(colours)[parts])


def test_glb_one_object_per_part(dataset):
    out, manifest, buildings = dataset
    parts = manifest["parts"]
    for b in buildings[:4]:
        scene = trimesh.load(out / "meshes" / f"b{b.building_id:06d}.glb", force="scene", process=False)
        counts = np.bincount(b.labels[b.labels >= 0], minlength=len(parts))
        assert set(scene.geometry) == {parts[p] for p in np.nonzero(counts)[0]}
        for name, geom in scene.geometry.items():
            assert len(geom.faces) == 2 * counts[parts.index(name)]
            outward_check(geom.vertices, geom.faces, geom.face_normals, b.occupancy)
            colour = geom.visual.face_colors[:, :3]
            assert (colour == Vocabulary(tuple(parts)).colours()[parts.index(name)]).all()


def obj_sections(path: Path) -> dict:
    """Triangle count under each ``o NAME`` line of an OBJ file."""
    sections, current = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("o "):
            current = line[2:]
            sections[current] = 0
        elif line.startswith("f "):
            assert current is not None and len(line.split()) == 4   # triangles only
            sections[current] += 1
    return sections


def test_obj_one_object_per_part(dataset):
    out, manifest, buildings = dataset
    parts = manifest["parts"]
    for b in buildings[:4]:
        path = out / "meshes" / f"b{b.building_id:06d}.obj"
        counts = np.bincount(b.labels[b.labels >= 0], minlength=len(parts))
        assert obj_sections(path) == {parts[p]: 2 * int(counts[p]) for p in np.nonzero(counts)[0]}
        mesh = trimesh.load(path, force="mesh", process=False)
        assert len(mesh.faces) == 2 * counts.sum()
        outward_check(mesh.vertices, mesh.faces, mesh.face_normals, b.occupancy)


def test_mesh_coordinates_use_cell_size(dataset):
    out, _, buildings = dataset
    b = buildings[0]
    mesh = trimesh.load(out / "meshes" / "b000000.ply", process=False)
    cells = np.argwhere(b.occupancy)
    np.testing.assert_allclose(mesh.bounds, [cells.min(0) * CELL, (cells.max(0) + 1) * CELL])


def test_point_clouds_lie_on_labelled_faces(dataset):
    out, _, buildings = dataset
    import open3d as o3d
    colours = np.array(Vocabulary(tuple(small_config()["parts"])).colours())
    for b in buildings[:4]:
        stem = out / "points" / f"b{b.building_id:06d}"
        with np.load(f"{stem}.npz", allow_pickle=False) as z:
            pts, normals, parts = z["points"], z["normals"], z["parts"]
        assert pts.shape == (300, 3) and pts.dtype == np.float32 and normals.shape == (300, 3)
        d = np.array([list(map(tuple, DIRECTION_VECTORS)).index(tuple(n)) for n in normals.astype(int)])
        cell = np.floor(pts / CELL - 0.5 * normals).astype(int)   # step back into the face's cell
        np.testing.assert_array_equal(b.labels[cell[:, 0], cell[:, 1], cell[:, 2], d], parts)
        cloud = o3d.io.read_point_cloud(f"{stem}.ply")
        np.testing.assert_allclose(np.asarray(cloud.points), pts, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(cloud.normals), normals)
        np.testing.assert_allclose(np.asarray(cloud.colors), colours[parts] / 255.0, atol=1e-6)


def test_sample_points_on_empty_mesh_refuses():
    mesh = quad_mesh(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="no faces"):
        sample_points(mesh, 5, np.random.default_rng(0))


def test_same_seed_is_byte_identical_whatever_the_workers(dataset, tmp_path):
    out, _, _ = dataset
    two = tmp_path / "two_workers"
    generate_dataset(small_config(), COUNT, SEED, two, workers=2, progress=False)
    assert file_hashes(two) == file_hashes(out)
    other = tmp_path / "other_seed"
    generate_dataset(small_config(), COUNT, SEED + 1, other, workers=2, progress=False)
    hashes, base = file_hashes(other), file_hashes(out)
    assert hashes.keys() == base.keys()
    assert all(hashes[k] != base[k] for k in ("faces.csv", "adjacency.csv", "grids/b000000.npz",
                                               "points/b000000.npz", "meshes/b000000.glb"))


def test_custom_vocabulary_dataset(tmp_path):
    cfg = small_config("parts=[wall, window, door, roof, shopfront, ground, chimney]")
    manifest = generate_dataset(cfg, 3, 1, tmp_path, formats=("faces", "grids"), workers=1, progress=False)
    header = (tmp_path / "faces.csv").read_text().splitlines()[0].split(",")
    assert header == faces_header(cfg["parts"]) and len(header) == 4 + 6 * 7
    assert "-z:chimney" in header and not any("balcony" in h for h in header)
    assert manifest["stats"]["faces_per_part"]["chimney"] == 0
    assert not (tmp_path / "meshes").exists() and not (tmp_path / "adjacency.csv").exists()


def test_parse_formats():
    assert parse_formats("all") == FORMATS and parse_formats(None) == FORMATS
    assert parse_formats("grids, faces,grids") == ("grids", "faces")
    with pytest.raises(ConfigError, match="--formats: unknown format 'mesh'"):
        parse_formats("grids,mesh")


def test_bad_arguments(tmp_path):
    cfg = small_config()
    with pytest.raises(ConfigError, match="--count must be >= 1"):
        generate_dataset(cfg, 0, 1, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--seed must be >= 0"):
        generate_dataset(cfg, 2, -3, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--layout"):
        generate_dataset(cfg, 2, 1, tmp_path, layout="wide", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        generate_dataset(cfg, 2, 1, tmp_path / "file", progress=False)


def test_sampled_normals_of_turned_walls_are_level():
    """A wall of a footprint turned by 19 degrees: its normals' z is exactly 0, not rounding
    noise whose sign depends on the CPU (the points files are the same on every machine)."""
    c, s = np.cos(np.radians(19.0)), np.sin(np.radians(19.0))
    # a gable end: the apex lies between the corners, so the turned vertices are collinear
    # only up to rounding
    base = np.array([[0.0, 0, 0], [7.3, 0, 0], [7.3, 0, 6.0], [3.65, 0, 9.1], [0, 0, 6.0]])
    vertices = base @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + [678150.25, 5403770.5, 0]
    triangles = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4]])
    corners = vertices[triangles]
    noise = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2]
    assert np.any(noise != 0)       # the case the snapping is for
    points, normals, parts = sample_triangle_points(vertices, triangles, np.array([0, 1, 1]), 200,
                                                    np.random.default_rng(0))
    assert np.all(normals[:, 2] == 0) and not np.signbit(normals[:, 2]).any()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(normals[:, :2], np.tile([s, -c], (200, 1)), atol=1e-6)
    assert set(parts) == {0, 1}


@pytest.mark.parametrize("fmt", ["ply", "glb", "obj"])
def test_labelled_meshes_keep_georeferenced_coordinates(tmp_path, fmt):
    """A building at UTM coordinates (x ~ 680,000 m, y ~ 5,400,000 m, where float32 steps are
    6 cm and 0.5 m) comes back where it was: PLY in doubles, GLB around an offset its node
    puts back, OBJ as text; a building near the origin stays float32."""
    from proc_ml.formats import labelled_mesh

    c, s = np.cos(np.radians(17.0)), np.sin(np.radians(17.0))
    box = trimesh.creation.box(extents=(9.0, 6.0, 3.0))
    local = np.asarray(box.vertices) @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    parts = np.arange(len(box.faces)) % 3 - 1
    names, colours = ["wall", "window"], [(200, 200, 200), (40, 90, 200)]
    for vertices, far in ((local + [678150.123, 5403770.456, 371.25], True), (local + 20.0, False)):
        path = tmp_path / f"m.{fmt}"
        path.write_bytes(labelled_mesh.mesh_bytes(vertices, box.faces, parts, fmt, names, colours))
        mesh, got_parts = labelled_mesh.read(path, names)
        got = np.sort(np.asarray(mesh.vertices)[np.asarray(mesh.faces)].reshape(-1, 9), axis=0)
        want = np.sort(vertices[box.faces].reshape(-1, 9), axis=0)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert sorted(got_parts) == sorted(parts)
        assert labelled_mesh.needs_float64(vertices) is far
        if fmt == "ply":
            assert (b"property double x" in path.read_bytes()) is far
