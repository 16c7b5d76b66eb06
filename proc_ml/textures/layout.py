"""Facades of a voxel building as 2-D module grids (numpy only).

A facade is what one side direction of a building shows: its exterior faces laid out in
a grid, one module per cell, columns running left to right as seen from outside and rows
bottom to top (z). Two views are built from the same faces:

* ``front_views``: per side direction, the outermost face at every (column, z) — the
  facade as a viewer outside sees it; these become training pairs;
* ``facade_sheets``: per side direction *and plane* (the cell coordinate along the
  normal), every face of that plane — together the sheets cover every side face exactly
  once, so a building can be textured without gaps (courtyards and set-backs included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import DIRECTION_VECTORS, NO_PART, SIDE_DIRECTIONS, exterior_faces

#: Unit vector pointing to the viewer's right for each side direction (normal x up).
RIGHT_VECTORS = {0: (0, 1, 0), 1: (0, -1, 0), 2: (-1, 0, 0), 3: (1, 0, 0)}


@dataclass
class Facade:
    """A grid of modules: ``parts[z, column]`` (row 0 = lowest), -1 where no face is."""
    direction: int
    plane: int | None          # cell coordinate along the normal (sheets), None (front views)
    left: int                  # ``right``-coordinate of the left edge of column 0
    bottom: int                # z of row 0
    parts: np.ndarray          # int8[rows, columns]
    faces: np.ndarray          # int64[F, 3] (cell x, y, z) of every face shown, by module
    modules: np.ndarray        # int64[F, 2] (row, column) of each face in ``faces``

    @property
    def shape(self) -> tuple[int, int]:
        return self.parts.shape


def face_columns(cells: np.ndarray, direction: int) -> np.ndarray:
    """Left-edge ``right``-coordinate of each cell's face in ``direction`` (integer)."""
    right = np.asarray(RIGHT_VECTORS[direction], dtype=np.int64)
    # a cell spans [c, c+1] on every axis; along a negative axis its left edge is -(c+1)
    return cells @ right + min(int(right.sum()), 0)


def _side_faces(occupancy: np.ndarray, labels: np.ndarray, direction: int):
    ext = exterior_faces(occupancy)[..., direction]
    cells = np.argwhere(ext).astype(np.int64)
    parts = np.asarray(labels)[cells[:, 0], cells[:, 1], cells[:, 2], direction]
    return cells, parts


def _facade(direction, plane, cells, parts) -> Facade:
    columns = face_columns(cells, direction)
    left, bottom = int(columns.min()), int(cells[:, 2].min())
    rows, cols = cells[:, 2] - bottom, columns - left
    grid = np.full((int(rows.max()) + 1, int(cols.max()) + 1), NO_PART, dtype=np.int8)
    grid[rows, cols] = parts
    return Facade(direction, plane, left, bottom, grid, cells, np.stack([rows, cols], axis=1))


def front_views(occupancy: np.ndarray, labels: np.ndarray) -> list[Facade]:
    """One facade per side direction that has faces: the outermost face per module."""
    out = []
    for d in SIDE_DIRECTIONS:
        cells, parts = _side_faces(occupancy, labels, d)
        if not len(cells):
            continue
        depth = cells @ DIRECTION_VECTORS[d]
        key = face_columns(cells, d) * 100_003 + cells[:, 2]
        # outermost first, then keep the first face of every (column, z)
        order = np.lexsort((-depth, key))
        _, first = np.unique(key[order], return_index=True)
        keep = order[first]
        out.append(_facade(d, None, cells[keep], parts[keep]))
    return out


def facade_sheets(occupancy: np.ndarray, labels: np.ndarray) -> list[Facade]:
    """One facade per (side direction, plane): every side face belongs to exactly one."""
    ext = exterior_faces(occupancy)
    x, y, z, d = np.nonzero(ext)
    parts = np.asarray(labels)[x, y, z, d]
    return sheets_from_faces(np.stack([x, y, z], axis=1), d, parts)


def sheets_from_faces(cells: np.ndarray, directions: np.ndarray, parts: np.ndarray) -> list[Facade]:
    """``facade_sheets`` of a face list (cell, direction, part per face; up/down ignored)."""
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    directions, parts = np.asarray(directions), np.asarray(parts)
    out = []
    for d in SIDE_DIRECTIONS:
        mine = directions == d
        if not mine.any():
            continue
        normal_axis = int(np.flatnonzero(DIRECTION_VECTORS[d])[0])
        planes = cells[mine, normal_axis]
        for plane in np.unique(planes):
            mask = planes == plane
            out.append(_facade(d, int(plane), cells[mine][mask], parts[mine][mask]))
    return out


def top_edges(parts: np.ndarray) -> np.ndarray:
    """``bool[rows, columns]``: modules with a face whose module above has none."""
    has = parts != NO_PART
    above = np.zeros_like(has)
    above[:-1] = has[1:]
    return has & ~above
