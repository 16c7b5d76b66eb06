"""Meshes to the occupancy grids the building nets read, and predictions back onto meshes.

numpy + trimesh only (the inference path never imports torch or scipy).

* Closed meshes (every edge shared by an even number of triangles once coincident
  vertices are merged) are filled exactly: a cell is occupied when its centre is inside,
  found by casting one vertical ray per column and counting crossings (parity).
* Open meshes (no floor, holes, single surfaces) get their surface cells, then every
  empty region that cannot be reached from the sides or the top of the grid is filled.
  The bottom counts as closed (buildings are often modelled without a floor), so a box
  with no bottom face still fills solid.

Axes: proc-ml grids are z-up. glTF (GLB/GLTF) is y-up by convention, so those files are
rotated into z-up on load (``up="y"``) and predictions are rotated back on output; OBJ,
PLY, STL and OFF default to z-up. ``VoxelGrid`` keeps ``origin`` and ``cell_size`` (in the
z-up frame) so every cell and face maps back to world space.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .grid import DIRECTION_VECTORS
from .meshing import UP_AXES, QuadMesh, from_z_up, quad_mesh, to_z_up

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
#: Grids larger than this on any axis are refused (usually a unit mismatch: cm vs m).
MAX_CELLS_PER_AXIS = 256
# Column rays are moved off the cell centres by this fraction of a cell, so they never
# pass exactly through the edges of axis-aligned meshes built on the same grid.
_RAY_JITTER = (1.234567e-4, 2.345678e-4)


def default_up(path: str | os.PathLike) -> str:
    return "y" if Path(path).suffix.lower() in (".glb", ".gltf") else "z"


@dataclass
class VoxelGrid:
    """An occupancy grid and where it sits in the source mesh's world."""
    occupancy: np.ndarray   # uint8[X, Y, Z], z up
    origin: np.ndarray      # float64[3]: min corner of cell (0, 0, 0), z-up frame
    cell_size: float
    up: str = "z"           # up axis of the source mesh's frame
    closed: bool = True     # filled by parity (closed mesh) or surface + fill (open mesh)

    def quads(self, labels: np.ndarray | None = None) -> QuadMesh:
        """The labelled quad mesh of the grid, in the source mesh's frame and units."""
        mesh = quad_mesh(self.occupancy, labels, self.cell_size, self.origin)
        mesh.vertices = from_z_up(mesh.vertices, self.up)
        return mesh


