"""DCC geometry <-> proc-ml voxel grids (numpy only).

proc-ml grids are z-up with quads wound counter-clockwise seen from outside. Blender
shares both conventions. Houdini is y-up and treats a polygon whose vertices run
*clockwise* seen from outside as front-facing, so its adapter asks for ``up="y"`` and
``clockwise=True``; everything else is the same code for every DCC and the CLI.
"""

from __future__ import annotations

import numpy as np

from ..errors import ProcMLError
from ..units import check_cell_size
from ..voxelize import (MAX_CELLS_PER_AXIS, UP_AXES, VoxelGrid, detect_up, from_z_up, scale_note,
                        to_z_up, voxelize)

__all__ = ["CELL_CENTRE_TOLERANCE", "GeometryError", "MAX_CELLS_PER_AXIS", "UP_AXES",
           "VoxelGrid", "cell_centres", "from_z_up", "grid_from_cell_points",
           "grid_from_polygons", "join_meshes", "piece_numbers", "standing_axis", "to_z_up", "touching_groups",
           "triangulate"]

#: Voxel points further than this (in cells) from a cell centre mean a wrong cell size.
CELL_CENTRE_TOLERANCE = 0.25


class GeometryError(ProcMLError):
    """The input geometry cannot become a voxel grid (wrong cell size, not a massing...)."""


def _check_extent(shape, cell_size: float) -> None:
    if max(shape) > MAX_CELLS_PER_AXIS:
        raise GeometryError(
            f"the geometry is {max(shape)} cells across at cell size {cell_size:g} "
            f"(at most {MAX_CELLS_PER_AXIS}); raise the cell size")


def join_meshes(meshes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Several polygon meshes (``(points, counts, indices)`` each) as one: ``(points,
    counts, indices, pieces)``, ``pieces`` the mesh each polygon came from (0, 1, ...)."""
    points, counts, indices, pieces, offset = [], [], [], [], 0
    for k, (p, c, i) in enumerate(meshes):
        p = np.asarray(p, dtype=np.float64).reshape(-1, 3)
        c = np.asarray(c, dtype=np.int64).reshape(-1)
        points.append(p)
        counts.append(c)
        indices.append(np.asarray(i, dtype=np.int64).reshape(-1) + offset)
        pieces.append(np.full(len(c), k, dtype=np.int64))
        offset += len(p)
    return (np.concatenate(points), np.concatenate(counts), np.concatenate(indices),
            np.concatenate(pieces))


def touching_groups(boxes, tolerance: float = 1e-6) -> list[list[int]]:
    """Indices of ``boxes`` (``(low, high)`` world bounding boxes) grouped by touching or
    overlapping, transitively (the objects of one block: floors of a building, row houses),
    each group in the order given."""
    from ..grid import linked_roots

    n = len(boxes)
    low = np.array([b[0] for b in boxes], dtype=np.float64).reshape(n, 3)
    high = np.array([b[1] for b in boxes], dtype=np.float64).reshape(n, 3)
    touch = ((low[:, None] <= high[None] + tolerance) & (low[None] <= high[:, None] + tolerance)).all(axis=2)
    a, b = np.nonzero(np.triu(touch, 1))
    root = linked_roots(n, a, b)
    return [np.flatnonzero(root == r).tolist() for r in np.unique(root)] if n else []


def piece_numbers(values) -> tuple[np.ndarray, np.ndarray]:
    """A piece attribute's values (one per polygon or point: strings or integers, e.g.
    Houdini's ``name``) -> ``(numbers int64[N] >= 0, values of each number)``."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise GeometryError(f"a piece attribute has one value per element, got shape "
                            f"{list(values.shape)}")
    if values.dtype.kind == "f":
        raise GeometryError("a piece attribute is a string or an integer, not a float")
    strings = values.dtype.kind in "OUS"
    names, numbers = np.unique(values.astype(str) if strings else values, return_inverse=True)
    return numbers.reshape(-1).astype(np.int64), names.astype(object) if strings else names


def grid_from_cell_points(points, cell_size, pieces=None) -> VoxelGrid:
    """Voxel points at cell centres (e.g. Houdini's Points from Volume) -> occupancy.

    Cells are snapped to the lattice through the lowest point; a point far from any
    centre means the cell size does not match the points' spacing. ``pieces`` (an int
    >= 0 per point): the grid's ``pieces`` (the piece of each filled cell; of the first
    point in a cell).
    """
    size = check_cell_size(cell_size)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        return VoxelGrid(np.zeros((0, 0, 0), np.uint8), np.zeros(3), size)
    low = pts.min(axis=0)
    scaled = (pts - low) / size
    cells = np.rint(scaled).astype(np.int64)
    offset = float(np.abs(scaled - cells).max())
    if offset > CELL_CENTRE_TOLERANCE:
        raise GeometryError(
            f"voxel points are not at the cell centres of a {size:g} grid (a point lies "
            f"{offset:.2f} cells off); set the cell size to the spacing of the points")
    shape = tuple(int(n) for n in cells.max(axis=0) + 1)
    _check_extent(shape, size)
    occ = np.zeros(shape, dtype=np.uint8)
    occ[cells[:, 0], cells[:, 1], cells[:, 2]] = 1
    grid = VoxelGrid(occ, low - size / 2, size)
    if pieces is not None:
        pieces = np.asarray(pieces, dtype=np.int64).reshape(-1)
        if len(pieces) != len(pts):
            raise GeometryError(f"{len(pieces)} piece values for {len(pts)} points")
        grid.pieces = np.full(shape, -1, np.int32)
        grid.pieces[cells[::-1, 0], cells[::-1, 1], cells[::-1, 2]] = pieces[::-1]   # first wins
    return grid


