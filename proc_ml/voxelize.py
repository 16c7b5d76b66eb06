"""Meshes to the occupancy grids the building nets read, and predictions back onto meshes.

numpy + trimesh only (the inference path never imports torch or scipy).

* Closed meshes (every edge shared by an even number of triangles once coincident
  vertices are merged) are filled exactly: a cell is occupied when its centre is inside,
  found by casting one vertical ray per column and counting crossings: the winding number
  when the triangles are consistently oriented (so intersecting closed parts, a block-out
  of overlapping boxes, fill their union), else the parity of each connected part, united.
* A mesh open only at its bottom (buildings are often modelled without a floor) is filled
  by the same centre rule, counting the crossings above each centre.
* Other open meshes (holes, single surfaces) get their surface cells, then every empty
  region that cannot be reached from the sides or the top of the grid is filled. The
  bottom counts as closed, so a box with a hole in its floor still fills solid.

Walls: a mesh whose walls do not run along x and y is first turned about z by its dominant
wall direction (``proc_ml.alignment``, the rule the real-building import uses), voxelised
in that aligned frame, and every output is turned back: ``VoxelGrid.rotation_deg`` records it.

Axes: proc-ml grids are z-up. glTF (GLB/GLTF) is y-up by convention, so those files are
rotated into z-up on load (``up="y"``) and predictions are rotated back on output. For OBJ,
PLY, STL and OFF, which say nothing, ``detect_up`` looks at the geometry (walls are
level-normal pairs facing away from each other; a building has more area facing up than
down: sloped roofs, often no floor) and picks z unless y is clearly the building's up;
``--up`` overrides. ``VoxelGrid`` keeps ``origin`` and ``cell_size`` (in
the aligned z-up frame) so every cell and face maps back to world space.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .alignment import dominant_wall_angle, rotation_z
from .errors import DatasetError
from .grid import linked_roots
from .meshing import UP_AXES, QuadMesh, from_z_up, quad_mesh, to_z_up  # noqa: F401 (UP_AXES re-exported)

#: The common mesh types (shape folders); the parts task reads every type of
#: ``mesh_extensions()``.
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
#: Grids larger than this on any axis are refused (usually a unit mismatch: cm vs m).
MAX_CELLS_PER_AXIS = 256
# Column rays are moved off the cell centres by this fraction of a cell, so they never
# pass exactly through the edges of axis-aligned meshes built on the same grid.
_RAY_JITTER = (1.234567e-4, 2.345678e-4)


#: Walls turned by less than this (degrees) are taken as aligned.
ALIGN_TOLERANCE_DEG = 0.1
#: Up-minus-down share of a mesh's area that counts as evidence for an up axis (detect_up).
UP_EVIDENCE = 0.05
#: Share of a mesh's area in opposite pairs of walls, neither level nor square to the file's
#: axes, that counts as evidence for an up axis (detect_up). On the 14 development buildings
#: the true up axis shows 0.005-0.64 (9 of 14 above 0.01) and the other one 0.000.
WALL_EVIDENCE = 0.01
#: A normal with |component along the candidate up| below this is level (a wall).
LEVEL_TOLERANCE = 0.01
#: A face is sloped (a roof pitched about 8-84 degrees) for a candidate up axis when
#: |its normal's component along it| lies in this range (detect_up's roofs-on-top cue).
SLOPED_RANGE = (0.1, 0.99)
#: Share of the sloped area that must lie in the upper half of the mesh along a candidate for
#: its sloped faces to be roofs on top (detect_up). On the 14 development buildings and the
#: synthetic kit houses: 0.96-1.00 along the true up axis, 0.38-0.62 along the other one.
ROOFS_ON_TOP = 0.9
#: A normal with a component above this (about 1.1 degrees) lies along a file axis.
SQUARE_TOLERANCE = 0.9998


def default_up(file_type: str) -> str:
    """glTF is Y-up by its specification; other types say nothing (``file_type``: an
    extension such as ``glb``, or a file name)."""
    ext = str(file_type).lower().rsplit(".", 1)[-1]
    return "y" if ext in ("glb", "gltf") else "z"


@dataclass
class VoxelGrid:
    """An occupancy grid and where it sits in the source mesh's world.

    The grid lives in the *aligned* z-up frame: the source's z-up frame turned about z by
    ``-rotation_deg`` around ``pivot``; ``origin`` is the low corner of cell (0, 0, 0) there.
    """
    occupancy: np.ndarray   # uint8[X, Y, Z], z up
    origin: np.ndarray      # float64[3]: min corner of cell (0, 0, 0), aligned z-up frame
    cell_size: float
    up: str = "z"           # up axis of the source mesh's frame
    closed: bool = True     # filled by parity (closed mesh) or surface + fill (open mesh)
    rotation_deg: float = 0.0   # the source's walls face this way (turned back on output)
    pivot: np.ndarray = field(default_factory=lambda: np.zeros(3))
    notes: list = field(default_factory=list)   # what was decided for the source (up, turn)
    #: int32[X, Y, Z]: the piece of the source (``voxelize``'s ``pieces``) each filled cell
    #: belongs to, -1 where empty; None when the source was not given in pieces
    pieces: np.ndarray | None = None

    def to_aligned(self, points_z_up: np.ndarray) -> np.ndarray:
        """Source z-up points -> the aligned frame the grid is in."""
        points = np.asarray(points_z_up, dtype=np.float64)
        if not self.rotation_deg:
            return points
        return (points - self.pivot) @ rotation_z(self.rotation_deg) + self.pivot

    def from_aligned(self, points: np.ndarray) -> np.ndarray:
        """Aligned-frame points -> the source's z-up frame."""
        points = np.asarray(points, dtype=np.float64)
        if not self.rotation_deg:
            return points
        return (points - self.pivot) @ rotation_z(self.rotation_deg).T + self.pivot

    def quads(self, labels: np.ndarray | None = None, up: str | None = None) -> QuadMesh:
        """The labelled quad mesh of the grid, where the source mesh is and in its units: in
        the source's own frame (``up=None``), or in that frame turned to have ``up`` as its
        up axis (``"z"``: proc-ml's z-up frame, what GLB writers and pictures expect)."""
        mesh = quad_mesh(self.occupancy, labels, self.cell_size, self.origin)
        mesh.vertices = from_z_up(self.from_aligned(mesh.vertices), up or self.up)
        return mesh