def load_mesh(path: str | os.PathLike):
    """A mesh file as one ``trimesh.Trimesh`` (scenes are flattened with their transforms)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise DatasetError(f"{path}: unsupported mesh format '{path.suffix}' "
                           f"(expected {', '.join(MESH_SUFFIXES)})")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise DatasetError(f"{path}: cannot read mesh ({type(exc).__name__}: {exc})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise DatasetError(f"{path}: no triangles in the mesh")
    return mesh


def is_closed(vertices: np.ndarray, triangles: np.ndarray) -> bool:
    """Every edge used by an even number of triangles after merging coincident vertices."""
    _, index = np.unique(np.round(vertices, 9), axis=0, return_inverse=True)
    tri = index.reshape(-1)[triangles]
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(np.all(counts % 2 == 0))


def voxelize(vertices: np.ndarray, triangles: np.ndarray, cell_size: float, up: str = "z",
             closed: bool | None = None) -> VoxelGrid:
    """Voxelise triangles (source frame, ``up`` axis) at ``cell_size``; see the module doc."""
    if not cell_size > 0:
        raise ValueError(f"cell size must be > 0, got {cell_size}")
    verts = to_z_up(vertices, up)
    tris = np.asarray(triangles, dtype=np.int64)
    if len(tris) == 0:
        raise ValueError("the mesh has no triangles")
    origin = verts.min(axis=0)
    shape = tuple(max(1, math.ceil(e / cell_size - 1e-6)) for e in verts.max(axis=0) - origin)
    if max(shape) > MAX_CELLS_PER_AXIS:
        raise ValueError(f"the mesh spans {list(shape)} cells at cell size {cell_size:g}; at most "
                         f"{MAX_CELLS_PER_AXIS} per axis (is the mesh in other units? use a "
                         f"larger cell size)")
    closed = is_closed(verts, tris) if closed is None else closed
    corners = verts[tris]
    occ = (_parity_fill(corners, origin, cell_size, shape) if closed
           else _fill_enclosed(_surface_cells(corners, origin, cell_size, shape)))
    return VoxelGrid(occ.astype(np.uint8), origin, float(cell_size), up, closed)


def voxelize_mesh(mesh, cell_size: float, up: str = "z") -> VoxelGrid:
    return voxelize(np.asarray(mesh.vertices), np.asarray(mesh.faces), cell_size, up)


def voxelize_file(path: str | os.PathLike, cell_size: float, up: str | None = None):
    """``(VoxelGrid, trimesh.Trimesh)`` for a mesh file; ``up`` defaults by file type."""
    mesh = load_mesh(path)
    try:
        return voxelize_mesh(mesh, cell_size, up or default_up(path)), mesh
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from None


# -- closed meshes: one vertical ray per column ------------------------------------------
def _column_hits(corners, origin, cell, shape):
    """``(column index, z)`` of every crossing of a column's ray with a triangle."""
    X, Y, _ = shape
    xy = corners[:, :, :2]
    lo = np.ceil((xy.min(axis=1) - origin[:2]) / cell - 0.5 - np.array(_RAY_JITTER)).astype(np.int64)
    hi = np.floor((xy.max(axis=1) - origin[:2]) / cell - 0.5 - np.array(_RAY_JITTER)).astype(np.int64)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, [X - 1, Y - 1])
    nx, ny = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0), np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    count = nx * ny
    tri = np.repeat(np.arange(len(corners)), count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    ix = lo[tri, 0] + local // ny[tri]
    iy = lo[tri, 1] + local % ny[tri]
    px = origin[0] + (ix + 0.5 + _RAY_JITTER[0]) * cell
    py = origin[1] + (iy + 0.5 + _RAY_JITTER[1]) * cell
    a, b, c = corners[tri, 0], corners[tri, 1], corners[tri, 2]
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-12 * cell * cell     # vertical triangles are never crossed
    safe = np.where(ok, det, 1.0)
    dx, dy = px - a[:, 0], py - a[:, 1]
    u = (dx * e2[:, 1] - dy * e2[:, 0]) / safe
    v = (e1[:, 0] * dy - e1[:, 1] * dx) / safe
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
    z = a[:, 2] + u * e1[:, 2] + v * e2[:, 2]
    return (ix * Y + iy)[hit], z[hit]


def _parity_fill(corners, origin, cell, shape) -> np.ndarray:
    X, Y, Z = shape
    column, z = _column_hits(corners, origin, cell, shape)
    # A crossing at height z lies below the centres of cells first..Z-1.
    first = np.clip(np.floor((z - origin[2]) / cell - 0.5).astype(np.int64) + 1, 0, Z)
    below = np.zeros((X * Y, Z + 1), dtype=np.int64)
    np.add.at(below, (column, first), 1)
    inside = np.cumsum(below, axis=1)[:, :Z] % 2 == 1
    return inside.reshape(X, Y, Z)


# -- open meshes: surface cells, then fill what the outside cannot reach ----------------
def _surface_cells(corners, origin, cell, shape) -> np.ndarray:
    """Cells the surface passes through, from points spaced at most cell/3 on every triangle.

    Points are nudged against the triangle normal, so a surface lying exactly on a cell
    boundary marks the cell behind it (inside, for outward-facing normals).
    """
    occ = np.zeros(shape, dtype=bool)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    edge = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
    steps = np.maximum(1, np.ceil(edge / (cell / 3.0)).astype(np.int64))
    for n in np.unique(steps):
        sel = steps == n
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = i + j <= n
        w = np.stack([n - i[keep] - j[keep], i[keep], j[keep]], axis=1) / n   # [P, 3]
        w = 0.98 * w + 0.02 / 3        # stay just inside the triangle's own edges
        pts = np.einsum("pk,tkd->tpd", w, corners[sel]) - normals[sel, None] * (1e-4 * cell)
        idx = np.floor((pts.reshape(-1, 3) - origin) / cell).astype(np.int64)
        idx = np.clip(idx, 0, np.array(shape) - 1)
        occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return occ


def _fill_enclosed(surface: np.ndarray) -> np.ndarray:
    """Surface cells plus the empty cells not connected to the grid's sides or top."""
    padded = np.pad(surface, ((1, 1), (1, 1), (0, 1)), constant_values=False)
    outside = np.zeros_like(padded)
    outside[[0, -1], :, :] = True
    outside[:, [0, -1], :] = True
    outside[:, :, -1] = True
    outside &= ~padded
    while True:
        grown = outside.copy()
        for axis in range(3):
            grown[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))] |= \
                outside[tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))]
            grown[tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))] |= \
                outside[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))]
        grown &= ~padded
        if np.array_equal(grown, outside):
            break
        outside = grown
    return ~outside[1:-1, 1:-1, :-1]


# -- predictions back onto the source mesh ----------------------------------------------
def transfer_labels(vertices: np.ndarray, triangles: np.ndarray, grid: VoxelGrid,
                    labels: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """A part per source triangle: the part of the nearest predicted face facing the same
    way (any face when none does). ``vertices`` are in the source frame."""
    quads = quad_mesh(grid.occupancy, labels, grid.cell_size, grid.origin)
    if len(quads.parts) == 0:
        return np.full(len(triangles), -1, dtype=np.int32)
    centres = quads.vertices.reshape(-1, 4, 3).mean(axis=1)
    corners = to_z_up(vertices, grid.up)[np.asarray(triangles)]
    tri_centres = corners.mean(axis=1)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    direction = np.argmax(normals @ DIRECTION_VECTORS.T.astype(np.float64), axis=1)
    out = np.empty(len(triangles), dtype=np.int32)
    for start in range(0, len(triangles), chunk):
        sl = slice(start, start + chunk)
        dist = ((tri_centres[sl, None, :] - centres[None]) ** 2).sum(axis=2)
        same = direction[sl, None] == quads.directions[None].astype(np.int64)
        has_same = same.any(axis=1)
        dist = np.where(same | ~has_same[:, None], dist, np.inf)
        out[sl] = quads.parts[np.argmin(dist, axis=1)]
    return out
