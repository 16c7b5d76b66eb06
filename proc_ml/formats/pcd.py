"""PCD point clouds (the Point Cloud Library's format): the one PCD reader of every proc-ml
task, and a writer (``ascii``/``binary``).

Reading always starts with this module's strict header and size checks, whatever decodes
the points afterwards:

* ``FIELDS`` / ``SIZE`` / ``TYPE`` / ``COUNT`` agree, ``x y z`` are present, ``WIDTH *
  HEIGHT == POINTS`` and ``POINTS`` is within the caller's limit (before any allocation);
* ``DATA ascii``: exactly ``POINTS`` rows of the declared number of values;
  ``DATA binary``: exactly ``POINTS * point size`` bytes;
  ``DATA binary_compressed``: the stored uncompressed size is ``POINTS * point size``, the
  stored compressed size fits the file, and LZF decompression yields exactly that many
  bytes (corrupted data is refused, not read as garbage).

The points are then decoded by Open3D when it is installed (C++; its own warnings are
captured and returned with the cloud, never printed) and by this module's numpy reader
otherwise (the torch-free, Open3D-free fallback, including an LZF decoder for
``binary_compressed``). Both give the same points; a count that differs from ``POINTS`` is
an error either way. Errors are one line naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..fileio import write_bytes

_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4",
          ("I", 8): "<i8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}
MODES = ("ascii", "binary", "binary_compressed")
#: Default most points a PCD may declare.
MAX_POINTS = 50_000_000


@dataclass
class Cloud:
    """A PCD's points (float64[N, 3]), normals when it has them, and decoder warnings."""
    points: np.ndarray
    normals: np.ndarray | None = None
    warnings: list = field(default_factory=list)


def read(path: str | os.PathLike) -> np.ndarray:
    """The xyz points (float64[N, 3]) of a PCD file (any DATA mode)."""
    return read_cloud(path).points


