"""Labelled point clouds: ``.npz`` (points, normals, parts) and binary PLY with the same
fields plus a colour per point (readable by Open3D and trimesh)."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..colours import UNLABELLED
from ..errors import DatasetError
from ..fileio import write_bytes, write_npz

_PLY_POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                             ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                             ("red", "u1"), ("green", "u1"), ("blue", "u1"), ("part", "<i4")])
_PLY_TYPES = {"<f4": "float", "|u1": "uchar", "<i4": "int"}


def write_npz_cloud(path: str | os.PathLike, points, normals, parts) -> None:
    write_npz(path, {"points": points, "normals": normals, "parts": parts})


def ply_bytes(points, normals, parts, colours) -> bytes:
    """Binary PLY with xyz, normals, colour and ``part`` per point.

    trimesh's point-cloud PLY export drops normals and custom fields, so the (fixed)
    header is written here; open3d and trimesh both read the result.
    """
    points, normals, parts = np.asarray(points), np.asarray(normals), np.asarray(parts)
    rec = np.zeros(len(points), dtype=_PLY_POINT_DTYPE)
    for i, axis in enumerate("xyz"):
        rec[axis] = points[:, i]
        rec["n" + axis] = normals[:, i]
    rgb = np.array(list(colours) + [UNLABELLED], dtype=np.uint8)[np.where(parts >= 0, parts, len(colours))]
    rec["red"], rec["green"], rec["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    rec["part"] = parts
    props = "".join(f"property {_PLY_TYPES[field[0].str]} {name}\n"
                    for name, field in _PLY_POINT_DTYPE.fields.items())
    header = (f"ply\nformat binary_little_endian 1.0\ncomment proc-ml labelled point cloud\n"
              f"element vertex {len(points)}\n{props}end_header\n")
    return header.encode() + rec.tobytes()


def write_ply_cloud(path: str | os.PathLike, points, normals, parts, colours) -> None:
    write_bytes(path, ply_bytes(points, normals, parts, colours))


def read(path: str | os.PathLike):
    """Labelled point cloud (``.npz`` or ``.ply``) -> ``(points, normals, parts)``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.suffix == ".npz":
        from . import npz

        npz.check(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                found = {k: data[k] for k in ("points", "normals", "parts") if k in data.files}
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    elif path.suffix == ".ply":
        import trimesh
        try:
            cloud = trimesh.load(path, process=False)
            raw = cloud.metadata["_ply_raw"]["vertex"]["data"]
            found = {"points": np.stack([raw[a] for a in "xyz"], 1),
                     "normals": np.stack([raw["n" + a] for a in "xyz"], 1),
                     "parts": raw["part"]}
        except (KeyError, ValueError, TypeError) as exc:
            raise DatasetError(f"{path}: PLY lacks the fields x,y,z,nx,ny,nz,part ({exc})") from None
    else:
        raise DatasetError(f"{path}: unsupported point cloud format (expected .npz or .ply)")
    for key in ("points", "normals", "parts"):
        if key not in found:
            raise DatasetError(f"{path}: missing field '{key}'")
    try:
        pts = np.asarray(found["points"], dtype=np.float32)
        normals = np.asarray(found["normals"], dtype=np.float32)
        parts = np.asarray(found["parts"])
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: fields 'points', 'normals' and 'parts' must hold numbers") from None
    if (pts.ndim != 2 or pts.shape[1] != 3 or normals.shape != pts.shape
            or parts.ndim != 1 or len(parts) != len(pts)):
        raise DatasetError(f"{path}: fields 'points', 'normals' and 'parts' must be [N,3], [N,3], [N]")
    for name, values in (("points", pts), ("normals", normals)):
        if not np.isfinite(values).all():
            raise DatasetError(f"{path}: field '{name}' holds NaN or infinite values")
    if parts.dtype.kind not in "iu" or (len(parts) and parts.min() < 0):
        raise DatasetError(f"{path}: field 'parts' must hold part indices >= 0")
    return pts, normals, parts.astype(np.int64)
