"""buildings.csv: one row per building (id, archetype, grid size, cells, faces, style)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..encoding import STYLE_FEATURES
from ..errors import DatasetError
from ..grid import NO_PART
from .tables import MAX_AXIS, MAX_ID, numbers, read_rows


def header() -> list[str]:
    return ["building_id", "archetype", "size_x", "size_y", "size_z", "cells", "faces",
            *STYLE_FEATURES]


def row(building_id: int, archetype: str, occupancy: np.ndarray, labels: np.ndarray,
        style: np.ndarray) -> bytes:
    X, Y, Z = occupancy.shape
    faces = int((np.asarray(labels) != NO_PART).sum())
    cells = int(np.asarray(occupancy).sum())
    values = ",".join(f"{v:g}" for v in np.asarray(style, dtype=np.float32).tolist())
    return f"{int(building_id)},{archetype},{X},{Y},{Z},{cells},{faces},{values}\n".encode()


def read(path: str | os.PathLike) -> list[dict]:
    """``buildings.csv`` -> one dict per building: ids, archetype, sizes, counts, style."""
    path = Path(path)
    head = header()
    n_style = len(STYLE_FEATURES)
    out, first = [], {}
    for lineno, fields in read_rows(path, head, len(head)):
        ints = (numbers(path, lineno, fields[:1], int, 0, MAX_ID, head[:1])
                + numbers(path, lineno, fields[2:5], int, 1, MAX_AXIS, head[2:5])
                + numbers(path, lineno, fields[5:-n_style], int, 0, 6 * MAX_AXIS ** 3, head[5:-n_style]))
        style = numbers(path, lineno, fields[-n_style:], float, columns=head[-n_style:])
        if ints[0] in first:
            raise DatasetError(f"{path}: line {lineno}: building {ints[0]} is listed twice "
                               f"(first on line {first[ints[0]]})")
        first[ints[0]] = lineno
        out.append({"building_id": ints[0], "archetype": fields[1],
                    "size": tuple(ints[1:4]), "cells": ints[4], "faces": ints[5],
                    "style": np.array(style, dtype=np.float32)})
    return out