def mesh_extensions() -> tuple[str, ...]:
    """The file types ``proc-ml predict building-parts`` and the batch parts task voxelise:
    every mesh type this trimesh reads, and archives holding one (``proc_ml.meshio``)."""
    from .meshio import ARCHIVE_EXTENSIONS, available_mesh_extensions

    return tuple(sorted(set(available_mesh_extensions()) | set(ARCHIVE_EXTENSIONS)))


def load_mesh(path: str | os.PathLike, objects: bool = False):
    """A mesh file as one ``trimesh.Trimesh``, read and checked by ``proc_ml.meshio``
    (any type it reads, archives included; finite coordinates within its bounds, an extent,
    faces in range; scenes flattened with their transforms). ``mesh.metadata["format"]`` is
    the type that was read (inside an archive: the member's); with ``objects``,
    ``mesh.metadata["pieces"]`` the object of each face and ``["piece_names"]`` their names
    (``meshio.Geometry.pieces``)."""
    import trimesh

    from .meshio import read_geometry

    geometry = read_geometry(path, allow_points=False, objects=objects)
    mesh = trimesh.Trimesh(geometry.vertices, geometry.faces, process=False)
    mesh.metadata["format"] = geometry.format
    if objects:
        mesh.metadata["pieces"] = geometry.pieces
        mesh.metadata["piece_names"] = list(geometry.piece_names)
    return mesh


#: A mesh is read as a double-sided export when at least this share of its triangles come
#: in pairs on the same three vertices wound opposite ways.
DOUBLE_SIDED_SHARE = 0.5


