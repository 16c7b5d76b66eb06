"""PCD point clouds (the Point Cloud Library's format), numpy only: ``DATA ascii`` and
``binary`` read, ``ascii``/``binary`` written. Errors name the file and what is wrong."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..fileio import write_bytes

_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4",
          ("I", 8): "<i8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}


def read(path: str | os.PathLike) -> np.ndarray:
    """The xyz points (float64[N, 3]) of a PCD file, DATA ascii or binary."""
    path = Path(path)
    raw = path.read_bytes()
    header, body = _header(path, raw)
    fields = header.get("FIELDS", [])
    if not all(axis in fields for axis in "xyz"):
        raise DatasetError(f"{path}: PCD has no x y z fields (FIELDS {' '.join(fields) or 'missing'})")
    dtype = _dtype(path, header, fields)
    count = _int(path, header, "POINTS")
    mode = header["DATA"][0].lower()
    if mode == "ascii":
        try:
            table = np.loadtxt(io.BytesIO(body), dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise DatasetError(f"{path}: PCD ascii data is malformed ({_one_line(exc)})") from None
        if table.shape != (count, len(dtype.names)) and not (count == 0 and table.size == 0):
            raise DatasetError(f"{path}: PCD says {count} points of {len(dtype.names)} values, "
                               f"data has {table.shape[0]} rows")
        columns = {name: table[:, i] for i, name in enumerate(dtype.names)} if count else {}
    elif mode == "binary":
        need = count * dtype.itemsize
        if len(body) < need:
            raise DatasetError(f"{path}: PCD is truncated: {count} points need {need} bytes, "
                               f"file has {len(body)}")
        columns = np.frombuffer(body[:need], dtype=dtype, count=count)
    else:
        raise DatasetError(f"{path}: PCD DATA '{mode}' is not supported (use ascii or binary)")
    if count == 0:
        return np.zeros((0, 3))
    return np.stack([np.asarray(columns[a], dtype=np.float64) for a in "xyz"], axis=1)


def pcd_bytes(points, binary: bool = True) -> bytes:
    """A PCD (v0.7) of float32 x y z points."""
    pts = np.ascontiguousarray(np.asarray(points, dtype="<f4").reshape(-1, 3))
    header = (f"# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z\n"
              f"SIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {len(pts)}\nHEIGHT 1\n"
              f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(pts)}\nDATA {'binary' if binary else 'ascii'}\n")
    body = pts.tobytes() if binary else "".join(
        f"{x:.9g} {y:.9g} {z:.9g}\n" for x, y, z in pts.tolist()).encode()
    return header.encode() + body


def write(path: str | os.PathLike, points, binary: bool = True) -> None:
    write_bytes(path, pcd_bytes(points, binary))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _header(path: Path, raw: bytes) -> tuple[dict, bytes]:
    header, offset = {}, 0
    while "DATA" not in header:
        end = raw.find(b"\n", offset)
        if end < 0:
            raise DatasetError(f"{path}: not a PCD file (no DATA line in the header)")
        line = raw[offset:end].decode("ascii", "replace").strip()
        offset = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.upper()] = values
        if len(header) > 20 or offset > 4096:
            raise DatasetError(f"{path}: not a PCD file (header not found)")
    if "VERSION" not in header and "FIELDS" not in header:
        raise DatasetError(f"{path}: not a PCD file (no VERSION/FIELDS header)")
    return header, raw[offset:]


def _dtype(path: Path, header: dict, fields: list) -> np.dtype:
    sizes, types = header.get("SIZE", []), header.get("TYPE", [])
    counts = header.get("COUNT", ["1"] * len(fields))
    if not (len(sizes) == len(types) == len(counts) == len(fields)):
        raise DatasetError(f"{path}: PCD header FIELDS/SIZE/TYPE/COUNT lengths differ")
    parts = []
    for name, size, kind, count in zip(fields, sizes, types, counts):
        if not (size.isdigit() and count.isdigit()):
            raise DatasetError(f"{path}: PCD field '{name}' has SIZE {size} / COUNT {count}, "
                               f"expected whole numbers")
        code = _TYPES.get((kind.upper(), int(size)))
        if code is None:
            raise DatasetError(f"{path}: PCD field '{name}' has unsupported TYPE {kind} SIZE {size}")
        label = name if name != "_" else f"_pad{len(parts)}"
        parts.append((label, code, (int(count),)) if int(count) > 1 else (label, code))
    return np.dtype(parts)


def _int(path: Path, header: dict, key: str) -> int:
    try:
        value = int(header[key][0])
    except (KeyError, IndexError, ValueError):
        raise DatasetError(f"{path}: PCD header {key} is missing or not a number") from None
    if value < 0:
        raise DatasetError(f"{path}: PCD header {key} is negative")
    return value
