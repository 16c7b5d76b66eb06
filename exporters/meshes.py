"""Labelled building meshes (OBJ, PLY, GLB through trimesh) and labelled point clouds.

* PLY: one mesh; per-face ``part`` property (int) and per-face colour.
* GLB and OBJ: one object per part, named after the part and coloured with it
  (formats without per-face attributes carry the part in the object name). GLB is y-up
  as glTF requires (a node rotation over z-up geometry); OBJ and PLY are z-up.
* Point clouds: ``.npz`` (points, normals, parts) and binary PLY with the same fields.
"""

from __future__ import annotations

import json

import numpy as np
import trimesh

from proc_ml.meshing import QuadMesh, z_up_to_y_up_transform

MESH_FORMATS = ("obj", "ply", "glb")


def _rgba(colours, parts: np.ndarray) -> np.ndarray:
    table = np.array([tuple(c) + (255,) for c in colours], dtype=np.uint8)
    return table[parts]


def labelled_trimesh(mesh: QuadMesh, colours) -> trimesh.Trimesh:
    """One trimesh with per-face ``part`` and colours (faces without a part are grey)."""
    tm = trimesh.Trimesh(mesh.vertices, mesh.triangles, process=False)
    parts = mesh.triangle_parts.astype(np.int32)
    rgba = np.where(parts[:, None] >= 0, _rgba(colours, np.maximum(parts, 0)), 128).astype(np.uint8)
    tm.visual.face_colors = rgba
    tm.face_attributes["part"] = parts
    return tm


def part_scene(mesh: QuadMesh, names, colours, y_up: bool = False) -> trimesh.Scene:
    """A scene with one geometry per part present, named after the part.

    With ``y_up`` the geometry stays z-up and each node carries the rotation to glTF's y-up
    frame, so viewers show the building upright and readers can undo it exactly.
    """
    transform = z_up_to_y_up_transform() if y_up else None
    scene = trimesh.Scene()
    tri_parts = mesh.triangle_parts
    for part in np.unique(tri_parts):
        if part < 0:
            continue
        faces = mesh.triangles[tri_parts == part]
        used, inverse = np.unique(faces, return_inverse=True)
        sub = trimesh.Trimesh(mesh.vertices[used], inverse.reshape(-1, 3), process=False)
        sub.visual = trimesh.visual.ColorVisuals(sub, face_colors=tuple(colours[part]) + (255,))
        scene.add_geometry(sub, geom_name=names[part], node_name=names[part], transform=transform)
    return scene


def mesh_bytes(mesh: QuadMesh, fmt: str, names, colours) -> bytes:
    if fmt == "ply":
        data = labelled_trimesh(mesh, colours).export(file_type="ply", include_attributes=True)
    elif fmt in ("glb", "obj"):
        data = part_scene(mesh, names, colours, y_up=(fmt == "glb")).export(file_type=fmt)
    else:
        raise ValueError(f"unknown mesh format '{fmt}' (expected one of {MESH_FORMATS})")
    return data.encode() if isinstance(data, str) else data


def legend_json(names, colours) -> str:
    """``labels.json``: the legend every mesh and point cloud of a dataset uses."""
    return json.dumps({"parts": list(names),
                       "colours": {n: list(c) for n, c in zip(names, colours)}}, indent=2) + "\n"


_PLY_POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                             ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                             ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("part", "<i4")])


_PLY_TYPES = {"<f4": "float", "|u1": "uchar", "<i4": "int"}


def point_cloud_ply(points, normals, parts, colours) -> bytes:
    """Binary PLY with xyz, normals, colour and ``part`` per point.

    trimesh's point-cloud PLY export drops normals and custom fields, so the (fixed)
    header is written here; open3d and trimesh both read the result.
    """
    rec = np.zeros(len(points), dtype=_PLY_POINT_DTYPE)
    for i, axis in enumerate("xyz"):
        rec[axis] = points[:, i]
        rec["n" + axis] = normals[:, i]
    rgb = np.array(colours, dtype=np.uint8)[parts]
    rec["red"], rec["green"], rec["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rec["part"] = parts
    props = "".join(f"property {_PLY_TYPES[field[0].str]} {name}\n"
                    for name, field in _PLY_POINT_DTYPE.fields.items())
    header = (f"ply\nformat binary_little_endian 1.0\ncomment proc-ml labelled point cloud\n"
              f"element vertex {len(points)}\n{props}end_header\n")
    return header.encode() + rec.tobytes()
