"""Polygons on a cell lattice <-> the cell faces of a voxel grid (numpy only).

The one mapping from DCC faces to the ``[X, Y, Z, 6]`` face arrays of proc-ml grids: an
axis-aligned rectangle on the ``cell_size`` lattice is split into unit cell faces, and each
unit face belongs to the occupied cell on one side of it (direction ``2 * axis`` for the
cell below it along the axis, its + face; ``2 * axis + 1`` for the cell above, its - face).
The export (``proc_ml.dcc.export``) labels faces with it and the correction loop
(``proc_ml.dcc.fixes``) maps ``part_fix`` onto a new prediction with it.
"""

from __future__ import annotations

import numpy as np

from .geometry import GeometryError

#: Corners closer than this (in cells) to a lattice point are on it.
LATTICE_TOLERANCE = 1e-3


def in_plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two axes spanning a face whose normal runs along ``normal`` (in increasing order)."""
    return np.where(normal == 0, 1, 0), np.where(normal == 2, 1, 2)


def rectangles(corners: np.ndarray):
    """Integer corners ``[F, 4, 3]`` -> (low corner, extent, normal axis, valid) per polygon.

    Valid: flat along exactly one axis, and the four corners are the four distinct
    corners of the rectangle they span.
    """
    low, high = corners.min(axis=1), corners.max(axis=1)
    extent = high - low
    flat = extent == 0
    normal = np.argmax(flat, axis=1)
    u, v = in_plane_axes(normal)
    def along(values, axis):   # values[f, ..., axis[f]]
        return np.take_along_axis(values, axis.reshape((-1,) + (1,) * (values.ndim - 1)),
                                  axis=-1)[..., 0]

    cu, cv = along(corners, u), along(corners, v)                         # [F, 4]
    lu, hu = along(low, u)[:, None], along(high, u)[:, None]
    lv, hv = along(low, v)[:, None], along(high, v)[:, None]
    on_edges = ((cu == lu) | (cu == hu)) & ((cv == lv) | (cv == hv))
    code = 2 * (cu == hu) + (cv == hv)
    distinct = (np.sort(code, axis=1) == np.arange(4)).all(axis=1)
    valid = (flat.sum(axis=1) == 1) & on_edges.all(axis=1) & distinct
    return low, extent, normal, valid


def unit_faces(low, extent, normal):
    """Split each rectangle into unit cell faces: (rect index, normal axis, low corner[3])."""
    u, v = in_plane_axes(normal)
    rows = np.arange(len(low))
    eu, ev = extent[rows, u], extent[rows, v]
    counts = eu * ev
    rect = np.repeat(rows, counts)
    local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    cell = low[rect].copy()
    faces = np.arange(len(rect))
    cell[faces, u[rect]] += local // ev[rect]
    cell[faces, v[rect]] += local % ev[rect]
    return rect, normal[rect], cell


def lattice_corners(corners: np.ndarray, origin, cell_size: float):
    """Polygon corners ``[F, 4, 3]`` -> (integer lattice corners, worst offset in cells per
    polygon) on the ``cell_size`` lattice through ``origin``."""
    scaled = (corners - origin) / cell_size
    lattice = np.rint(scaled)
    return lattice.astype(np.int64), np.abs(scaled - lattice).max(axis=(1, 2))


def face_owners(occ, rect, axis, cell):
    """Each unit face sits between two cells; the occupied one owns it.
    Returns (owner cell [F, 3], direction [F], on the surface: exactly one side occupied)."""
    shape = np.array(occ.shape)
    rows = np.arange(len(rect))
    below = cell.copy()
    below[rows, axis] -= 1
    inside_below = occupied(occ, below, shape)
    inside_above = occupied(occ, cell, shape)
    owner = np.where(inside_below[:, None], below, cell)
    direction = 2 * axis + np.where(inside_below, 0, 1)      # below owns it: its + face
    return owner, direction, inside_below != inside_above


def occupied(occ, cells, shape) -> np.ndarray:
    inside = ((cells >= 0) & (cells < shape)).all(axis=1)
    out = np.zeros(len(cells), dtype=bool)
    c = cells[inside]
    out[inside] = occ[c[:, 0], c[:, 1], c[:, 2]] > 0
    return out


def face_keys(occ, rect, axis, cell) -> np.ndarray:
    """The flat ``[X, Y, Z, 6]`` index of every unit face (the export's face mapping);
    a face off the outer surface or two polygons on one face is an error."""
    owner, direction, on_surface = face_owners(occ, rect, axis, cell)
    if not on_surface.all():
        raise GeometryError(f"prim {int(rect[np.argmin(on_surface)])} is not on the outer surface of "
                            f"the massing (is the massing closed, with no inner faces?)")
    key = np.ravel_multi_index((owner[:, 0], owner[:, 1], owner[:, 2], direction), occ.shape + (6,))
    unique, first = np.unique(key, return_index=True)
    if len(unique) != len(key):
        dup = np.setdiff1d(np.arange(len(key)), first)[0]
        raise GeometryError(f"prim {int(rect[dup])} overlaps another face")
    return key


def scatter_faces(shape, key, values, fill, dtype) -> np.ndarray:
    """Per-unit-face ``values`` into an ``[X, Y, Z, 6]`` array (``fill`` elsewhere)."""
    out = np.full(tuple(shape) + (6,), fill, dtype=dtype)
    out.reshape(-1)[key] = values
    return out


def faces_on_grid(occupancy, origin, cell_size: float, corners) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quads (``corners`` ``[F, 4, 3]``, z-up, the grid's frame) -> the exterior cell faces of
    ``occupancy`` they cover, by the mapping the export labels faces with.

    Returns ``(key, polygon, on_grid)``: ``key`` the flat index into an ``[X, Y, Z, 6]``
    face array of every covered face, ``polygon`` the quad covering it, and ``on_grid``
    (bool per quad) whether the quad is an axis-aligned rectangle on the lattice through
    ``origin`` whose every cell face is an exterior face of ``occupancy``.
    """
    occ = np.asarray(occupancy)
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 3)
    lattice, off = lattice_corners(corners, np.asarray(origin, dtype=np.float64), float(cell_size))
    low, extent, normal, valid = rectangles(lattice)
    on_grid = valid & (off <= LATTICE_TOLERANCE)
    keep = np.nonzero(on_grid)[0]
    rect, axis, cell = unit_faces(low[keep], extent[keep], normal[keep])
    owner, direction, on_surface = face_owners(occ, rect, axis, cell)
    on_grid[keep[np.unique(rect[~on_surface])]] = False
    good = on_grid[keep[rect]]
    key = np.ravel_multi_index((owner[good, 0], owner[good, 1], owner[good, 2], direction[good]),
                               occ.shape + (6,)) if good.any() else np.zeros(0, np.int64)
    return key.astype(np.int64), keep[rect[good]], on_grid


def turn_walls_to_axes(points: np.ndarray, quads: np.ndarray) -> tuple[np.ndarray, float]:
    """``(points, rotation_deg)``: z-up ``points`` of quads (``quads`` int[F, 4] point
    indices) whose walls all face one angle other than x / y -- the parts prediction of a
    turned mesh is turned back onto it -- turned about z so the walls run along the axes, and
    that angle (``proc_ml.alignment.dominant_wall_angle``); unchanged points and 0 when the
    walls already run along the axes."""
    from ..alignment import dominant_wall_angle, rotation_z
    from ..voxelize import ALIGN_TOLERANCE_DEG

    corners = points[quads]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0])
    rotation, _ = dominant_wall_angle(normals, np.linalg.norm(normals, axis=1))
    if abs(rotation) < ALIGN_TOLERANCE_DEG:
        return points, 0.0
    pivot = points.mean(axis=0)
    return (points - pivot) @ rotation_z(rotation) + pivot, float(rotation)
