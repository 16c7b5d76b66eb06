"""How a side face becomes a part: the opening-coverage rule shared by the real-building
import (``proc_ml.citygml``) and the facade grammar (``proc_ml.procedural.facades``).

Openings (windows, doors) are rectangles or polygons in metres on a facade; a cell face is
rasterised into ``SUB`` x ``SUB`` bins and each bin is covered or not. A face is **door**
when doors cover at least ``DOOR_THRESHOLD`` of it or it is the main face of a door, else
**window** when windows cover at least ``WINDOW_THRESHOLD`` of it or it is the main face
of a window, else **wall**. The main face of an opening is the face holding most of it (at
least ``MAIN_FACE_MIN_AREA`` m^2), so an opening split between two faces is never lost.
Defined once here so a generated building and an imported one mean the same thing.
"""

from __future__ import annotations

import numpy as np

#: A cell is occupied when more than this fraction of it is inside.
FILL_THRESHOLD = 0.5
#: Coverage rasters: SUB x SUB bins per cell face (0.25 m at 3 m cells).
SUB = 12
#: A bin goes to the nearest exterior face of its direction within this many cells.
DEPTH_TOLERANCE = 1.5
#: Share of a side face covered by doors / windows that makes it a door / window face.
DOOR_THRESHOLD = 0.10
WINDOW_THRESHOLD = 0.08
#: The face holding most of an opening is its main face when it holds at least this (m^2).
MAIN_FACE_MIN_AREA = 0.25


def side_parts(window_cover: np.ndarray, door_cover: np.ndarray, main_window: np.ndarray,
               main_door: np.ndarray, wall: int, window: int, door: int) -> np.ndarray:
    """``int8`` part per side face from its window / door coverage shares and main-face
    flags (arrays of one shape), by the rule above."""
    is_door = (door_cover >= DOOR_THRESHOLD) | main_door
    is_window = (window_cover >= WINDOW_THRESHOLD) | main_window
    return np.where(is_door, door, np.where(is_window, window, wall)).astype(np.int8)


def main_faces(opening: np.ndarray, face: np.ndarray, bin_area: float,
               n_faces: int) -> np.ndarray:
    """``bool[n_faces]``: faces that hold the largest share of an opening (at least
    ``MAIN_FACE_MIN_AREA`` m^2). ``opening`` and ``face``: one entry per covered bin (each
    bin counted once per opening)."""
    out = np.zeros(n_faces, dtype=bool)
    if len(opening) == 0:
        return out
    key = np.asarray(opening, dtype=np.int64) * n_faces + np.asarray(face, dtype=np.int64)
    pairs, counts = np.unique(key, return_counts=True)
    owner, where = pairs // n_faces, pairs % n_faces
    order = np.lexsort((-counts, owner))
    first = order[np.r_[True, owner[order[1:]] != owner[order[:-1]]]]
    keep = counts[first] * bin_area >= MAIN_FACE_MIN_AREA
    out[where[first[keep]]] = True
    return out