def unique_triangles(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``triangles`` without repeats (once coincident vertices are merged): a copy of an
    earlier triangle wound the same way is always dropped (it would count every crossing
    twice); a copy wound the other way only when the mesh is a double-sided export --
    at least ``DOUBLE_SIDED_SHARE`` of its triangles in such pairs, as Kenney's OBJ kits
    write every triangle -- where it made an open shell look closed, fill nothing and cancel
    every up-facing area in ``detect_up``. Elsewhere such a pair is the face two stacked
    solids share, which the closed fill needs both sides of. The first copy is kept."""
    tris = np.asarray(triangles, dtype=np.int64)
    if len(tris) == 0:
        return tris
    _, index = np.unique(np.round(np.asarray(vertices, dtype=np.float64), 9), axis=0,
                         return_inverse=True)
    merged = index.reshape(-1)[tris]
    # the same triangle wound the same way: the same cycle from its smallest vertex
    start = merged.argmin(axis=1)
    oriented = np.stack([merged[np.arange(len(merged)), (start + k) % 3] for k in range(3)], axis=1)
    _, first = np.unique(oriented, axis=0, return_index=True)
    keep = np.sort(first)
    _, which, counts = np.unique(np.sort(merged[keep], axis=1), axis=0, return_inverse=True,
                                 return_counts=True)
    paired = counts[which.reshape(-1)] > 1
    if paired.mean() >= DOUBLE_SIDED_SHARE:
        _, once = np.unique(which.reshape(-1), return_index=True)
        keep = keep[np.sort(once)]
    return tris if len(keep) == len(tris) else tris[keep]


def is_closed(vertices: np.ndarray, triangles: np.ndarray) -> bool:
    """Every edge used by an even number of triangles after merging coincident vertices."""
    _, index = np.unique(np.round(vertices, 9), axis=0, return_inverse=True)
    tri = index.reshape(-1)[triangles]
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool(np.all(counts % 2 == 0))


def mesh_parts(vertices: np.ndarray, triangles: np.ndarray) -> list[np.ndarray]:
    """The triangles (``int64[F_i, 3]`` rows of ``triangles``) of each connected part of the
    mesh (triangles sharing a vertex once coincident vertices are merged)."""
    _, index = np.unique(np.round(np.asarray(vertices, dtype=np.float64), 9), axis=0,
                         return_inverse=True)
    tri = index.reshape(-1)[np.asarray(triangles, dtype=np.int64)]
    root = linked_roots(int(index.max()) + 1, np.concatenate([tri[:, 0], tri[:, 1]]),
                        np.concatenate([tri[:, 1], tri[:, 2]]))
    label = root[tri[:, 0]]
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    triangles = np.asarray(triangles, dtype=np.int64)
    return [triangles[group] for group in np.split(order, cuts)]


def open_edge_points(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``float64[2 * E, 3]``: the ends of every open edge (used by an odd number of
    triangles once coincident vertices are merged); empty for a closed mesh."""
    verts = np.asarray(vertices, dtype=np.float64)
    _, index = np.unique(np.round(verts, 9), axis=0, return_inverse=True)
    tri = index.reshape(-1)[np.asarray(triangles, dtype=np.int64)]
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    keys, counts = np.unique(edges, axis=0, return_counts=True)
    merged = np.zeros((index.max() + 1, 3))
    merged[index.reshape(-1)] = verts
    return merged[keys[counts % 2 == 1].reshape(-1)]


def open_only_at_the_bottom(vertices_z_up: np.ndarray, triangles: np.ndarray,
                            cell_size: float) -> bool:
    """Every open edge lies on the mesh's bottom plane, within 1 % of a cell: the mesh is
    closed but for a missing floor."""
    ends = open_edge_points(vertices_z_up, triangles)
    low = np.asarray(vertices_z_up, dtype=np.float64)[:, 2].min()
    return bool(len(ends)) and bool(np.all(ends[:, 2] - low <= 0.01 * cell_size))


def wall_rotation(vertices_z_up: np.ndarray, triangles: np.ndarray) -> float:
    """The dominant wall direction of a z-up mesh, degrees in (-45, 45] (0: aligned)."""
    corners = np.asarray(vertices_z_up, dtype=np.float64)[np.asarray(triangles, dtype=np.int64)]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, area[:, None], out=np.zeros_like(cross), where=area[:, None] > 0)
    angle, _ = dominant_wall_angle(normals, area / 2)
    return angle if abs(angle) >= ALIGN_TOLERANCE_DEG else 0.0


