"""A messy studio asset folder, crafted: good meshes in every format trimesh writes or
reads here, archives, and broken, absurd or hostile files, each with the outcome the batch
must record. Used by the fuzz suite (tests/test_fuzz_assets.py) and the memory benchmark
(benchmarks/bench_batch_memory.py).

``write_messy_assets(folder, buildings)`` writes the files and returns ``{relative name:
(expected status, words the record's error must contain)}``; ``buildings`` is a folder of
``proc-ml generate`` meshes (OBJ/PLY/GLB) used as the good inputs.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

OK, FAILED = "ok", "failed"


def _box(extents=(9.0, 9.0, 12.0)):
    import trimesh

    return trimesh.creation.box(extents=extents).apply_translation(np.array(extents) / 2)


def _gltf_embedded(mesh) -> bytes:
    from trimesh.exchange.gltf import export_gltf
    import trimesh

    files = export_gltf(trimesh.Scene(mesh), embed_buffers=True)
    return files["model.gltf"]


def _gltf_with_buffer(uri: str, byte_length: int = 288) -> bytes:
    doc = json.loads(_gltf_embedded(_box()))
    doc["buffers"] = [{"uri": uri, "byteLength": byte_length}]
    return json.dumps(doc).encode()


def _instanced_glb(instances: int) -> bytes:
    """One box placed ``instances`` times: a few KB that flatten to millions of faces."""
    import trimesh

    scene = trimesh.Scene()
    box = _box((1.0, 1.0, 1.0))
    scene.add_geometry(box, geom_name="box", node_name="n0")
    graph = scene.graph
    for i in range(1, instances):
        graph.update(frame_to=f"n{i}", frame_from=graph.base_frame, geometry="box",
                     matrix=trimesh.transformations.translation_matrix([i % 50, i // 50 % 50, 0]))
    return scene.export(file_type="glb")


def _xaml(mesh) -> bytes:
    positions = " ".join(",".join(f"{v:g}" for v in p) for p in mesh.vertices)
    normals = " ".join(",".join(f"{v:g}" for v in n) for n in mesh.vertex_normals)
    indices = " ".join(str(i) for i in mesh.faces.reshape(-1))
    return (f'<Viewport3D xmlns="http://schemas.microsoft.com/winfx/2006/xaml/presentation">'
            f'<ModelVisual3D><ModelVisual3D.Content><GeometryModel3D><GeometryModel3D.Geometry>'
            f'<MeshGeometry3D Positions="{positions}" Normals="{normals}" '
            f'TriangleIndices="{indices}"/>'
            f'</GeometryModel3D.Geometry></GeometryModel3D></ModelVisual3D.Content></ModelVisual3D>'
            f'</Viewport3D>').encode()


def _zip(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo("link.obj")
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, symlink)
    return buf.getvalue()


def _zip_bomb(inflated: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("house.obj", "w", force_zip64=True) as fh:
            block = b" " * (1 << 20)
            for _ in range(inflated >> 20):
                fh.write(block)
    return buf.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _empty_glb() -> bytes:
    doc = json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": []}], "scene": 0}).encode()
    doc += b" " * (-len(doc) % 4)
    return (struct.pack("<4sII", b"glTF", 2, 20 + len(doc)) + struct.pack("<I4s", len(doc), b"JSON")
            + doc)


def _pcd(points, mode="binary", declared: int | None = None) -> bytes:
    pts = np.asarray(points, dtype="<f4").reshape(-1, 3)
    n = len(pts) if declared is None else declared
    header = (f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {n}\n"
              f"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {mode}\n").encode()
    if mode == "ascii":
        return header + "".join(f"{x} {y} {z}\n" for x, y, z in pts.tolist()).encode()
    return header + pts.tobytes()


def write_messy_assets(folder: Path, buildings: Path, outside: Path | None = None,
                       good_copies: int = 1) -> dict[str, tuple[str, list[str]]]:
    """Write the crafted folder (see the module doc); ``outside``: a folder beside it that
    hostile references point into; ``good_copies``: copies of each generated building."""
    folder.mkdir(parents=True, exist_ok=True)
    box = _box()
    obj = box.export(file_type="obj").encode()
    glb = box.export(file_type="glb")
    expected: dict[str, tuple[str, list[str]]] = {}

    def put(rel: str, data: bytes, status: str, *words: str):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = (status, list(words))

    # -- good: generated buildings, and one box per format ---------------------------------
    for copy in range(good_copies):
        for mesh in sorted(buildings.glob("*")):
            if mesh.suffix in (".obj", ".ply", ".glb"):
                put(f"town{copy}/{mesh.name}", mesh.read_bytes(), OK)
    put("formats/box.obj", obj, OK)
    put("formats/box.ply", box.export(file_type="ply"), OK)
    put("formats/box_binary.stl", box.export(file_type="stl"), OK)
    put("formats/box_ascii.stl", box.export(file_type="stl_ascii").encode(), OK)
    put("formats/box.off", box.export(file_type="off").encode(), OK)
    put("formats/box.glb", glb, OK)
    put("formats/box.gltf", _gltf_embedded(box), OK)
    put("formats/box.3mf", box.export(file_type="3mf"), OK)
    put("formats/box.xaml", _xaml(box), OK)
    put("formats/BOX_UPPER.OBJ", obj, OK)
    put("archives/box.obj.zip", _zip({"box.obj": obj}), OK)
    put("archives/box.obj.gz", gzip.compress(obj), OK)
    put("archives/box.ply.bz2", bz2.compress(box.export(file_type="ply")), OK)
    put("archives/box.tar.gz", _tar_gz({"model/box.glb": glb}), OK)
    put("archives/textured.zip", _zip({"house/box.obj": obj.replace(b"\n", b"\nmtllib box.mtl\n", 1),
                                       "house/box.mtl": b"newmtl m\nKd 1 0 0\n"}), OK)
    name = os.fsdecode(b"caf\xe9_latin1.obj")                 # not UTF-8: escaped, processed
    put(name, obj, OK)

    # -- broken files ---------------------------------------------------------------------
    put("broken/empty.obj", b"", FAILED, "0 bytes")
    put("broken/truncated.glb", glb[:len(glb) // 2], FAILED, "glb")
    put("broken/truncated.ply", box.export(file_type="ply")[:300], FAILED, "ply")
    put("broken/truncated.stl", b"\0" * 80 + struct.pack("<I", 10) + b"\0" * 100, FAILED, "truncated")
    put("broken/notes.obj", b"this is a shopping list\nnot a mesh\n", FAILED, "no mesh data")
    put("broken/notes.off", b"hello world\n", FAILED, "off")
    put("broken/notes.gltf", b"hello world\n", FAILED, "json")
    put("broken/deep.gltf", b"[" * 100000 + b"]" * 100000, FAILED, "gltf")
    put("broken/garbage.3mf", b"PK\x03\x04garbage", FAILED, "3mf")
    put("broken/garbage.3dxml", os.urandom(256), FAILED, "3dxml")
    put("broken/garbage.xaml", b"<not xml", FAILED, "xaml")
    put("broken/empty_scene.glb", _empty_glb(), FAILED, "empty")
    put("broken/points_only.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", FAILED, "no faces")
    put("broken/bad_index.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", FAILED)
    # -- absurd numbers -------------------------------------------------------------------
    put("numbers/nan.obj", b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", FAILED, "nan")
    put("numbers/inf.obj", b"v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n", FAILED, "infinite")
    put("numbers/huge_coordinate.obj", b"v 0 0 0\nv 1e300 0 0\nv 0 1 0\nf 1 2 3\n", FAILED, "farther")
    put("numbers/one_point.obj", b"v 2 2 2\nv 2 2 2\nv 2 2 2\nf 1 2 3\n", FAILED, "no extent")
    put("numbers/smaller_than_a_cell.obj", _box((0.1, 0.1, 0.1)).export(file_type="obj").encode(),
        FAILED, "smaller than one cell")
    put("numbers/765m_box.obj", _box((765.0, 765.0, 765.0)).export(file_type="obj").encode(),
        FAILED, "memory budget")
    put("numbers/5km_box.obj", _box((5000.0, 5000.0, 5000.0)).export(file_type="obj").encode(),
        FAILED, "cells")
    # -- hostile --------------------------------------------------------------------------
    put("hostile/dev_zero.gltf", _gltf_with_buffer("/dev/zero"), FAILED, "outside its own folder")
    put("hostile/escape.gltf", _gltf_with_buffer("../../outside/keep.txt"), FAILED, "outside its own folder")
    put("hostile/missing_buffer.gltf", _gltf_with_buffer("nothere.bin"), FAILED, "gltf")
    put("hostile/instances.glb", _instanced_glb(2000), FAILED, "instances")
    put("hostile/zip_bomb.zip", _zip_bomb(64 << 20), FAILED, "inflates")
    put("hostile/gz_bomb.obj.gz", gzip.compress(b" " * (64 << 20)), FAILED, "inflates")
    put("hostile/zip_slip.zip", _zip({"../../evil.obj": obj}), FAILED, "leaves the archive")
    put("hostile/zip_symlink.zip", _zip({"a.txt": b"x"}, symlink="/etc/passwd"), FAILED, "regular file")
    put("hostile/nested.zip", _zip({"inner.zip": _zip({"box.obj": obj})}), FAILED, "archive")
    put("hostile/no_mesh.zip", _zip({"readme.txt": b"hello"}), FAILED, "no mesh")
    put("hostile/garbage.bz2", b"BZh91AY&SY" + os.urandom(64), FAILED, "bz2")
    put("hostile/garbage.gz", b"\x1f\x8b" + os.urandom(64), FAILED, "gz")
    # -- types trimesh knows but cannot read here, and a point cloud ------------------------
    put("other/model.dae", b"<COLLADA/>", FAILED, "pycollada")
    put("other/model.step", b"ISO-10303-21;", FAILED, "cascadio")
    put("other/model.ctm", b"OCTM", FAILED, "openctm")
    return expected


def write_messy_clouds(folder: Path) -> dict[str, tuple[str, list[str]]]:
    """Point clouds for classify/segment: good ones in each PCD mode and broken ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    sphere = rng.normal(size=(400, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    expected: dict[str, tuple[str, list[str]]] = {}

    def put(rel, data, status, *words):
        (folder / rel).write_bytes(data)
        expected[rel] = (status, list(words))

    put("sphere_binary.pcd", _pcd(sphere), OK)
    put("sphere_ascii.pcd", _pcd(sphere, "ascii"), OK)
    put("one_point.pcd", _pcd(sphere[:1]), FAILED, "1 distinct point")
    put("two_points.pcd", _pcd(sphere[:2]), FAILED, "2 distinct points")
    put("same_point.pcd", _pcd(np.zeros((50, 3))), FAILED, "distinct point")
    put("nan_points.pcd", _pcd(np.r_[sphere[:10], [[np.nan, 0, 0]]]), FAILED, "nan")
    put("more_points_declared.pcd", _pcd(sphere, declared=500), FAILED, "truncated")
    put("fewer_points_declared.pcd", _pcd(sphere, declared=300), FAILED, "points")
    put("ascii_rows_mismatch.pcd", _pcd(sphere, "ascii", declared=401), FAILED, "rows")
    put("huge_declared.pcd", _pcd(sphere[:3], declared=2_000_000_000), FAILED, "limit")
    put("compressed_truncated.pcd", _pcd(sphere, "binary")[:200].replace(b"DATA binary",
                                                                      b"DATA binary_compressed"),
        FAILED, "compressed")
    put("not_a_pcd.pcd", b"hello\n", FAILED, "pcd")
    return expected