def grid_from_polygons(points, counts, indices, cell_size, clockwise: bool = False,
                       pieces=None) -> VoxelGrid:
    """Polygon massing (z-up points, vertex counts + point indices) -> occupancy.

    Voxelised by ``proc_ml.voxelize`` exactly as ``proc-ml predict`` does for mesh files;
    ``VoxelGrid.notes`` holds ``proc_ml.voxelize.scale_note`` when the massing's size looks
    like other units than metres (the adapters show it to the artist). ``pieces`` (an int
    >= 0 per polygon, ``piece_numbers``): the grid's ``pieces`` says which piece each filled
    cell belongs to (``proc_ml.voxelize``).
    """
    size = check_cell_size(cell_size)
    triangles = triangulate(counts, indices)
    if pieces is not None:
        counts_ = np.asarray(counts, dtype=np.int64).reshape(-1)
        pieces = np.asarray(pieces, dtype=np.int64).reshape(-1)
        if len(pieces) != len(counts_):
            raise GeometryError(f"{len(pieces)} piece values for {len(counts_)} polygons")
        pieces = np.repeat(pieces, np.maximum(counts_ - 2, 0))     # triangulate's fans
    if clockwise:   # counter-clockwise again, so open meshes are filled on the inside
        triangles = triangles[:, ::-1]
    if len(triangles) == 0:
        return VoxelGrid(np.zeros((0, 0, 0), np.uint8), np.zeros(3), size)
    # only the points of faces: a loose vertex or edge (a stray pivot point, a guide line)
    # must not stretch the grid or move the pivot the walls are turned about
    used_ids = np.unique(triangles)
    used = np.asarray(points, dtype=np.float64).reshape(-1, 3)[used_ids]
    triangles = np.searchsorted(used_ids, triangles)
    try:
        grid = voxelize(used, triangles, size, closed=closed_by_topology(triangles, len(used)),
                        pieces=pieces)
    except ValueError as exc:
        raise GeometryError(str(exc)) from None
    note = scale_note(np.ptp(used, axis=0), size, "set Cell Size to")
    grid.notes = [note] if note else []
    return grid


def closed_by_topology(triangles: np.ndarray, n_points: int) -> bool | None:
    """True when every edge joins an even number of triangles by point index, else None.

    DCC meshes share points between faces, so this integer test settles most massing
    without ``voxelize``'s coordinate-merging check; ``None`` leaves that check to decide
    (e.g. polygon soups whose faces do not share points).
    """
    tris = np.asarray(triangles, dtype=np.int64)
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edges.sort(axis=1)
    _, counts = np.unique(edges[:, 0] * max(int(n_points), 1) + edges[:, 1], return_counts=True)
    return True if (counts % 2 == 0).all() else None


def cell_centres(grid: VoxelGrid) -> np.ndarray:
    """z-up world positions of the occupied cells' centres, in ``np.nonzero`` order."""
    cells = np.stack(np.nonzero(grid.occupancy), axis=1)
    return grid.origin + (cells + 0.5) * grid.cell_size


def triangulate(counts, indices) -> np.ndarray:
    """Polygons given as vertex counts + flat point indices -> fan triangles ``int64[T, 3]``."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if counts.sum() != len(indices):
        raise GeometryError(f"polygon vertex counts sum to {int(counts.sum())} "
                            f"but {len(indices)} vertex indices were given")
    keep = counts >= 3
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[keep]
    counts = counts[keep]
    n_tris = counts - 2
    first = np.repeat(starts, n_tris)
    step = np.arange(int(n_tris.sum())) - np.repeat(np.cumsum(n_tris) - n_tris, n_tris)
    return np.stack([indices[first], indices[first + step + 1], indices[first + step + 2]], axis=1)


def standing_axis(points, counts, indices, up: str) -> str | None:
    """The axis a polygon massing stands on when its walls and roofs clearly say it is
    another one than ``up`` (``proc_ml.voxelize.detect_up``, as ``proc-ml predict`` reads mesh
    files): a Z-up file read into a Y-up scene, or the other way round. None when it stands
    on ``up`` or the geometry does not tell. The adapters say how to stand it up."""
    if len(np.asarray(counts).reshape(-1)) == 0:
        return None
    found, sure = detect_up(np.asarray(points, dtype=np.float64), triangulate(counts, indices))
    return found if sure and found != up else None