def voxelize(vertices: np.ndarray, triangles: np.ndarray, cell_size: float, up: str = "z",
             closed: bool | None = None, align: bool = True, pieces=None) -> VoxelGrid:
    """Voxelise triangles (source frame, ``up`` axis) at ``cell_size``; see the module doc.
    ``align``: turn the mesh so its walls run along the grid axes first. ``pieces``
    (int >= 0 per triangle: the buildings of a block, a Houdini piece attribute): the
    grid's ``pieces`` says which piece each filled cell belongs to (``_piece_cells``)."""
    if not cell_size > 0:
        raise ValueError(f"cell size must be > 0, got {cell_size}")
    verts = to_z_up(vertices, up)
    tris = np.asarray(triangles, dtype=np.int64)
    if len(tris) == 0:
        raise ValueError("the mesh has no triangles")
    if pieces is not None:
        pieces = np.asarray(pieces).reshape(-1)
        if len(pieces) != len(tris) or not np.issubdtype(pieces.dtype, np.integer) \
                or (pieces < 0).any():
            raise ValueError(f"pieces must be one number >= 0 per triangle ({len(tris)}), "
                             f"got {len(pieces)} of {pieces.dtype}")
        every = tris
    tris = unique_triangles(verts, tris)
    rotation = wall_rotation(verts, tris) if align else 0.0
    pivot = verts.mean(axis=0)
    if rotation:
        verts = (verts - pivot) @ rotation_z(rotation) + pivot
    origin = verts.min(axis=0)
    extent = verts.max(axis=0) - origin
    if extent.max() < cell_size:
        raise ValueError(f"the mesh is {' x '.join(f'{e:.3g}' for e in extent)} units, smaller "
                         f"than one cell ({cell_size:g}) every way (is it in other units? use a "
                         f"cell size of a 3 m storey in its units)")
    shape = tuple(max(1, math.ceil(e / cell_size - 1e-6)) for e in extent)
    if max(shape) > MAX_CELLS_PER_AXIS:
        raise ValueError(f"the mesh spans {list(shape)} cells at cell size {cell_size:g}; at most "
                         f"{MAX_CELLS_PER_AXIS} per axis (is the mesh in other units? use a "
                         f"larger cell size)")
    closed = is_closed(verts, tris) if closed is None else closed
    corners = verts[tris]
    if closed and is_consistently_oriented(verts, tris):
        occ = _parity_fill(corners, origin, cell_size, shape, winding=True)
    elif closed:
        # winding numbers mean nothing here (some triangles face inward): each closed part
        # by parity, then their union, so overlapping parts (a tower pushed into a podium)
        # stay solid instead of cancelling where they overlap
        occ = np.zeros(shape, dtype=bool)
        for part in mesh_parts(verts, tris):
            occ |= _parity_fill(verts[part], origin, cell_size, shape)
    elif open_only_at_the_bottom(verts, tris, cell_size):
        # a building modelled without its floor: closed but for the bottom, so a ray up
        # from a cell's centre crosses the roof an odd number of times exactly when the
        # centre is inside (the same centre rule as a closed mesh: no storey grows out of
        # a part-filled top layer, as surface cells would)
        occ = _parity_fill(corners, origin, cell_size, shape, from_above=True)
    else:
        occ = fill_enclosed(_surface_cells(corners, origin, cell_size, shape))
    grid = VoxelGrid(occ.astype(np.uint8), origin, float(cell_size), up, closed, rotation, pivot)
    if pieces is not None:
        grid.pieces = _piece_cells(verts, every, pieces, origin, float(cell_size), shape, occ)
    return grid


def _piece_cells(verts, triangles, pieces, origin, cell, shape, occupancy) -> np.ndarray:
    """``int32[X, Y, Z]``: the piece each filled cell of ``occupancy`` belongs to (-1 where
    empty). A cell whose centre is inside a closed piece (its own fill: by winding number,
    or by parity part by part, as the whole mesh is filled) or that an open piece's surface
    passes through goes to the first such piece; the filled cells no piece claims (inside
    pieces that are open only together) take the piece of a claimed cell next to them,
    growing out from the claimed cells a layer at a time."""
    filled = np.asarray(occupancy, dtype=bool)
    out = np.full(shape, -1, dtype=np.int32)
    for number in np.unique(pieces):
        tris = unique_triangles(verts, triangles[pieces == number])
        corners = verts[tris]
        # the piece's own box of cells (a block of hundreds of pieces stays fast)
        low = np.clip(np.floor((corners.min(axis=(0, 1)) - origin) / cell).astype(np.int64) - 1,
                      0, np.array(shape))
        high = np.clip(np.ceil((corners.max(axis=(0, 1)) - origin) / cell).astype(np.int64) + 1,
                       0, np.array(shape))
        box, at = tuple(int(n) for n in high - low), origin + low * cell
        if is_closed(verts, tris):
            if is_consistently_oriented(verts, tris):
                claimed = _parity_fill(corners, at, cell, box, winding=True)
            else:
                claimed = np.zeros(box, dtype=bool)
                for part in mesh_parts(verts, tris):
                    claimed |= _parity_fill(verts[part], at, cell, box)
        else:
            claimed = _surface_cells(corners, at, cell, box)
        where = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
        free = claimed & filled[where] & (out[where] < 0)
        out[where][free] = number
    while True:
        left = filled & (out < 0)
        if not left.any() or (out < 0).all():
            break
        grown = out.copy()
        for axis in range(3):
            for step in (1, -1):
                beside = np.roll(out, step, axis=axis)
                edge = [slice(None)] * 3
                edge[axis] = 0 if step == 1 else -1          # np.roll wraps round: not a neighbour
                beside[tuple(edge)] = -1
                take = left & (grown < 0) & (beside >= 0)
                grown[take] = beside[take]
        if np.array_equal(grown, out):
            break
        out = grown
    out[filled & (out < 0)] = int(np.min(pieces))       # a filled region no piece reaches
    return out


