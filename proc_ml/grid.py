"""Voxel-grid face geometry shared by generation, encoding, meshing and inference (numpy only).

Grids are indexed ``[x, y, z]`` with z up. Every cell has six faces in the fixed order
``+x, -x, +y, -y, +z, -z``. A face is *exterior* when its cell is occupied and the
neighbour across it is empty or outside the grid; only exterior faces carry a part.
"""

from __future__ import annotations

import numpy as np

DIRECTIONS = ("+x", "-x", "+y", "-y", "+z", "-z")
DIRECTION_VECTORS = np.array(
    [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)], dtype=np.int64
)
SIDE_DIRECTIONS = (0, 1, 2, 3)
UP, DOWN = 4, 5
NO_PART = -1


def along_axis(direction: int) -> int:
    """The horizontal axis that runs along a side facade: y for +-x faces, x for +-y faces."""
    return 1 if direction in (0, 1) else 0


def shifted(grid: np.ndarray, offset: tuple[int, int, int], fill=0) -> np.ndarray:
    """``out[c] = grid[c + offset]`` over the first three axes; outside the grid reads ``fill``."""
    out = np.full_like(grid, fill)
    src, dst = [], []
    for axis, step in enumerate(offset):
        n = grid.shape[axis]
        if step >= 0:
            src.append(slice(step, n))
            dst.append(slice(0, max(n - step, 0)))
        else:
            src.append(slice(0, n + step))
            dst.append(slice(-step, n))
    out[tuple(dst)] = grid[tuple(src)]
    return out


def neighbours(occupancy: np.ndarray) -> np.ndarray:
    """Occupancy of the six neighbours of every cell: ``bool[X, Y, Z, 6]``."""
    occ = np.asarray(occupancy, dtype=bool)
    padded = np.pad(occ, 1)
    X, Y, Z = occ.shape
    out = np.empty(occ.shape + (6,), dtype=bool)
    for i, (dx, dy, dz) in enumerate(DIRECTION_VECTORS):
        out[..., i] = padded[1 + dx:1 + dx + X, 1 + dy:1 + dy + Y, 1 + dz:1 + dz + Z]
    return out


def exterior_faces(occupancy: np.ndarray) -> np.ndarray:
    """``bool[X, Y, Z, 6]``: True where a face exists (occupied cell, empty neighbour)."""
    occ = np.asarray(occupancy, dtype=bool)
    return occ[..., None] & ~neighbours(occ)


def check_occupancy(occupancy: np.ndarray, what: str = "occupancy") -> np.ndarray:
    occ = np.asarray(occupancy)
    if occ.ndim != 3:
        raise ValueError(f"{what}: expected a 3-D grid [X, Y, Z], got shape {occ.shape}")
    return occ.astype(bool)
