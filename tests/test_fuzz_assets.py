"""Fuzz: a messy asset folder (tests/messy_assets.py: every mesh format, archives, broken,
absurd and hostile files, a non-UTF-8 file name) through ``proc-ml batch --task parts``, and
messy point clouds through ``predict classify`` and ``batch --task classify``.

The batch runs once per module in a real subprocess (real stdout/stderr, real workers);
each asset is then one case: its manifest record has the expected status and a one-line
error naming what is wrong. Shared assertions: exit code 2, stderr is the failure list
(one line each), no traceback, no Open3D output on the terminal, nothing written outside
OUT, the manifest is strict JSON, and a rerun gives the same records.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fuzzkit import REPO, Sandbox, assert_refused, manifest_records, run
from messy_assets import FAILED, OK, write_messy_assets, write_messy_clouds
from proc_ml.fileio import display_name

BATCH_LIMITS = ["--max-faces", "20000", "--max-bytes", "8000000"]


def _batch(box, model, *extra):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "proc_ml", "batch", str(box.inp), "--model", str(model),
           "--out", str(box.out), "--quiet", *BATCH_LIMITS, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=box.root, timeout=900)


@pytest.fixture(scope="module")
def messy_batch(tmp_path_factory, tiny_dataset, tiny_massing_unet_onnx):
    box = Sandbox.make(tmp_path_factory.mktemp("messy"))
    (box.inp / "planted").mkdir()
    os.symlink(box.outside / "keep.txt", box.inp / "planted" / "outside_link.obj")
    expected = write_messy_assets(box.inp, tiny_dataset / "meshes", box.outside)
    expected["planted/outside_link.obj"] = (FAILED, ["outside the asset folder"])
    before = box.snapshot()
    first = _batch(box, tiny_massing_unet_onnx)
    records_first = manifest_records(box.out)
    second = _batch(box, tiny_massing_unet_onnx)
    after = box.snapshot()
    return box, expected, first, second, records_first, manifest_records(box.out), before, after


#: Formats the parts task reads through proc_ml.meshio beyond the common mesh types.
NEW_FORMATS = ("formats/box.3mf", "formats/box.xaml", "archives/box.obj.zip", "archives/box.obj.gz",
               "archives/box.ply.bz2", "archives/box.tar.gz", "archives/textured.zip")


def test_batch_contract(messy_batch):
    box, expected, first, second, _, records, before, after = messy_batch
    failed = sum(1 for record in records.values() if record["status"] == FAILED)
    assert failed >= sum(1 for status, _ in expected.values() if status == FAILED)
    for result in (first, second):
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "[Open3D" not in result.stdout + result.stderr
        lines = result.stderr.splitlines()
        assert lines[0] == f"{failed} asset(s) failed:", lines[:3]
        assert len(lines) == failed + 1
    assert before == after, "the batch wrote outside OUT"
    assert not [p for p in box.out.rglob("*.tmp")]
    assert set(records) == {display_name(rel) for rel in expected}


def test_rerun_keeps_every_outcome(messy_batch):
    _, expected, _, _, first, second, _, _ = messy_batch
    for rel in expected:
        name = display_name(rel)
        was, now = first[name], second[name]
        assert (was["status"] == OK) == (now["status"] in (OK, "skipped")), name
        assert was["error"] == now["error"], name


def _cases():
    import tempfile
    from pathlib import Path

    # the expected outcomes only (files are written by the fixture)
    folder = Path(tempfile.mkdtemp())
    meshes = folder / "meshes"
    meshes.mkdir()
    (meshes / "b000000.obj").write_text("v 0 0 0\n")
    cases = write_messy_assets(folder / "in", meshes)
    return [pytest.param(rel, status, words, id=display_name(rel),
                         marks=[])
            for rel, (status, words) in sorted(cases.items()) if not rel.startswith("town")]


@pytest.mark.parametrize("rel,status,words", _cases())
def test_asset_record(messy_batch, rel, status, words):
    _, _, _, _, records, _, _, _ = messy_batch
    record = records[display_name(rel)]
    assert record["status"] == status, (rel, record["error"])
    if status == FAILED:
        error = record["error"]
        assert error and "\n" not in error and "Traceback" not in error, error
        assert "FilePathResolver" not in error and "allow_anywhere" not in error, error
        for word in words:
            assert word.lower() in error.lower(), (rel, error)
    else:
        assert record["error"] is None and record["outputs"]


def test_generated_buildings_all_succeed(messy_batch):
    _, expected, _, _, records, _, _, _ = messy_batch
    town = [rel for rel in expected if rel.startswith("town")]
    assert town and all(records[rel]["status"] == OK for rel in town)


def test_lock_file_symlink_is_refused(capfd, tmp_path, tiny_dataset, tiny_massing_unet_onnx):
    box = Sandbox.make(tmp_path)
    (box.inp / "a.obj").write_bytes((tiny_dataset / "meshes" / "b000000.obj").read_bytes())
    box.out.mkdir()
    os.symlink("../outside/x", box.out / ".proc-ml-batch.lock")
    result = run(capfd, box, "batch", box.inp, "--model", tiny_massing_unet_onnx, "--out", box.out,
                 "--quiet")
    assert_refused(result, "lock file", "symbolic link", command="batch")
    assert not (box.outside / "x").exists()


def test_manifest_symlink_is_refused(capfd, tmp_path, tiny_dataset, tiny_massing_unet_onnx):
    box = Sandbox.make(tmp_path)
    (box.inp / "a.obj").write_bytes((tiny_dataset / "meshes" / "b000000.obj").read_bytes())
    box.out.mkdir()
    os.symlink("../outside/manifest.jsonl", box.out / "manifest.jsonl")
    result = run(capfd, box, "batch", box.inp, "--model", tiny_massing_unet_onnx, "--out", box.out,
                 "--quiet")
    assert_refused(result, "manifest", "symbolic link", command="batch")
    assert not (box.outside / "manifest.jsonl").exists()


# -- point clouds: predict classify and batch classify ---------------------------------------
def _cloud_cases():
    import tempfile
    from pathlib import Path

    return sorted((rel, status, words) for rel, (status, words) in
                  write_messy_clouds(Path(tempfile.mkdtemp())).items())


@pytest.mark.parametrize("rel,status,words", _cloud_cases(), ids=[c[0] for c in _cloud_cases()])
def test_classify_clouds(capfd, tmp_path, tiny_pointnet_cls_onnx, rel, status, words):
    box = Sandbox.make(tmp_path)
    write_messy_clouds(box.inp)
    result = run(capfd, box, "predict", "classify", "--model", tiny_pointnet_cls_onnx, "--input",
                 box.inp / rel, "--out", box.out)
    if status == OK:
        assert result[0] == 0 and result[2] == "" and "[Open3D" not in result[1]
    else:
        assert_refused(result, rel, *words, command="predict")


def test_batch_classify_clouds_record_warnings_not_print_them(tmp_path, tiny_pointnet_cls_onnx):
    box = Sandbox.make(tmp_path)
    expected = write_messy_clouds(box.inp)
    result = _batch(box, tiny_pointnet_cls_onnx, "--task", "classify")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "[Open3D" not in result.stdout + result.stderr
    records = manifest_records(box.out)
    for rel, (status, words) in expected.items():
        assert records[rel]["status"] == status, (rel, records[rel]["error"])
        for word in words:
            assert word.lower() in records[rel]["error"].lower(), (rel, records[rel]["error"])


# -- predict building-parts on single meshes: its input reader belongs to the real-building
# -- import; the batch path (proc_ml.batch.assets through proc_ml.meshio) refuses all of these
PREDICT_MESHES = [
    ("inf.obj", b"v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n", ["infinite"]),
    ("huge.obj", b"v 0 0 0\nv 1e300 0 0\nv 0 1 0\nf 1 2 3\n", ["farther"]),
    ("point.obj", b"v 2 2 2\nv 2 2 2\nv 2 2 2\nf 1 2 3\n", ["no extent"]),
]

@pytest.mark.parametrize("name,data,words", PREDICT_MESHES, ids=[c[0] for c in PREDICT_MESHES])
def test_predict_parts_mesh_checks(capfd, tmp_path, tiny_massing_unet_onnx, name, data, words):
    box = Sandbox.make(tmp_path)
    (box.inp / name).write_bytes(data)
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", box.inp / name, "--out", box.out)
    assert_refused(result, name, *words, command="predict")


@pytest.mark.parametrize("name,data,words", PREDICT_MESHES, ids=[c[0] for c in PREDICT_MESHES])
def test_predict_classify_mesh_checks(capfd, tmp_path, tiny_pointnet_cls_onnx, name, data, words):
    box = Sandbox.make(tmp_path)
    (box.inp / name).write_bytes(data)
    result = run(capfd, box, "predict", "classify", "--model", tiny_pointnet_cls_onnx,
                 "--input", box.inp / name)
    assert_refused(result, name, *words, command="predict")


def test_predict_parts_reads_every_trimesh_format(capfd, tmp_path, tiny_massing_unet_onnx):
    box = Sandbox.make(tmp_path)
    meshes = box.root / "meshes"
    meshes.mkdir()
    write_messy_assets(box.inp, meshes)
    for rel in NEW_FORMATS:
        code, _, err = run(capfd, box, "predict", "building-parts", "--model",
                           tiny_massing_unet_onnx, "--input", box.inp / rel, "--out", box.out)
        assert code == 0, err


def test_label_transfer_fits_the_budget(tmp_path, tiny_massing_unet_onnx):
    import sys
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_batch_memory import city_block

    box = Sandbox.make(tmp_path)
    city_block(box.inp / "block_20x20.ply", 20)
    result = _batch(box, tiny_massing_unet_onnx)
    records = manifest_records(box.out)
    assert result.returncode == 0, records["block_20x20.ply"]["error"]


# -- what real asset folders hold (helper survey of public corpora, session 7) ---------------------
def _glb_bytes() -> bytes:
    import trimesh

    return trimesh.creation.box().export(file_type="glb")


GLTF_DRACO = (b'{"asset": {"version": "2.0"}, "extensionsUsed": ["KHR_draco_mesh_compression"], '
              b'"extensionsRequired": ["KHR_draco_mesh_compression"], "meshes": []}')
PLY_STRIPS = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
              b"property float z\nelement tristrips 1\nproperty list int int vertex_indices\n"
              b"end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
REAL_FOLDER_FILES = [
    ("lfs.glb", lambda: b"version https://git-lfs.github.com/spec/v1\noid sha256:ab12\nsize 9\n",
     ["Git LFS pointer", "git lfs pull"]),
    ("scene.obj", _glb_bytes, ["binary glTF", "not .obj"]),
    ("part.stl", lambda: b"# exported\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\n",
     ["OBJ mesh", "not .stl"]),
    ("texture.obj", lambda: b"\x89PNG\r\n\x1a\n" + bytes(32), ["PNG image"]),
    ("draco.gltf", lambda: GLTF_DRACO, ["KHR_draco_mesh_compression", "DracoPy"]),
    ("scan.ply", lambda: PLY_STRIPS, ["triangle strips"]),
]


@pytest.mark.parametrize("name,make,words", REAL_FOLDER_FILES, ids=[c[0] for c in REAL_FOLDER_FILES])
def test_real_folder_files_are_named_for_what_they_are(tmp_path, name, make, words):
    import importlib.util

    from proc_ml.meshio import MeshError, read_geometry

    if name == "draco.gltf" and importlib.util.find_spec("DracoPy"):
        pytest.skip("DracoPy installed: trimesh decodes Draco")
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(MeshError) as info:
        read_geometry(path, allow_points=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message, (word, message)


PLY_XYZ = b"property float x\nproperty float y\nproperty float z\n"
LYING_PLYS = [
    # a header claiming a billion points: refused before a reader allocates for them
    ("cloud.ply", b"ply\nformat ascii 1.0\nelement vertex 1000000000\n" + PLY_XYZ
     + b"end_header\n0 0 0\n1 0 0\n", ["1000000000 points", "over the limit"]),
    ("mesh.ply", b"ply\nformat ascii 1.0\nelement vertex 3\n" + PLY_XYZ
     + b"element face 1000000000\nproperty list uchar int vertex_indices\nend_header\n"
       b"0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", ["1000000000 faces", "over the limit"]),
    # a cut-off binary file: the header's counts need more bytes than follow it
    ("cut.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n" + PLY_XYZ
     + b"element face 5000\nproperty list uchar int vertex_indices\nend_header\n"
     + np.arange(9, dtype="<f4").tobytes() + b"\x03" + np.arange(3, dtype="<i4").tobytes(),
     ["truncated or corrupt PLY", "3 vertices, 5000 faces", "at least 5036 bytes",
      "49 bytes after it"]),
]


@pytest.mark.parametrize("name,data,words", LYING_PLYS, ids=[c[0] for c in LYING_PLYS])
def test_ply_headers_are_held_to_the_file_before_reading(tmp_path, name, data, words):
    from proc_ml.datasets.pointclouds import load_shape
    from proc_ml.meshio import MeshError, read_geometry

    path = tmp_path / name
    path.write_bytes(data)
    for read in (read_geometry, load_shape):        # the mesh reader and the point-cloud one
        with pytest.raises(MeshError) as info:
            read(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{path}: ")
        for word in words:
            assert word in message, (word, message)


def test_ply_header_check_passes_honest_files(tmp_path):
    import trimesh

    from proc_ml.meshio import read_geometry

    box = trimesh.creation.box()
    for encoding in ("ascii", "binary"):
        path = tmp_path / f"box_{encoding}.ply"
        path.write_bytes(box.export(file_type="ply", encoding=encoding))
        assert len(read_geometry(path).faces) == 12


def test_xyz_point_clouds_are_read_not_refused(tmp_path):
    from proc_ml.meshio import MeshError, read_geometry

    path = tmp_path / "scan.xyz"
    path.write_text("0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    cloud = read_geometry(path)
    assert cloud.faces is None and cloud.vertices.shape == (4, 3)
    with pytest.raises(MeshError, match="no faces"):
        read_geometry(path, allow_points=False)


def test_a_folder_where_a_file_belongs_is_called_a_folder(tmp_path):
    from proc_ml.datasets.pointclouds import load_shape
    from proc_ml.errors import ConfigError, DatasetError
    from proc_ml.trainers.config import resolve_config_path

    with pytest.raises(DatasetError, match=r"a folder, not a mesh or point-cloud file \(proc-ml batch"):
        load_shape(tmp_path)
    with pytest.raises(ConfigError, match=r"a folder, not a config file"):
        resolve_config_path(tmp_path)
    with pytest.raises(DatasetError, match=r"file not found"):
        load_shape(tmp_path / "none.ply")