def voxelize_mesh(mesh, cell_size: float, up: str = "z", align: bool = True,
                  pieces=None) -> VoxelGrid:
    return voxelize(np.asarray(mesh.vertices), np.asarray(mesh.faces), cell_size, up, align=align,
                    pieces=pieces)


def detect_up(vertices: np.ndarray, triangles: np.ndarray) -> tuple[str, bool]:
    """``(up, sure)``: the axis (``z`` or ``y``) a building stands on, from its faces.

    Four cues, the first that speaks decides:

    * *roofs on top*: under the true up axis the sloped faces (normal neither level nor
      vertical, ``SLOPED_RANGE``) are roofs, so they lie in the upper half of the building;
      read on its side, the same faces and the walls turned from the axes become sloped
      faces spread over the whole height (about half of them below the middle). A candidate
      whose sloped faces are at least ``UP_EVIDENCE`` of the area, ``ROOFS_ON_TOP`` of them
      (by area, face centroids) above its middle, decides when the other candidate does not
      show the same. This tells a kit house square to the axes whose pitched roof is made of
      closed slabs: each slab's top and bottom face cancel the lopsidedness, and read on
      its side its top and bottom faces are a level pair that looks like walls.
    * *walls*: a building's walls are vertical and come in pairs facing away from each
      other (the two sides of the building). Counted for a candidate axis: the area of faces
      whose normal is level (perpendicular to the axis) and not along a file axis, paired
      with the area facing the opposite way (``_wall_pairs``). Real buildings seldom stand
      square to the file's axes, so their walls show on the true up axis only; a roof pitched
      towards a horizontal axis has no opposite face and does not count. A building square
      to the axes shows nothing here.
    * *a missing floor*: a mesh whose open edges all lie on its lowest plane along one
      candidate (and not the other) is a building modelled without its floor.
    * *lopsidedness*: gravity makes buildings lopsided along their up axis only: sloped
      roofs face up, nothing sloped faces down. The cue is the up-minus-down share of the
      area along each candidate, counting only faces that are not square to the other
      candidate (a face that is a wall, floor or flat roof under one reading proves nothing
      about the other: a shed's taller back wall, or triangles wound inward, would); y wins
      only when it shows the lopsidedness clearly and z does not.

    A building square to the axes with flat roofs only (a box, voxel massing) shows
    none of them: z is assumed (``sure`` False)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = unique_triangles(vertices, triangles)
    corners = vertices[triangles]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) / 2
    area = np.linalg.norm(cross, axis=1)
    total = float(area.sum())
    if total <= 0:
        return "z", False
    normal = np.divide(cross, area[:, None], out=np.zeros_like(cross), where=area[:, None] > 0)
    on_top = {up: _roofs_on_top(corners[:, :, axis], normal[:, axis], area, total)
              for up, axis in (("z", 2), ("y", 1))}
    if on_top["z"] != on_top["y"]:
        return ("z" if on_top["z"] else "y"), True
    walls = {up: _wall_pairs(normal, area, axis) / total for up, axis in (("z", 2), ("y", 1))}
    best = max(walls, key=walls.get)
    other = "y" if best == "z" else "z"
    if walls[best] >= WALL_EVIDENCE and walls[other] <= walls[best] / 5:
        return best, True
    # open only at the lowest plane along one candidate: a building modelled without a floor
    ends = open_edge_points(vertices, triangles)
    if len(ends):
        verts = np.asarray(vertices, dtype=np.float64)
        floorless = {up: bool(np.all(ends[:, axis] - verts[:, axis].min()
                                     <= 1e-3 * np.ptp(verts[:, axis])))
                     for up, axis in (("z", 2), ("y", 1))}
        if floorless["z"] != floorless["y"]:
            return ("z" if floorless["z"] else "y"), True
    # a face square to the other candidate (a wall, floor or flat roof under the other
    # reading) is no evidence either way: a shed's taller back wall, or a few triangles
    # wound inward, would otherwise tip a z-up building onto its side
    lopsided = {}
    for up, axis, other in (("z", 2, 1), ("y", 1, 2)):
        sloped = np.abs(normal[:, other]) >= LEVEL_TOLERANCE
        lopsided[up] = float(area[sloped & (normal[:, axis] > 0.3)].sum()
                             - area[sloped & (normal[:, axis] < -0.3)].sum()) / total
    if lopsided["y"] > UP_EVIDENCE and lopsided["y"] > lopsided["z"] + UP_EVIDENCE:
        return "y", True
    return "z", lopsided["z"] > UP_EVIDENCE


def _roofs_on_top(height: np.ndarray, up_normal: np.ndarray, area: np.ndarray,
                  total: float) -> bool:
    """Whether the sloped faces (``SLOPED_RANGE``; ``height``: ``[F, 3]`` corner heights and
    ``up_normal``: normal components along a candidate up axis) are at least ``UP_EVIDENCE``
    of ``total`` and ``ROOFS_ON_TOP`` of them (by area) have their centroid above the
    middle of the mesh's extent along the candidate: roofs on top of a building."""
    middle = (height.min() + height.max()) / 2
    steep = np.abs(up_normal)
    sloped = (steep >= SLOPED_RANGE[0]) & (steep < SLOPED_RANGE[1])
    sloped_area = float(area[sloped].sum())
    if sloped_area < UP_EVIDENCE * total:
        return False
    return float(area[sloped & (height.mean(axis=1) > middle)].sum()) >= ROOFS_ON_TOP * sloped_area


