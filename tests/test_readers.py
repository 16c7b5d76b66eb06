"""Dataset readers: round trips of every format, and one-line errors for malformed input."""

import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from proc_ml.exporters.dataset import generate_dataset
from proc_ml.formats.faces_csv import header as faces_header
from proc_ml.datasets import (open_dataset, read_adjacency_csv, read_building_npz,
                              read_buildings_csv, read_faces_csv, read_labelled_mesh,
                              read_labels_json, read_manifest, read_point_cloud)
from proc_ml.encoding import adjacency_feature_names, adjacency_features
from proc_ml.errors import DatasetError
from proc_ml.fileio import write_npz
from proc_ml.grid import exterior_faces
from proc_ml.procedural import generate_building, load_generator_config

COUNT, SEED = 8, 4
CONFIG = ["rules=legacy", "grid.size=[10,10,8]", "points.per_building=200"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("readers") / "ds"
    generate_dataset(load_generator_config(None, CONFIG), COUNT, SEED, out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def buildings():
    cfg = load_generator_config(None, CONFIG)
    return [generate_building(cfg, SEED, i) for i in range(COUNT)]


@pytest.fixture(scope="module")
def parts(dataset):
    return read_manifest(dataset)["parts"]


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "copy"))


def expect_error(match: str, fn, *args, **kwargs) -> str:
    """Call ``fn``; it must raise DatasetError with a single-line message matching ``match``."""
    with pytest.raises(DatasetError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- round trips

def test_open_dataset_round_trip(dataset, buildings):
    ds = open_dataset(dataset)
    assert ds.parts == ["wall", "window", "door", "roof", "balcony", "shopfront", "ground"]
    assert ds.ids() == list(range(COUNT))
    assert sorted(ds.ids("train") + ds.ids("val") + ds.ids("test")) == ds.ids()
    for b in buildings:
        rec = ds.building(b.building_id)
        assert rec.building_id == b.building_id and rec.archetype == b.archetype
        np.testing.assert_array_equal(rec.occupancy, b.occupancy)
        np.testing.assert_array_equal(rec.labels, b.labels)
        np.testing.assert_array_equal(rec.style, b.style.vector())
    expect_error(r"no split named 'dev'", ds.ids, "dev")


def test_faces_csv_round_trip(dataset, buildings, parts, tmp_path):
    ids, one_hot = read_faces_csv(dataset / "faces.csv", parts)
    assert one_hot.dtype == np.uint8 and one_hot.shape[1:] == (6, len(parts))
    start = 0
    for b in buildings:
        coords = np.stack(np.nonzero(b.occupancy), 1)
        rows = slice(start, start + len(coords))
        start += len(coords)
        np.testing.assert_array_equal(ids[rows, 1:], coords)
        labels = b.labels[tuple(coords.T)]
        decoded = np.where(one_hot[rows].any(-1), one_hot[rows].argmax(-1), -1)
        np.testing.assert_array_equal(decoded, labels)
    generate_dataset(load_generator_config(None, CONFIG), COUNT, SEED, tmp_path, formats=("faces",),
                     workers=1, layout="opara", progress=False)
    no_ids, opara = read_faces_csv(tmp_path / "faces.csv", parts, layout="opara")
    assert no_ids.shape == (len(ids), 0)
    np.testing.assert_array_equal(opara, one_hot)


def test_adjacency_csv_round_trip(dataset, buildings):
    ids, feats, names = read_adjacency_csv(dataset / "adjacency.csv")
    assert names == list(adjacency_feature_names(True)) and feats.dtype == np.float32
    b = buildings[2]
    rows = ids[:, 0] == b.building_id
    coords, expected = adjacency_features(b.occupancy, b.style.vector())
    np.testing.assert_array_equal(ids[rows, 1:], coords)
    np.testing.assert_allclose(feats[rows], expected, rtol=1e-5)


def test_buildings_csv_round_trip(dataset, buildings):
    rows = read_buildings_csv(dataset / "buildings.csv")
    assert [r["building_id"] for r in rows] == list(range(COUNT))
    for row, b in zip(rows, buildings):
        assert row["archetype"] == b.archetype and row["size"] == (10, 10, 8)
        assert row["cells"] == int(b.occupancy.sum()) and row["faces"] == int((b.labels >= 0).sum())
        np.testing.assert_array_equal(row["style"], b.style.vector())


@pytest.mark.parametrize("ext", ["ply", "glb", "obj"])
def test_labelled_mesh_round_trip(dataset, buildings, parts, ext):
    for b in buildings[:3]:
        mesh, labels = read_labelled_mesh(dataset / "meshes" / f"b{b.building_id:06d}.{ext}", parts)
        assert labels.dtype == np.int32 and len(labels) == len(mesh.faces)
        np.testing.assert_array_equal(np.bincount(labels, minlength=len(parts)),
                                      2 * np.bincount(b.labels[b.labels >= 0], minlength=len(parts)))


@pytest.mark.parametrize("ext", ["npz", "ply"])
def test_point_cloud_round_trip(dataset, ext):
    pts, normals, labels = read_point_cloud(dataset / "points" / f"b000001.{ext}")
    with np.load(dataset / "points" / "b000001.npz") as z:
        np.testing.assert_array_equal(pts, z["points"])
        np.testing.assert_array_equal(normals, z["normals"])
        np.testing.assert_array_equal(labels, z["parts"])
    assert pts.shape == (200, 3)


def test_labels_json_and_manifest(dataset, parts):
    legend = read_labels_json(dataset / "labels.json")
    assert legend["parts"] == parts and set(legend["colours"]) == set(parts)
    assert read_manifest(dataset)["count"] == COUNT


# ---------------------------------------------------------------- malformed CSV

def named_faces(tmp_path, parts, body: str) -> Path:
    path = tmp_path / "faces.csv"
    path.write_text(",".join(faces_header(parts)) + "\n" + body)
    return path


def face_row(parts, bid=0, xyz=(0, 0, 0), ones=()) -> list[str]:
    values = ["0"] * (6 * len(parts))
    for i in ones:
        values[i] = "1"
    return [str(bid), *map(str, xyz), *values]


def test_faces_csv_wrong_column_count(tmp_path, parts):
    good = ",".join(face_row(parts, ones=[3]))
    path = named_faces(tmp_path, parts, f"{good}\n{good},0\n")
    msg = expect_error(r"faces\.csv: line 3: expected 46 columns, got 47", read_faces_csv, path, parts)
    assert str(path) in msg


def test_faces_csv_not_a_number(tmp_path, parts):
    row = face_row(parts)
    row[5] = "x1"
    path = named_faces(tmp_path, parts, ",".join(row) + "\n")
    expect_error(r"faces\.csv: line 2: 'x1' is not a number", read_faces_csv, path, parts)


def test_a_cell_listed_twice_is_refused(dataset, tmp_path, parts):
    rows = [face_row(parts, 0, (1, 2, 3), ones=[3]), face_row(parts, 0, (1, 2, 4)),
            face_row(parts, 1, (1, 2, 3)), face_row(parts, 0, (1, 2, 3))]
    path = named_faces(tmp_path, parts, "".join(",".join(r) + "\n" for r in rows))
    expect_error(r"faces\.csv: line 5: building 0 cell \(1, 2, 3\) is listed twice \(first on "
                 r"line 2\)", read_faces_csv, path, parts)
    lines = (dataset / "buildings.csv").read_text().splitlines()
    path = tmp_path / "buildings.csv"
    path.write_text("\n".join(lines + [lines[2]]) + "\n")
    expect_error(rf"buildings\.csv: line {len(lines) + 1}: building 1 is listed twice \(first "
                 rf"on line 3\)", read_buildings_csv, path)
    lines = (dataset / "adjacency.csv").read_text().splitlines()
    path = tmp_path / "adjacency.csv"
    path.write_text("\n".join(lines + [lines[3]]) + "\n")
    expect_error(rf"adjacency\.csv: line {len(lines) + 1}: building \d+ cell .* is listed twice "
                 rf"\(first on line 4\)", read_adjacency_csv, path)


@pytest.mark.parametrize("ones", [[0, 1], [4]])
def test_faces_csv_not_one_hot(tmp_path, parts, ones):
    row = face_row(parts, ones=ones)
    if ones == [4]:
        row[4 + 4] = "2"                                 # a value other than 0/1
    path = named_faces(tmp_path, parts, ",".join(face_row(parts)) + "\n" + ",".join(row) + "\n")
    expect_error(r"faces\.csv: line 3: each face block must be one-hot", read_faces_csv, path, parts)


def test_faces_csv_bad_header(tmp_path, parts):
    header = faces_header(parts)
    header[6] = "+x:glass"
    path = tmp_path / "faces.csv"
    path.write_text(",".join(header) + "\n")
    expect_error(r"line 1: header column 7 is '\+x:glass', expected '\+x:door'", read_faces_csv, path, parts)
    path.write_text("")
    expect_error(r"faces\.csv: empty file", read_faces_csv, path, parts)
    expect_error(r"nothere\.csv: file not found", read_faces_csv, tmp_path / "nothere.csv", parts)


def test_faces_csv_opara_wrong_width(tmp_path, parts):
    path = tmp_path / "opara.csv"
    path.write_text("0,1,0\n")
    expect_error(r"opara\.csv: line 1: expected 42 columns, got 3", read_faces_csv, path, parts, layout="opara")


def test_adjacency_and_buildings_csv_errors(dataset, tmp_path):
    text = (dataset / "adjacency.csv").read_text().splitlines()
    bad = text[:3] + [text[3].replace(",", ",abc,", 1).rsplit(",", 1)[0]]
    path = tmp_path / "adjacency.csv"
    path.write_text("\n".join(bad) + "\n")
    expect_error(r"adjacency\.csv: line 4: 'abc' is not a number", read_adjacency_csv, path)
    rows = (dataset / "buildings.csv").read_text().splitlines()
    path = tmp_path / "buildings.csv"
    path.write_text(rows[0] + "\n" + rows[1].replace(",", ";", 1) + "\n")
    expect_error(r"buildings\.csv: line 2: expected 16 columns", read_buildings_csv, path)


# ---------------------------------------------------------------- malformed grids

def test_truncated_and_garbage_npz(dataset, tmp_path):
    data = (dataset / "grids" / "b000000.npz").read_bytes()
    path = tmp_path / "b.npz"
    path.write_bytes(data[: len(data) // 2])
    expect_error(r"b\.npz: not a readable \.npz file", read_building_npz, path)
    path.write_bytes(b"not a zip at all" * 4)
    expect_error(r"b\.npz: not a readable \.npz file", read_building_npz, path)
    # Valid zip directory, corrupt compressed data inside a member.
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("labels.npy")
    start = info.header_offset + 30 + len(info.filename)
    corrupt = bytearray(data)
    corrupt[start + 4:start + 40] = bytes(b ^ 0xFF for b in corrupt[start + 4:start + 40])
    path.write_bytes(bytes(corrupt))
    expect_error(r"b\.npz: not a readable \.npz file", read_building_npz, path)
    expect_error(r"missing\.npz: file not found", read_building_npz, tmp_path / "missing.npz")


def grid_arrays(b):
    return {"occupancy": b.occupancy, "labels": b.labels.copy(), "style": b.style.vector()}


def test_npz_wrong_shapes_and_missing_arrays(buildings, tmp_path):
    path = tmp_path / "g.npz"
    arrays = grid_arrays(buildings[0])
    write_npz(path, {k: v for k, v in arrays.items() if k != "labels"})
    expect_error(r"g\.npz: missing array 'labels'", read_building_npz, path)
    write_npz(path, {**arrays, "labels": arrays["labels"][..., :5]})
    expect_error(r"g\.npz: field 'labels' must have shape \(10, 10, 8, 6\)", read_building_npz, path)
    write_npz(path, {**arrays, "occupancy": arrays["occupancy"][0]})
    expect_error(r"g\.npz: field 'occupancy' must be 3-D", read_building_npz, path)
    write_npz(path, {**arrays, "style": arrays["style"][:4]})
    expect_error(r"g\.npz: field 'style' must have 9 values", read_building_npz, path)


BAD_FIELDS = [
    ({"building_id": np.array("abc")}, r"field 'building_id' must be one whole number, got <U3 'abc'"),
    ({"building_id": np.arange(3)}, r"field 'building_id' must be one whole number, got shape \(3,\)"),
    ({"archetype": np.arange(2)}, r"field 'archetype' must be one text value"),
    ({"occupancy": np.zeros((0, 0, 0), np.uint8)}, r"field 'occupancy' is empty"),
    ({"vocab": np.array(["wall", "roof"])}, r"field 'labels' holds part \d, but field 'vocab' names 2"),
    ({"vocab": np.array(["wall", "wall", "roof", "window", "door", "ground", "balcony"])},
     r"field 'vocab' names a part twice"),
    ({"vocab": np.array(["wall", "window ", "roof", "door", "ground", "balcony", "shop"])},
     r"field 'vocab': part names must be one word without spaces"),
    ({"street": np.array(["no", "no", "yes", "no"])}, r"field 'street' must hold true/false flags"),
    ({"street": np.array([0, 2, 0, 1])}, r"field 'street' must hold true/false flags, got int64 values"),
    ({"cell_size": np.array("3")}, r"field 'cell_size' must hold finite numbers"),
    ({"cell_size": np.array(-3.0)}, r"field 'cell_size' must be > 0, got -3"),
    ({"origin": np.array([0.0, np.nan, 1.0])}, r"field 'origin' must hold finite numbers"),
    ({"source_id": np.array([1, 2])}, r"field 'source_id' must be one text value"),
]


@pytest.mark.parametrize("change,message", BAD_FIELDS, ids=[m[:40] for _, m in BAD_FIELDS])
def test_npz_fields_are_checked_with_the_file_named(buildings, tmp_path, change, message):
    path = tmp_path / "g.npz"
    arrays = {**grid_arrays(buildings[0]), "building_id": np.array(3), "archetype": np.array("row")}
    arrays.update(change)
    if "occupancy" in change:
        del arrays["labels"]
    write_npz(path, arrays)
    expect_error(r"g\.npz: " + message, read_building_npz, path, require_labels="labels" in arrays)


def test_npz_flags_stored_as_numbers_are_read_as_flags(buildings, tmp_path):
    path = tmp_path / "g.npz"
    write_npz(path, {**grid_arrays(buildings[0]), "street": np.array([0, 1, 1, 0], np.uint8),
                     "cell_size": np.array(2, np.int32)})
    record = read_building_npz(path)
    assert record.street_sides == ("-x", "+y") and record.extras["street"].dtype == bool
    assert record.extras["cell_size"] == 2.0


def test_npz_labels_must_sit_exactly_on_exterior_faces(buildings, tmp_path):
    path = tmp_path / "g.npz"
    b = next(b for b in buildings if (b.occupancy.sum(axis=2) > 2).any())
    arrays = grid_arrays(b)
    interior = np.argwhere(b.occupancy.astype(bool)[..., None] & ~exterior_faces(b.occupancy))[0]
    arrays["labels"][tuple(interior)] = 0                     # a label on an interior face
    write_npz(path, arrays)
    expect_error(r"g\.npz: field 'labels' must label exactly the exterior faces", read_building_npz, path)
    arrays = grid_arrays(b)
    face = np.argwhere(arrays["labels"] >= 0)[0]
    arrays["labels"][tuple(face)] = -1                        # an exterior face without a part
    write_npz(path, arrays)
    expect_error(r"exactly the exterior faces", read_building_npz, path)
    arrays["labels"][tuple(face)] = 9                         # a part outside the vocabulary
    write_npz(path, arrays)
    expect_error(r"holds part 9, but the vocabulary has 7 parts", read_building_npz, path, n_parts=7)
    arrays["labels"][tuple(face)] = -3
    write_npz(path, arrays)
    expect_error(r"field 'labels' holds -3", read_building_npz, path)


def test_missing_grid_file_names_the_format(dataset, tmp_path):
    ds = open_dataset(copy_of(dataset, tmp_path))
    ds.grid_path(2).unlink()
    expect_error(r"b000002\.npz: missing grid file", ds.building, 2)


# ---------------------------------------------------------------- manifest, legend, meshes, points

def test_manifest_errors(dataset, tmp_path):
    expect_error(r"dataset\.yaml: not a proc-ml dataset", read_manifest, tmp_path)
    root = copy_of(dataset, tmp_path)
    manifest = yaml.safe_load((root / "dataset.yaml").read_text())
    for change, match in [({"format_version": 2}, r"format_version 2 is not supported"),
                          ({"format": "other"}, r"field 'format' is 'other'")]:
        (root / "dataset.yaml").write_text(yaml.safe_dump({**manifest, **change}))
        expect_error(match, open_dataset, root)
    del manifest["split"]
    (root / "dataset.yaml").write_text(yaml.safe_dump(manifest))
    expect_error(r"dataset\.yaml: missing field 'split'", read_manifest, root)
    (root / "dataset.yaml").write_text("format: [unclosed\n  x: 1\n")
    expect_error(r"dataset\.yaml: line \d+ invalid YAML", read_manifest, root)
    (root / "dataset.yaml").write_text("- a list\n")
    expect_error(r"expected a mapping", read_manifest, root)


def test_labels_json_errors(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text('{"parts": ["wall",\n  }')
    expect_error(r"labels\.json: line 2: invalid JSON", read_labels_json, path)
    path.write_text('{"colours": {}}')
    expect_error(r"labels\.json: field 'parts'", read_labels_json, path)


def test_bad_meshes(dataset, parts, tmp_path):
    for ext in ("ply", "glb"):
        path = tmp_path / f"broken.{ext}"
        path.write_bytes(b"\x00garbage" * 10)
        expect_error(rf"broken\.{ext}: ", read_labelled_mesh, path, parts)
    obj = (dataset / "meshes" / "b000000.obj").read_text()
    path = tmp_path / "renamed.obj"
    path.write_text(re.sub(r"^o \w+$", "o glass", obj, count=1, flags=re.M))
    expect_error(r"renamed\.obj: line \d+: object 'glass' is not a part name", read_labelled_mesh, path, parts)
    path = tmp_path / "no_parts.ply"
    import trimesh
    trimesh.creation.box().export(path)
    expect_error(r"no_parts\.ply: PLY has no per-face 'part' property", read_labelled_mesh, path, parts)
    path = tmp_path / "mesh.stl"
    path.write_text("solid")
    expect_error(r"mesh\.stl: unsupported mesh format '\.stl'", read_labelled_mesh, path, parts)
    expect_error(r"gone\.ply: file not found", read_labelled_mesh, tmp_path / "gone.ply", parts)


def test_bad_point_clouds(dataset, tmp_path):
    path = tmp_path / "p.npz"
    write_npz(path, {"points": np.zeros((5, 3), np.float32), "parts": np.zeros(5, np.int64)})
    expect_error(r"p\.npz: missing field 'normals'", read_point_cloud, path)
    write_npz(path, {"points": np.zeros((5, 2), np.float32), "normals": np.zeros((5, 2)),
                     "parts": np.zeros(5)})
    expect_error(r"p\.npz: fields 'points', 'normals' and 'parts' must be", read_point_cloud, path)
    path = tmp_path / "plain.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                    "property float z\nend_header\n0 0 0\n")
    expect_error(r"plain\.ply: PLY lacks the fields", read_point_cloud, path)
    path = tmp_path / "cloud.xyz"
    path.write_text("0 0 0\n")
    expect_error(r"cloud\.xyz: unsupported point cloud format", read_point_cloud, path)
