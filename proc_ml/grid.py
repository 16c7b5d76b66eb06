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


def _along(axis: int, index) -> tuple:
    """Index tuple selecting ``index`` (a slice or an int) on ``axis`` of an [X, Y, Z] grid."""
    return (slice(None),) * axis + (index,)


_HEAD, _TAIL = slice(None, -1), slice(1, None)


def neighbours(occupancy: np.ndarray) -> np.ndarray:
    """Occupancy of the six neighbours of every cell: ``bool[X, Y, Z, 6]``."""
    occ = np.asarray(occupancy, dtype=bool)
    out = np.zeros(occ.shape + (6,), dtype=bool)
    for axis in range(3):
        head, tail = _along(axis, _HEAD), _along(axis, _TAIL)
        out[head + (Ellipsis, 2 * axis)] = occ[tail]
        out[tail + (Ellipsis, 2 * axis + 1)] = occ[head]
    return out


def exterior_faces_by_direction(occupancy: np.ndarray) -> np.ndarray:
    """``bool[6, X, Y, Z]``: ``exterior_faces`` with the direction first (contiguous per direction)."""
    occ = np.ascontiguousarray(occupancy, dtype=bool)
    ext = np.empty((6,) + occ.shape, dtype=bool)
    # Generation calls this once per building and it dominates on small grids, so each
    # direction is one contiguous pass over the flattened grid (a neighbour along an axis
    # is a fixed flat offset away) plus a fix-up of the boundary layer whose flat
    # neighbour wraps round. For booleans a > b is a & ~b.
    flat, flat_ext = occ.reshape(-1), ext.reshape(6, -1)
    X, Y, Z = occ.shape
    for axis, step in enumerate((Y * Z, Z, 1)):
        plus, minus = 2 * axis, 2 * axis + 1
        np.greater(flat[:-step], flat[step:], out=flat_ext[plus, :-step])
        np.greater(flat[step:], flat[:-step], out=flat_ext[minus, step:])
        first, last = _along(axis, 0), _along(axis, -1)
        ext[plus][last] = occ[last]
        ext[minus][first] = occ[first]
    return ext


def exterior_faces(occupancy: np.ndarray) -> np.ndarray:
    """``bool[X, Y, Z, 6]``: True where a face exists (occupied cell, empty neighbour)."""
    by_direction = exterior_faces_by_direction(occupancy)
    ext = np.empty(by_direction.shape[1:] + (6,), dtype=bool)
    for d in range(6):
        ext[..., d] = by_direction[d]
    return ext


def check_occupancy(occupancy: np.ndarray, what: str = "occupancy") -> np.ndarray:
    occ = np.asarray(occupancy)
    if occ.ndim != 3:
        raise ValueError(f"{what}: expected a 3-D grid [X, Y, Z], got shape {occ.shape}")
    return occ.astype(bool)


def components(occupancy: np.ndarray) -> tuple[np.ndarray, int]:
    """The face-connected parts of the occupied cells: ``(int64[X, Y, Z], count)``, each
    occupied cell labelled 0..count-1 (in order of their first cell), empty cells -1."""
    occ = np.asarray(occupancy, dtype=bool)
    cells = np.flatnonzero(occ)
    out = np.full(occ.shape, -1, dtype=np.int64)
    if not cells.size:
        return out, 0
    compact = np.full(occ.size, -1, dtype=np.int64)
    compact[cells] = np.arange(cells.size)
    flat = compact.reshape(occ.shape)
    pairs = []
    for axis in range(3):          # every pair of occupied cells sharing a face
        head, tail = _along(axis, _HEAD), _along(axis, _TAIL)
        both = occ[head] & occ[tail]
        pairs.append(np.stack([flat[head][both], flat[tail][both]], axis=1))
    a, b = np.concatenate(pairs).T
    _, labels = np.unique(linked_roots(cells.size, a, b), return_inverse=True)
    out.reshape(-1)[cells] = labels.reshape(-1)
    return out, int(labels.max()) + 1