def _wall_pairs(normal: np.ndarray, area: np.ndarray, axis: int, bins: int = 180) -> float:
    """Area of the faces whose normal is level for up axis ``axis`` and not along a file axis,
    paired with faces facing the opposite way: twice the sum over 1-degree directions of
    the smaller of the areas facing that way and the opposite way."""
    level_axes = [a for a in range(3) if a != axis]
    level = (np.abs(normal[:, axis]) < LEVEL_TOLERANCE) & (
        np.abs(normal[:, level_axes]).max(axis=1) < SQUARE_TOLERANCE)
    heading = np.arctan2(normal[level, level_axes[1]], normal[level, level_axes[0]])
    index = np.floor((heading + np.pi) / (2 * np.pi) * 2 * bins).astype(np.int64) % (2 * bins)
    per_heading = np.bincount(index, weights=area[level], minlength=2 * bins)
    return float(2 * np.minimum(per_heading[:bins], per_heading[bins:]).sum())


def voxelize_file(path: str | os.PathLike, cell_size: float, up: str | None = None,
                  align: bool = True, objects: bool = False):
    """``(VoxelGrid, trimesh.Trimesh)`` for a mesh file. ``up`` None: y for glTF, else
    detected from the geometry (``detect_up``); ``VoxelGrid.notes`` says what was decided.
    ``objects``: ``VoxelGrid.pieces`` says which of the file's objects each cell is in."""
    mesh = load_mesh(path, objects)
    notes = []
    if up is None:
        up = default_up(mesh.metadata.get("format") or Path(path).suffix)
        if up == "z":
            up, sure = detect_up(mesh.vertices, mesh.faces)
            if up == "y":
                notes.append("up axis: y, detected from the geometry (the building stands on "
                             "its y axis); pass --up z to read it z-up")
            elif not sure:
                notes.append("up axis: z, assumed (the geometry does not tell y from z; pass "
                             "--up y for a file from a Y-up tool)")
        elif detect_up(mesh.vertices, mesh.faces) == ("z", True):
            # glTF is y-up by its specification, but some exporters write z-up files
            notes.append("up axis: y, as glTF specifies, but the building stands on its z "
                         "axis (its walls say so): it was read lying on its side; pass --up z")
    try:
        grid = voxelize_mesh(mesh, cell_size, up, align, mesh.metadata.get("pieces"))
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if grid.rotation_deg:
        notes.append(f"walls turned by {-grid.rotation_deg:.1f} degrees about z to run along "
                     f"the grid; outputs are turned back onto the input")
    note = scale_note(np.ptp(to_z_up(mesh.vertices, up), axis=0), cell_size)
    if note:
        notes.append(note)
    grid.notes = notes
    return grid, mesh


#: A mesh taller than this many cells (150 m at 3 m cells) gets a note about its units.
TALL_CELLS = 50.0
#: A mesh whose every extent is under this many cells gets a note about its units.
SMALL_CELLS = 2.0