def read_cloud(path: str | os.PathLike, max_points: int = MAX_POINTS,
               use_open3d: bool | None = None) -> Cloud:
    """``Cloud`` of a PCD file (see the module doc)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None
    return read_bytes(raw, str(path), max_points=max_points, file=path, use_open3d=use_open3d)


def read_bytes(raw: bytes, source: str, *, max_points: int = MAX_POINTS, file=None,
               use_open3d: bool | None = None) -> Cloud:
    """``Cloud`` of PCD bytes; ``file`` (the same bytes on disk) lets Open3D decode them."""
    header, body = _header(source, raw)
    fields = header.get("FIELDS", [])
    if not all(axis in fields for axis in "xyz"):
        raise DatasetError(f"{source}: PCD has no x y z fields (FIELDS {' '.join(fields) or 'missing'})")
    dtype = _dtype(source, header, fields)
    count = _int(source, header, "POINTS")
    if "WIDTH" in header and "HEIGHT" in header:
        width, height = _int(source, header, "WIDTH"), _int(source, header, "HEIGHT")
        if width * height != count:
            raise DatasetError(f"{source}: PCD header WIDTH x HEIGHT = {width} x {height} = "
                               f"{width * height}, but POINTS is {count}")
    if count > max_points:
        raise DatasetError(f"{source}: PCD declares {count} points, over the limit of "
                           f"{max_points} (--max-faces)")
    mode = header["DATA"][0].lower() if header["DATA"] else ""
    if mode not in MODES:
        raise DatasetError(f"{source}: PCD DATA '{mode}' is not supported (ascii, binary or "
                           f"binary_compressed)")
    columns = _decode(source, mode, body, dtype, count)   # validates sizes, always
    if count == 0:
        return Cloud(np.zeros((0, 3)))
    if use_open3d is None:
        use_open3d = file is not None and _open3d_available()
    warnings: list = []
    if use_open3d and file is not None:
        points, normals, warnings = _open3d_read(file, source, count)
    else:
        points = np.stack([np.asarray(columns[a], dtype=np.float64) for a in "xyz"], axis=1)
        normals = (np.stack([np.asarray(columns[f"normal_{a}"], dtype=np.float32) for a in "xyz"],
                            axis=1) if all(f"normal_{a}" in dtype.names for a in "xyz") else None)
    return Cloud(points, normals, warnings)


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


# -- header -----------------------------------------------------------------------------------
def _header(source: str, raw: bytes) -> tuple[dict, bytes]:
    header, offset = {}, 0
    while "DATA" not in header:
        end = raw.find(b"\n", offset)
        if end < 0:
            raise DatasetError(f"{source}: not a PCD file (no DATA line in the header)")
        line = raw[offset:end].decode("ascii", "replace").strip()
        offset = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            header[key.upper()] = values
        if len(header) > 20 or offset > 4096:
            raise DatasetError(f"{source}: not a PCD file (header not found)")
    if "VERSION" not in header and "FIELDS" not in header:
        raise DatasetError(f"{source}: not a PCD file (no VERSION/FIELDS header)")
    return header, raw[offset:]


def _dtype(source: str, header: dict, fields: list) -> np.dtype:
    sizes, types = header.get("SIZE", []), header.get("TYPE", [])
    counts = header.get("COUNT", ["1"] * len(fields))
    if not (len(sizes) == len(types) == len(counts) == len(fields)):
        raise DatasetError(f"{source}: PCD header FIELDS/SIZE/TYPE/COUNT lengths differ")
    if len(set(fields)) != len(fields) and "_" not in fields:
        raise DatasetError(f"{source}: PCD header names a field twice ({' '.join(fields)})")
    parts = []
    for name, size, kind, count in zip(fields, sizes, types, counts):
        if not (size.isdigit() and count.isdigit()) or not 1 <= int(count) <= 4096:
            raise DatasetError(f"{source}: PCD field '{name}' has SIZE {size} / COUNT {count}, "
                               f"expected whole numbers (COUNT 1..4096)")
        code = _TYPES.get((kind.upper(), int(size)))
        if code is None:
            raise DatasetError(f"{source}: PCD field '{name}' has unsupported TYPE {kind} SIZE {size}")
        label = name if name != "_" else f"_pad{len(parts)}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
            label = f"_field{len(parts)}"
        parts.append((label, code, (int(count),)) if int(count) > 1 else (label, code))
    try:
        return np.dtype(parts)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{source}: PCD fields cannot be read ({_one_line(exc)})") from None


def _int(source: str, header: dict, key: str) -> int:
    try:
        value = int(header[key][0])
    except (KeyError, IndexError, ValueError):
        raise DatasetError(f"{source}: PCD header {key} is missing or not a number") from None
    if value < 0:
        raise DatasetError(f"{source}: PCD header {key} is negative")
    return value


# -- data -------------------------------------------------------------------------------------
def _decode(source: str, mode: str, body: bytes, dtype: np.dtype, count: int):
    """The columns of the data section after checking its size against the header."""
    if mode == "ascii":
        return _ascii(source, body, dtype, count)
    need = count * dtype.itemsize
    if mode == "binary":
        if len(body) < need:
            raise DatasetError(f"{source}: PCD is truncated: {count} points need {need} bytes, "
                               f"the file has {len(body)}")
        if len(body) > need:
            raise DatasetError(f"{source}: PCD says {count} points ({need} bytes of binary "
                               f"data), the file holds {len(body)} bytes (POINTS does not "
                               f"match the data)")
        return np.frombuffer(body, dtype=dtype, count=count)
    if len(body) < 8:
        raise DatasetError(f"{source}: PCD binary_compressed data is missing its size header")
    compressed, uncompressed = (int(v) for v in np.frombuffer(body[:8], "<u4"))
    if uncompressed != need:
        raise DatasetError(f"{source}: PCD says {count} points ({need} bytes), the compressed "
                           f"data says it holds {uncompressed} bytes")
    if compressed > len(body) - 8:
        raise DatasetError(f"{source}: PCD binary_compressed data is truncated ({compressed} "
                           f"bytes stated, {len(body) - 8} present)")
    data = lzf_decompress(body[8:8 + compressed], uncompressed, source)
    # binary_compressed stores each field for all points in turn (structure of arrays)
    out = np.empty(count, dtype=dtype)
    offset = 0
    for name in dtype.names:
        sub = dtype.fields[name][0]
        size = sub.itemsize * count
        out[name] = np.frombuffer(data[offset:offset + size], dtype=sub.base,
                                  count=count * max(1, int(np.prod(sub.shape)))).reshape(
                                      (count,) + sub.shape)
        offset += size
    return out


def _ascii(source: str, body: bytes, dtype: np.dtype, count: int):
    width = sum(max(1, int(np.prod(dtype.fields[n][0].shape))) for n in dtype.names)
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) != count:
        raise DatasetError(f"{source}: PCD says {count} points, the ascii data has "
                           f"{len(lines)} rows")
    if count == 0:
        return {}
    try:
        table = np.loadtxt(io.BytesIO(b"\n".join(lines)), dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{source}: PCD ascii data is malformed ({_one_line(exc)})") from None
    if table.shape[1] != width:
        raise DatasetError(f"{source}: PCD ascii rows have {table.shape[1]} values, the header "
                           f"declares {width}")
    columns, at = {}, 0
    for name in dtype.names:
        n = max(1, int(np.prod(dtype.fields[name][0].shape)))
        columns[name] = table[:, at] if n == 1 else table[:, at:at + n]
        at += n
    return columns


def lzf_decompress(data: bytes, size: int, source: str = "data") -> bytes:
    """LZF (liblzf's ``lzf_decompress``) of ``data`` into exactly ``size`` bytes;
    ``DatasetError`` on corrupted input (a back reference before the start, a run past
    either end, or a different output size)."""
    src, out = memoryview(data), bytearray(size)
    ip, op, end = 0, 0, len(data)
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:                                  # a run of ctrl + 1 literal bytes
            n = ctrl + 1
            if ip + n > end or op + n > size:
                raise DatasetError(f"{source}: PCD binary_compressed data is corrupted "
                                   f"(a literal run passes the end)")
            out[op:op + n] = src[ip:ip + n]
            ip += n
            op += n
            continue
        n = ctrl >> 5                                   # a back reference
        ref = op - ((ctrl & 0x1F) << 8) - 1
        if n == 7:
            if ip >= end:
                raise DatasetError(f"{source}: PCD binary_compressed data is corrupted (truncated)")
            n += src[ip]
            ip += 1
        if ip >= end:
            raise DatasetError(f"{source}: PCD binary_compressed data is corrupted (truncated)")
        ref -= src[ip]
        ip += 1
        n += 2
        if ref < 0 or op + n > size:
            raise DatasetError(f"{source}: PCD binary_compressed data is corrupted (a back "
                               f"reference outside the data)")
        distance = op - ref
        if distance >= n:
            out[op:op + n] = out[ref:ref + n]
        else:                                          # overlapping: the pattern repeats
            pattern = bytes(out[ref:op])
            reps = -(-n // distance)
            out[op:op + n] = (pattern * reps)[:n]
        op += n
    if op != size:
        raise DatasetError(f"{source}: PCD binary_compressed data is corrupted (it holds "
                           f"{op} of the {size} bytes stated)")
    return bytes(out)


# -- Open3D -------------------------------------------------------------------------------------
def _open3d_available() -> bool:
    if os.environ.get("PROC_ML_NO_OPEN3D"):
        return False
    try:
        import open3d  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken open3d install is the same as none
        return False
    return True


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def captured_output(lines: list):
    """Capture what C++ libraries print on stdout/stderr (Open3D's ``[Open3D WARNING]``
    lines) into ``lines`` instead of the terminal or the batch log."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved, sink = [], tempfile.TemporaryFile()
    try:
        for fd in (1, 2):
            saved.append(os.dup(fd))
            os.dup2(sink.fileno(), fd)
        yield lines
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        sink.seek(0)
        text = _ANSI.sub("", sink.read().decode("utf-8", "replace"))
        sink.close()
        lines.extend(" ".join(line.split()) for line in text.splitlines() if line.strip())


def open3d_warnings(lines) -> list:
    """The ``[Open3D WARNING]`` / ``[Open3D ERROR]`` lines, without the tag."""
    out = []
    for line in lines:
        found = re.match(r"\[Open3D (WARNING|ERROR)\]\s*(.*)", line)
        out.append(found.group(2) if found else line)
    return out


def _open3d_read(path, source: str, count: int):
    import open3d as o3d

    lines: list = []
    with captured_output(lines):
        cloud = o3d.io.read_point_cloud(str(path), format="pcd", remove_nan_points=False,
                                        remove_infinite_points=False)
    warnings = open3d_warnings(lines)
    points = np.asarray(cloud.points, dtype=np.float64)
    if len(points) != count:
        why = f": {warnings[0]}" if warnings else ""
        raise DatasetError(f"{source}: PCD says {count} points, Open3D read {len(points)}{why}")
    normals = np.asarray(cloud.normals, dtype=np.float32) if cloud.has_normals() else None
    return points, normals, warnings
