"""grids/b{id:06d}.npz: one building as a voxel grid with a part on every exterior face.

Arrays: ``occupancy`` uint8[X, Y, Z], ``labels`` int8[X, Y, Z, 6] (-1 where no face),
``style`` float32[9], ``archetype`` (0-d str), ``building_id`` (0-d int64). Written with
fixed zip timestamps, so the same building gives the same bytes.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..encoding import STYLE_FEATURES
from ..errors import DatasetError
from ..fileio import write_npz
from ..grid import exterior_faces


@dataclass
class BuildingRecord:
    """One building as stored in ``grids/*.npz``."""
    building_id: int
    archetype: str
    occupancy: np.ndarray  # uint8[X, Y, Z]
    labels: np.ndarray     # int8[X, Y, Z, 6]
    style: np.ndarray      # float32[len(STYLE_FEATURES)]


def arrays(building_id: int, archetype: str, occupancy, labels, style) -> dict:
    return {"occupancy": np.asarray(occupancy).astype(np.uint8),
            "labels": np.asarray(labels).astype(np.int8),
            "style": np.asarray(style, dtype=np.float32),
            "archetype": np.array(archetype),
            "building_id": np.array(int(building_id), dtype=np.int64)}


def write(path: str | os.PathLike, building_id: int, archetype: str, occupancy, labels, style) -> None:
    write_npz(path, arrays(building_id, archetype, occupancy, labels, style))


def read(path: str | os.PathLike, n_parts: int | None = None) -> BuildingRecord:
    """Read and check one grid file: shapes, dtypes, and labels exactly on exterior faces."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            found = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    for key in ("occupancy", "labels", "style"):
        if key not in found:
            raise DatasetError(f"{path}: missing array '{key}'")
    occ, labels, style = found["occupancy"], found["labels"], found["style"]
    if occ.ndim != 3:
        raise DatasetError(f"{path}: field 'occupancy' must be 3-D [X, Y, Z], got shape {occ.shape}")
    if labels.shape != occ.shape + (6,):
        raise DatasetError(f"{path}: field 'labels' must have shape {occ.shape + (6,)}, got {labels.shape}")
    if style.shape != (len(STYLE_FEATURES),):
        raise DatasetError(f"{path}: field 'style' must have {len(STYLE_FEATURES)} values, got shape {style.shape}")
    if labels.size and labels.min() < -1:
        raise DatasetError(f"{path}: field 'labels' holds {int(labels.min())}; "
                           f"only -1 (no face) and part indices are allowed")
    if not np.array_equal(labels >= 0, exterior_faces(occ)):
        raise DatasetError(f"{path}: field 'labels' must label exactly the exterior faces of 'occupancy'")
    if n_parts is not None and labels.max(initial=-1) >= n_parts:
        raise DatasetError(f"{path}: field 'labels' holds part {int(labels.max())}, "
                           f"but the vocabulary has {n_parts} parts")
    return BuildingRecord(int(found.get("building_id", -1)), str(found.get("archetype", "")),
                          occ.astype(np.uint8), labels.astype(np.int8), style.astype(np.float32))