def scale_note(extent, cell_size: float, setting: str = "pass --cell-size") -> str | None:
    """A note when a mesh's size, counted in cells, looks like other units than the cell
    size's: a building of one or two cells (a game-kit tile, a model in decimetres) or one
    over 50 cells tall (a model in centimetres or millimetres read with metre cells); None
    when it looks like a building. ``setting`` says how the
    cell size is changed where the note is shown (a DCC: "set Cell Size to")."""
    x, y, z = (float(v) for v in extent)
    size = f"{x:.3g} x {y:.3g} x {z:.3g}"
    if max(x, y, z) < SMALL_CELLS * cell_size:
        return (f"the mesh is {size} units: at {cell_size:g} per cell the building is one or two "
                f"cells; if it is not in metres, {setting} a 3 m storey in its units")
    if z > TALL_CELLS * cell_size:
        return (f"the mesh is {size} units: {z / cell_size:.0f} cells of {cell_size:g} tall; if "
                f"it is in other units, {setting} a 3 m storey in its units (centimetres: 300, "
                f"millimetres: 3000)")
    return None


# -- closed meshes: one vertical ray per column ------------------------------------------
def is_consistently_oriented(vertices: np.ndarray, triangles: np.ndarray) -> bool:
    """Every directed edge (after merging coincident vertices) is matched by its reverse as
    often as it occurs: the triangles of every closed part face the same way (all out or
    all in), so winding numbers are meaningful."""
    _, index = np.unique(np.round(vertices, 9), axis=0, return_inverse=True)
    tri = index.reshape(-1)[triangles]
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    forward = directed[:, 0] * (len(vertices) + 1) + directed[:, 1]
    backward = directed[:, 1] * (len(vertices) + 1) + directed[:, 0]
    f_keys, f_counts = np.unique(forward, return_counts=True)
    b_keys, b_counts = np.unique(backward, return_counts=True)
    return bool(np.array_equal(f_keys, b_keys) and np.array_equal(f_counts, b_counts))


def _column_hits(corners, origin, cell, shape, signed: bool = False):
    """``(column index, z)`` of every crossing of a column's ray with a triangle
    (``signed``: and +1 / -1 for a triangle facing up / down)."""
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
    if signed:
        return (ix * Y + iy)[hit], z[hit], np.sign(det[hit]).astype(np.int64)
    return (ix * Y + iy)[hit], z[hit]


def _parity_fill(corners, origin, cell, shape, winding: bool = False,
                 from_above: bool = False) -> np.ndarray:
    """Cells whose centre is inside: an odd number of crossings below it, or, with
    ``winding`` (consistently oriented meshes), a non-zero winding number - so closed parts
    that intersect fill their union instead of cancelling where they overlap.
    ``from_above``: count the crossings above the centre (a mesh open only at its bottom)."""
    X, Y, Z = shape
    column, z, sign = _column_hits(corners, origin, cell, shape, signed=True)
    # A crossing at height z lies below the centres of cells first..Z-1.
    first = np.clip(np.floor((z - origin[2]) / cell - 0.5).astype(np.int64) + 1, 0, Z)
    below = np.zeros((X * Y, Z + 1), dtype=np.int64)
    # going up through a down-facing triangle enters (+1), an up-facing one leaves (-1)
    np.add.at(below, (column, first), -sign if winding else 1)
    count = np.cumsum(below, axis=1)
    count = count[:, Z:] - count[:, :Z] if from_above else count[:, :Z]
    inside = count != 0 if winding else count % 2 == 1
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


def fill_enclosed(surface: np.ndarray) -> np.ndarray:
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
#: Points sampled on every source triangle for the label vote (its centre and 6 more).
_TRANSFER_WEIGHTS = np.array([[1, 1, 1]] + [[a, b, 6 - a - b] for a in (1, 2, 4)
                                            for b in (1, 2, 4) if a + b < 6], dtype=np.float64)
_TRANSFER_WEIGHTS /= _TRANSFER_WEIGHTS.sum(axis=1, keepdims=True)
#: A voxel face at right angles to a triangle (|cos| of the angle between the triangle's
#: normal and the face's axis under ``TRANSFER_SQUARE``: a roof or ground face beside a wall
#: triangle, a wall face beside a level one) counts as this many cells farther. Sloped
#: triangles (roofs) are at right angles to no face and take the nearest faces, steps and all.
TRANSFER_TURN_PENALTY = 0.5
TRANSFER_SQUARE = 0.1
#: A point in an occupied cell farther than this many cells from every exterior voxel face
#: not at right angles to its triangle (inside the massing: a floor slab or an inner wall of
#: the source) votes for no part.
#: Points outside the massing (a roof's ridge above the top cells, a chimney) always vote.
TRANSFER_REACH = 0.9


