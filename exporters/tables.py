"""CSV tables: faces.csv (one-hot parts), adjacency.csv (features), buildings.csv."""

from __future__ import annotations

import numpy as np

from proc_ml.encoding import STYLE_FEATURES, adjacency_feature_names, adjacency_features
from proc_ml.grid import DIRECTIONS

ID_COLUMNS = ("building_id", "x", "y", "z")


def faces_header(parts) -> list[str]:
    return list(ID_COLUMNS) + [f"{d}:{p}" for d in DIRECTIONS for p in parts]


def adjacency_header() -> list[str]:
    return list(ID_COLUMNS) + list(adjacency_feature_names(with_style=True))


def buildings_header() -> list[str]:
    return ["building_id", "archetype", "size_x", "size_y", "size_z", "cells", "faces",
            *STYLE_FEATURES]


def one_hot_faces(labels: np.ndarray, coords: np.ndarray, n_parts: int) -> np.ndarray:
    """``uint8[N, 6*K]`` one-hot blocks per direction; all zeros where a face is absent."""
    x, y, z = coords.T
    lab = labels[x, y, z].astype(np.int64)                         # [N, 6]
    out = np.zeros((len(coords), 6, n_parts), dtype=np.uint8)
    n, d = np.nonzero(lab >= 0)
    out[n, d, lab[n, d]] = 1
    return out.reshape(len(coords), -1)


def _prefix(building_id: int, coords: np.ndarray) -> list[bytes]:
    return [f"{building_id},{x},{y},{z},".encode() for x, y, z in coords.tolist()]


def faces_rows(building, n_parts: int, coords: np.ndarray) -> bytes:
    """CSV rows (no header) for one building; the 0/1 body is built as bytes in numpy."""
    body = one_hot_faces(building.labels, coords, n_parts)
    chars = np.full((len(coords), body.shape[1] * 2), ord(","), dtype=np.uint8)
    chars[:, 0::2] = body + ord("0")
    chars[:, -1] = ord("\n")
    rows = chars.tobytes()
    width = chars.shape[1]
    prefixes = _prefix(building.building_id, coords)
    return b"".join(p + rows[i * width:(i + 1) * width] for i, p in enumerate(prefixes))


def opara_rows(faces_csv_rows: bytes) -> bytes:
    """The headerless 0/1 layout of the SEED talk's Houdini CSV: the one-hot block only."""
    return b"".join(line.split(b",", 4)[4] + b"\n" for line in faces_csv_rows.splitlines())


def _format_float(values: np.ndarray) -> list[str]:
    return [f"{v:.6g}" for v in values.tolist()]


def adjacency_rows(building) -> tuple[np.ndarray, bytes]:
    """``(coords, CSV rows)``: neighbour occupancy, context and style per occupied cell."""
    coords, feats = adjacency_features(building.occupancy, building.style.vector())
    ints = feats.astype(np.int64)
    exact = (ints == feats).all(axis=0)
    columns = [[str(v) for v in col] if exact[i] else _format_float(feats[:, i])
               for i, col in enumerate(ints.T.tolist())]
    ids = [f"{building.building_id},{x},{y},{z}" for x, y, z in coords.tolist()]
    lines = (",".join(row) for row in zip(ids, *columns))
    return coords, ("\n".join(lines) + "\n").encode() if len(coords) else b""


def buildings_row(building) -> bytes:
    X, Y, Z = building.occupancy.shape
    faces = int((building.labels >= 0).sum())
    cells = int(building.occupancy.sum())
    style = ",".join(f"{v:g}" for v in building.style.vector().tolist())
    return (f"{building.building_id},{building.archetype},{X},{Y},{Z},{cells},{faces},"
            f"{style}\n").encode()


def header_line(columns) -> bytes:
    return (",".join(columns) + "\n").encode()


__all__ = ["faces_header", "adjacency_header", "buildings_header", "faces_rows",
           "opara_rows", "adjacency_rows", "buildings_row", "header_line", "one_hot_faces"]
