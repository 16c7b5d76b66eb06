"""faces.csv: one row per occupied cell, a one-hot block of the parts per face direction.

Layouts: ``named`` (header ``building_id,x,y,z,+x:wall,...`` and ids on every row) and
``opara`` (headerless 0/1 rows, the Houdini CSV of SEED's talk). docs/formats.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..grid import DIRECTIONS
from .tables import ID_COLUMNS, MAX_AXIS, MAX_ID, check_unique_cells, numbers, read_rows


def header(parts) -> list[str]:
    return list(ID_COLUMNS) + [f"{d}:{p}" for d in DIRECTIONS for p in parts]


def one_hot_faces(labels: np.ndarray, coords: np.ndarray, n_parts: int) -> np.ndarray:
    """``uint8[N, 6*K]`` one-hot blocks per direction; all zeros where a face is absent."""
    x, y, z = np.asarray(coords).T
    lab = np.asarray(labels)[x, y, z].astype(np.int64)               # [N, 6]
    out = np.zeros((len(lab), 6, n_parts), dtype=np.uint8)
    n, d = np.nonzero(lab >= 0)
    out[n, d, lab[n, d]] = 1
    return out.reshape(len(lab), -1)


def rows(building_id: int, labels: np.ndarray, coords: np.ndarray, n_parts: int) -> bytes:
    """Rows (no header) of one building's cells ``coords`` (``np.nonzero`` order); the 0/1
    body is built as bytes in numpy."""
    coords = np.asarray(coords)
    body = one_hot_faces(labels, coords, n_parts)
    chars = np.full((len(coords), body.shape[1] * 2), ord(","), dtype=np.uint8)
    chars[:, 0::2] = body + ord("0")
    chars[:, -1] = ord("\n")
    data = chars.tobytes()
    width = chars.shape[1]
    prefixes = [f"{int(building_id)},{x},{y},{z},".encode() for x, y, z in coords.tolist()]
    return b"".join(p + data[i * width:(i + 1) * width] for i, p in enumerate(prefixes))


def opara_rows(named_rows: bytes) -> bytes:
    """The ``opara`` layout of ``rows``: the one-hot block only."""
    return b"".join(line.split(b",", 4)[4] + b"\n" for line in named_rows.splitlines())


def read(path: str | os.PathLike, parts, layout: str = "named"):
    """``faces.csv`` -> ``(ids int64[N, 4], one_hot uint8[N, 6, K])``.

    With ``layout='opara'`` the file is headerless 0/1 rows and ids are not present
    (returned as an empty ``[N, 0]`` array).
    """
    path = Path(path)
    K = len(parts)
    head, id_cols = (None, 0) if layout == "opara" else (header(parts), len(ID_COLUMNS))
    ncols = id_cols + 6 * K
    found = [(numbers(path, n, f[:min(1, id_cols)], int, 0, MAX_ID)
               + numbers(path, n, f[min(1, id_cols):id_cols], int, 0, MAX_AXIS - 1)
               + numbers(path, n, f[id_cols:], int, -1, 2 ** 31), n)
             for n, f in read_rows(path, head, ncols)]
    data = np.array([r for r, _ in found], dtype=np.int64).reshape(-1, ncols)
    one_hot = data[:, id_cols:]
    bad = np.nonzero(~np.isin(one_hot, (0, 1)).all(axis=1)
                     | (one_hot.reshape(-1, 6, K).sum(-1) > 1).any(-1))[0]
    if bad.size:
        raise DatasetError(f"{path}: line {found[bad[0]][1]}: each face block must be one-hot "
                           f"(a single 1, or all 0 for no face)")
    if id_cols:
        check_unique_cells(path, data[:, :id_cols], [n for _, n in found])
    return data[:, :id_cols], one_hot.reshape(-1, 6, K).astype(np.uint8)


def labels_of(path: str | os.PathLike, parts, building_id: int, shape) -> np.ndarray | None:
    """One building's ``int8[X, Y, Z, 6]`` labels from faces.csv (None when its rows do not
    fit ``shape``)."""
    ids, one_hot = read(path, parts)
    mine = ids[:, 0] == building_id
    coords = ids[mine, 1:]
    if len(coords) == 0 or coords.max(axis=0).tolist() >= list(shape):
        return None
    labels = np.full(tuple(shape) + (6,), -1, dtype=np.int8)
    block = one_hot[mine]
    labels[tuple(coords.T)] = np.where(block.any(axis=2), block.argmax(axis=2), -1)
    return labels