def transfer_labels(vertices: np.ndarray, triangles: np.ndarray, grid: VoxelGrid,
                    labels: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """A part per source triangle: the part of the voxel face the triangle lies on.

    Points spread over each triangle (in the grid's aligned frame) each find the nearest
    exterior face quad (exact point-to-square distance among the nearest face centres), a
    quad at right angles to the triangle counting ``TRANSFER_TURN_PENALTY`` cells farther,
    so a wall triangle takes the wall faces it lies on rather than the roof or ground faces
    along its edge. The triangle takes the part most of its points
    landed on; a point inside the massing farther than ``TRANSFER_REACH`` cells from every
    exterior face (an inner floor slab or wall of the source) votes for none, and a triangle
    with most of its points there is left unlabelled (-1). Which way the triangle faces does not enter (its
    axis does), so a ground polygon with flipped normals still takes the ground faces below
    it and a steep roof takes the roof steps it covers. Memory stays bounded: a k-d tree
    over face centres (scipy) and ``chunk`` points at a time."""
    from scipy.spatial import cKDTree

    quads = quad_mesh(grid.occupancy, labels, grid.cell_size, grid.origin)
    n_tris = len(triangles)
    if len(quads.parts) == 0 or n_tris == 0:
        return np.full(n_tris, -1, dtype=np.int32)
    corners = grid.to_aligned(to_z_up(vertices, grid.up))[np.asarray(triangles, dtype=np.int64)]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(cross, axis=1, keepdims=True)
    facing = np.abs(np.divide(cross, length, out=np.zeros_like(cross), where=length > 0))
    points = np.einsum("sk,tkd->tsd", _TRANSFER_WEIGHTS, corners).reshape(-1, 3)
    point_facing = np.repeat(facing, len(_TRANSFER_WEIGHTS), axis=0)
    quad_corners = quads.vertices.reshape(-1, 4, 3)
    quad_axis = np.asarray(quads.directions, dtype=np.int64) // 2
    centres = quad_corners.mean(axis=1)
    low, high = quad_corners.min(axis=1), quad_corners.max(axis=1)
    tree = cKDTree(centres)
    k = min(16, len(centres))
    cell = grid.cell_size
    nearest = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        _, cand = tree.query(block, k=k)
        cand = cand.reshape(len(block), k)
        gap = np.maximum(low[cand] - block[:, None], 0) + np.maximum(block[:, None] - high[cand], 0)
        distance = np.sqrt((gap ** 2).sum(-1))
        along = np.take_along_axis(point_facing[start:start + chunk], quad_axis[cand], axis=1)
        best = np.argmin(distance + TRANSFER_TURN_PENALTY * cell * (along < TRANSFER_SQUARE), axis=1)
        rows = np.arange(len(block))
        cells = np.floor((block - grid.origin) / cell).astype(np.int64)
        within = np.all((cells >= 0) & (cells < grid.occupancy.shape), axis=1)
        cells = np.where(within[:, None], cells, 0)
        inside = within & grid.occupancy[cells[:, 0], cells[:, 1], cells[:, 2]].astype(bool)
        facing_quad = along >= TRANSFER_SQUARE
        inside &= np.where(facing_quad, distance, np.inf).min(axis=1) > TRANSFER_REACH * cell
        nearest[start:start + chunk] = np.where(inside, -1, cand[rows, best])
    votes = np.where(nearest >= 0, quads.parts[np.maximum(nearest, 0)], -1)
    votes = votes.reshape(n_tris, len(_TRANSFER_WEIGHTS)).astype(np.int64)
    n_parts = int(votes.max()) + 2
    counts = np.zeros((n_tris, n_parts), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_tris), votes.shape[1]), votes.reshape(-1) + 1), 1)
    counts[:, 1:] *= 2              # the centre point breaks ties (it is counted first)
    counts[np.arange(n_tris), votes[:, 0] + 1] += 1
    counts[:, 0] = 0                # points inside vote for no part ...
    part = np.argmax(counts, axis=1) - 1
    inside = (votes < 0).sum(axis=1) * 2 > votes.shape[1]
    return np.where(inside, -1, part).astype(np.int32)     # ... unless most of them are inside
