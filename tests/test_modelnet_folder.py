"""A ModelNet-layout folder of a user's own meshes and clouds: loading, caching, skipping
bad files with a warning, and training / exporting / predicting end to end."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from proc_ml.cli import main
from proc_ml.datasets.modelnet import ShapeFolder, ShapeSettings, ShapeSkippedWarning
from proc_ml.datasets.pointclouds import load_shape, shape_points


def _meshes(kind: str, index: int):
    import trimesh

    size = 1.0 + 0.15 * index
    if kind == "box":
        return trimesh.creation.box(extents=(size, 0.6 * size, 0.4 * size + 0.1 * index))
    if kind == "cylinder":
        return trimesh.creation.cylinder(radius=0.3 * size, height=size, sections=24)
    return trimesh.creation.cone(radius=0.4 * size, height=size, sections=24)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x (4 train + 2 test) meshes in mixed formats, plus one corrupt and one empty file."""
    root = tmp_path_factory.mktemp("assets")
    formats = ("off", "obj", "stl", "ply")
    for kind in ("box", "cylinder", "cone"):
        for split, count in (("train", 4), ("test", 2)):
            (root / kind / split).mkdir(parents=True)
            for i in range(count):
                index = i + (4 if split == "test" else 0)
                _meshes(kind, index).export(root / kind / split / f"{kind}_{index}.{formats[i % 4]}")
    (root / "box" / "train" / "broken.off").write_bytes(b"OFF\n8 12 0\n1 2 three\n\x00\xff")
    (root / "cone" / "train" / "empty.obj").write_text("# no geometry at all\n")
    return root


def _load(folder, cache, representation="points"):
    shapes = ShapeFolder(folder, ShapeSettings(representation, num_points=64, resolution=16),
                         cache_dir=cache)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = shapes.load("train")
    return shapes, loaded, [str(w.message) for w in caught if w.category is ShapeSkippedWarning]


def test_bad_files_are_skipped_with_a_warning_naming_them(folder, tmp_path):
    shapes, loaded, messages = _load(folder, tmp_path / "cache")
    assert shapes.classes == ["box", "cone", "cylinder"]
    assert len(loaded.paths) == 12
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in loaded.skipped) == ["broken.off", "empty.obj"]
    assert len(messages) == 2
    assert any("broken.off" in m for m in messages) and any("empty.obj" in m for m in messages)
    for arrays in loaded.arrays:
        assert arrays["points"].shape == (64, 3) and arrays["normals"].shape == (64, 3)


def test_cache_is_keyed_by_content_and_settings(folder, tmp_path):
    cache = tmp_path / "cache"
    _, first, _ = _load(folder, cache)
    entries = sorted(cache.glob("*.npz"))
    assert len(entries) == 12 and not list(cache.glob("*.tmp*"))
    _, again, _ = _load(folder, cache)
    assert sorted(cache.glob("*.npz")) == entries
    assert all(np.array_equal(a["points"], b["points"]) for a, b in zip(first.arrays, again.arrays))
    # voxel settings are another cache entry per file
    _load(folder, cache, "voxels")
    assert len(list(cache.glob("*.npz"))) == 24
    # an edited file gets a new key: same name, different content
    shapes = ShapeFolder(folder, ShapeSettings("points", 64), cache_dir=cache)
    path = folder / "box" / "test" / "box_4.off"
    before = shapes.cache_path(path)
    original = path.read_bytes()
    try:
        _meshes("box", 9).export(path)
        assert shapes.cache_path(path) != before
    finally:
        path.write_bytes(original)


def test_sampling_is_seeded_and_normals_point_outwards(folder):
    shape = load_shape(folder / "box" / "train" / "box_0.off")
    a, normals = shape_points(shape, 200, seed=3)
    b, _ = shape_points(shape, 200, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, shape_points(shape, 200, seed=4)[0])
    centre = shape.vertices.mean(axis=0)
    assert (np.einsum("ij,ij->i", a - centre, normals) > 0).all()


def test_point_cloud_files_read_through_open3d(tmp_path):
    import open3d as o3d
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=4)
    dense = np.asarray(trimesh.sample.sample_surface(sphere, 20000, seed=1)[0])  # > 4 x 256: thinned
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(dense))
    path = tmp_path / "sphere.pcd"
    o3d.io.write_point_cloud(str(path), cloud)
    shape = load_shape(path)
    assert not shape.is_mesh and shape.normals is None
    points, normals = shape_points(shape, 256, seed=0)
    assert points.shape == (256, 3)
    # estimated normals of a sphere are radial and oriented outwards
    radial = points / np.linalg.norm(points, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", radial, normals).min() > 0.9


def test_train_export_and_predict_on_the_folder(folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "pointnet-cls", "--data", str(folder), "--out", str(run),
            "--config", "tiny_pointnet_cls", "--quiet", "--set", "dataset.num_points=64",
            "--set", "training.epochs=3", "--set", f"dataset.cache_dir={tmp_path / 'cache'}"]
    with pytest.warns(ShapeSkippedWarning, match="broken.off"):
        assert main(args) == 0
    assert (run / "checkpoints" / "best.pt").is_file()
    model = tmp_path / "model.onnx"
    assert main(["export", "onnx", str(run), "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["predict", "classify", "--model", str(model), "--top-k", "2", "--out",
                 str(tmp_path / "pred"),
                 "--input", str(folder / "cylinder" / "test" / "cylinder_5.obj")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] in ("box", "cone", "cylinder") and len(printed) == 3
    result = json.loads((tmp_path / "pred" / "classes.json").read_text())
    assert [c["class"] for c in result["top_k"]] == [line.split()[0] for line in printed[:2]]
    assert main(["evaluate", str(run), "--data", str(folder), "--split", "test"]) == 0
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["shapes"] == 6 and evaluation["source"] == "folder"


def test_a_folder_that_is_not_modelnet_layout_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "loose").mkdir()
    assert main(["train", "pointnet-cls", "--data", str(tmp_path / "loose"), "--out",
                 str(tmp_path / "run"), "--config", "tiny_pointnet_cls", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ModelNet-layout" in err[0]
