"""adjacency.csv: one row per occupied cell, the per-cell features the MLP reads
(``proc_ml.encoding.adjacency_features`` with style), in the row order of faces.csv."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..encoding import adjacency_feature_names, adjacency_features
from .tables import ID_COLUMNS, MAX_AXIS, MAX_ID, check_unique_cells, numbers, read_rows


def header() -> list[str]:
    return list(ID_COLUMNS) + list(adjacency_feature_names(with_style=True))


def _format_float(values: np.ndarray) -> list[str]:
    return [f"{v:.6g}" for v in values.tolist()]


def rows(building_id: int, occupancy: np.ndarray, style: np.ndarray) -> tuple[np.ndarray, bytes]:
    """``(coords, rows)``: the occupied cells (``np.nonzero`` order) and their CSV rows;
    integers are written as integers, other values with 6 significant digits."""
    coords, feats = adjacency_features(occupancy, style)
    ints = feats.astype(np.int64)
    exact = (ints == feats).all(axis=0)
    columns = [[str(v) for v in col] if exact[i] else _format_float(feats[:, i])
               for i, col in enumerate(ints.T.tolist())]
    ids = [f"{int(building_id)},{x},{y},{z}" for x, y, z in coords.tolist()]
    lines = (",".join(row) for row in zip(ids, *columns))
    return coords, ("\n".join(lines) + "\n").encode() if len(coords) else b""


def read(path: str | os.PathLike):
    """``adjacency.csv`` -> ``(ids int64[N, 4], features float32[N, F], feature names)``.

    Ids are whole numbers (building id 0..2^31-1, cell coordinates 0..255: the grids
    proc-ml writes), each cell on one row only, features finite numbers within float32's range."""
    path = Path(path)
    head = header()
    ids, feats, lines = [], [], []
    for n, f in read_rows(path, head, len(head)):
        lines.append(n)
        ids.append(numbers(path, n, f[:1], int, 0, MAX_ID, head[:1])
                   + numbers(path, n, f[1:4], int, 0, MAX_AXIS - 1, head[1:4]))
        feats.append(numbers(path, n, f[4:], float, -3.0e38, 3.0e38, head[4:]))
    check_unique_cells(path, ids, lines)
    return (np.array(ids, dtype=np.int64).reshape(-1, 4),
            np.array(feats, dtype=np.float32).reshape(-1, len(head) - 4), head[4:])