def masses(occupancy: np.ndarray) -> list[tuple[tuple[slice, slice, slice], np.ndarray]]:
    """The masses standing apart in a grid (several buildings in one mesh), as
    ``(box, columns)`` pairs: ``box`` the slices of the mass's cells in the grid, from its
    lowest cell up; ``columns`` bool[box X, box Y], its footprint within the box (another
    mass may reach into the box: ``occupancy[box] & columns[:, :, None]`` are the mass's own
    cells). A mass is a group of cells whose footprints touch along a side: the cells over
    one footprint belong together, so an upper storey that overhangs or a piece floating
    over a roof stays with its building, and buildings meeting only at a corner stand apart.
    In order of their first column; an empty grid has none."""
    occ = np.asarray(occupancy, dtype=bool)
    footprint, count = components(occ.any(axis=2)[:, :, None])
    footprint = footprint[:, :, 0]
    out = []
    for g in range(count):
        xs, ys = np.nonzero(footprint == g)
        x, y = slice(int(xs.min()), int(xs.max()) + 1), slice(int(ys.min()), int(ys.max()) + 1)
        columns = footprint[x, y] == g
        zs = np.nonzero((occ[x, y] & columns[:, :, None]).any(axis=(0, 1)))[0]
        out.append(((x, y, slice(int(zs.min()), int(zs.max()) + 1)), columns))
    return out


def buildings(occupancy: np.ndarray, ids=None,
              separate: bool = True) -> list[tuple[tuple[slice, slice, slice], np.ndarray]]:
    """The buildings of a grid as ``(box, own)`` pairs: ``box`` the slices of a building's
    cells from its lowest up, ``own`` bool[box] its cells. ``ids`` (int[X, Y, Z], a building
    number >= 0 on every filled cell, the rest ignored: the pieces of the input) says which
    cells are which building, numbers standing on the same ground (``stacked``) being one;
    with ``separate`` each building's masses standing apart (``masses``) are buildings of
    their own. ``ValueError`` when ``ids`` does not fit the grid."""
    occ = np.asarray(occupancy, dtype=bool)
    if ids is None:
        groups = [occ]
    else:
        ids = np.asarray(ids)
        if ids.shape != occ.shape or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"buildings grid {list(ids.shape)} ({ids.dtype}) is not an integer "
                             f"grid of the occupancy grid's shape {list(occ.shape)}")
        if (ids[occ] < 0).any():
            raise ValueError(f"buildings grid: {int((ids[occ] < 0).sum())} filled cell(s) have "
                             f"no building number (>= 0)")
        groups = [occ & np.isin(ids, numbers) for numbers in stacked(occ, ids)]
    out = []
    for cells in groups:
        if not cells.any():
            continue
        if separate:
            out += [(box, cells[box] & columns[:, :, None]) for box, columns in masses(cells)]
        else:
            box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in np.nonzero(cells))
            out.append((box, cells[box]))
    return out


def stacked(occupancy: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    """The building numbers of ``ids`` on filled cells, grouped by footprint: numbers with a
    column (x, y) in common are one building, as a roof, a storey or a chimney modelled as a
    piece of its own stands on its building (buildings do not stand on each other), while
    row houses share a wall and no column."""
    occ = np.asarray(occupancy, dtype=bool)
    numbers = np.unique(ids[occ])
    first = np.full(occ.shape[:2], -1, dtype=np.int64)     # the first number over each column
    a, b = [], []
    for k, number in enumerate(numbers):
        columns = (occ & (ids == number)).any(axis=2)
        under = np.unique(first[columns & (first >= 0)])
        a += [k] * len(under)
        b += under.tolist()
        first[columns & (first < 0)] = k
    root = linked_roots(len(numbers), np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return [numbers[root == r] for r in np.unique(root)]


def linked_roots(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For ``count`` items joined by the links ``a[i] -- b[i]``: each item's smallest linked
    item (the same for every item of a connected group). Each item takes the smallest label
    it touches, then jumps to its label's label, until nothing changes."""
    root = np.arange(count)
    while True:
        before = root.copy()
        low = np.minimum(root[a], root[b])
        np.minimum.at(root, a, low)
        np.minimum.at(root, b, low)
        root = root[root]
        if np.array_equal(root, before):
            return root
