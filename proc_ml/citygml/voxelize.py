"""A CityGML / CityJSON building on proc-ml's grid: rotation, layers, occupancy, face labels.

:func:`voxelize_building` (numpy only; docs/citygml.md has the measurements behind every
constant here):

1. **Rotation.** Walls (``WallSurface``; without semantics, every polygon within 60 degrees
   of vertical) vote with area x horizontal normal length for the angle of their normal
   modulo 90 degrees (1-degree histogram, circularly smoothed); the peak, refined by the
   circular mean of the votes within 4 degrees of it, is ``rotation_deg`` in (-45, 45]:
   the grid's +x axis points that way.
2. **Layers.** Layer ``k`` spans ``[k, k+1] * cell_size`` above the building's lowest shell
   vertex; x and y start at the rotated shell's low corner.
3. **Occupancy.** ``method="flux"`` by default (:mod:`proc_ml.citygml.occupancy`); a cell is
   occupied when more than ``FILL_THRESHOLD`` of it is inside. A shell whose signed
   volume is negative (every face wound inward) is turned round first, with a note, when
   it is closed, or open only by small holes (``FLIP_MAX_HOLE_SHARE``) with its volume
   clearly negative (``FLIP_MIN_INWARD``).
4. **Labels** (a building with at least one Window / Door, whatever its LoD: CityGML 3.0
   and CityJSON allow openings below LoD3; otherwise ``labels`` is None, "massing to
   label"): top faces ``roof``; bottom faces ``ground`` on layer 0 and ``wall`` above (the
   generator's rule); side faces by **opening coverage**: the polygons of every Window /
   Door that face its side direction (:func:`find_openings`) are rasterised on that
   direction's facade plane, ``SUB`` x ``SUB`` bins per cell face, union over polygons (a
   pane and its frame are not counted twice); each bin goes to the nearest exterior face
   of that direction on its column and layer whose plane is within ``DEPTH_TOLERANCE``
   cells of the bin's depth. A face is **door** when doors cover at least
   ``DOOR_THRESHOLD`` of it or it is the main face of a door, else **window** when windows
   cover at least ``WINDOW_THRESHOLD`` of it or it is the main face of a window, else
   **wall**. The main face of an opening is the face holding most of it (at least
   ``MAIN_FACE_MIN_AREA`` m^2), so an opening split between two faces is never lost.
5. **Street sides**: the side directions that at least one opening faces (the scans only
   see the street: other sides are "unknown", not "blank"); ``label_known`` marks the
   top / bottom faces and the side faces on street sides.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..alignment import dominant_wall_angle, rotation_z
from ..errors import DatasetError
from ..labelling import (DEPTH_TOLERANCE, FILL_THRESHOLD, MAIN_FACE_MIN_AREA,
                         SUB, side_parts)
from ..grid import (DIRECTION_VECTORS, DIRECTIONS, DOWN, NO_PART, UP, along_axis,
                    exterior_faces_by_direction, shifted)
from ..procedural.parts import DEFAULT_PARTS, Vocabulary
from ..units import DEFAULT_CELL_SIZE
from ..voxelize import MAX_CELLS_PER_AXIS
from .crs import crs_problem, looks_geographic
from .geometry import (fan_triangles, inside_even_odd, normal_area, open_edge_length,
                       ring_edges_2d, sample_polygon, winding_numbers)
from .model import OPENING_KINDS, SHELL_KINDS, CityBuilding, ImportedBuilding, Polygon, short
from .occupancy import METHODS, flood_fraction, flux_fraction, winding_fraction

#: Geometry reaching less than this fraction of a cell past a cell boundary adds no cells.
GRID_SLACK = 0.01
#: Area samples every cell_size / SAMPLES_PER_CELL on the shell (occupancy, statistics).
SAMPLES_PER_CELL = 8
#: An opening polygon counts for a side direction when its normal is within this angle.
OPENING_ANGLE_DEG = 45.0
#: Distances (m) in front of / behind an opening where the shell's winding number is read,
#: and how much more inside the front must read to turn the opening round.
FLIP_PROBES = (0.5, 1.0)
FLIP_MARGIN = 0.25
#: Two vertices closer than this are one when checking whether the shell is watertight.
WATERTIGHT_TOLERANCE = 0.01
#: An open shell is turned round like a closed one when its holes are small -- the length of
#: the shell's total vector area (zero when closed: the vector area of its holes) is at most
#: this share of its area (at most 0.033 on the open dev buildings, 0.14 for a box without one
#: wall) -- and its faces clearly point inward: its signed volume is at most -this share of
#: the unsigned one (every up / down face counted as if it pointed outward; >= +0.83 on the
#: dev buildings).
FLIP_MAX_HOLE_SHARE = 0.05
FLIP_MIN_INWARD = 0.5
#: Polygons of one Window / Door object whose bounding boxes (grid frame) come closer than
#: this (m) are one opening; farther apart, separate openings (a CityJSON semantic object or
#: a CityGML opening may hold the panes of many windows on several sides).
OPENING_PIECE_GAP = 0.15
#: Bounding-box pairs compared per block when splitting an opening object into its pieces.
_PIECE_BLOCK = 512

_SIDE_VECTORS = np.array([(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)])
_OPPOSITE = (1, 0, 3, 2)
_SHELL = SHELL_KINDS + OPENING_KINDS + ("Unclassified",)


class TooSmall(DatasetError):
    """A building smaller than half a cell: no cell can hold it at this cell size. Callers
    importing many buildings count it as skipped, not failed (a garden shed in a city tile)."""


def voxelize_building(building: CityBuilding, cell_size: float = DEFAULT_CELL_SIZE,
                      method: str = "flux", parts: tuple[str, ...] = DEFAULT_PARTS,
                      check_watertight: bool = True) -> ImportedBuilding:
    """Put one building on the grid (see the module docstring).

    Raises ``DatasetError`` (one line naming the file and the building) for a building that
    cannot be imported: geographic / unknown CRS, no shell, empty grid, too large a grid;
    :class:`TooSmall` (a ``DatasetError``) when it is smaller than half a cell.
    ``check_watertight=False`` skips the (slowest) statistic, the open-edge check.
    """
    start = time.perf_counter()
    where = f"{building.source}: building {short(building.building_id, 60)}"
    if not cell_size > 0:
        raise DatasetError(f"{where}: cell size must be > 0, got {short(cell_size, 20)}")
    if method not in METHODS:
        raise DatasetError(f"{where}: unknown occupancy method '{short(method, 20)}' (expected "
                           f"{', '.join(METHODS)})")
    problem = crs_problem(building.crs, building.epsg)
    if problem:
        raise DatasetError(f"{where}: {problem}")
    shell = [(s.kind, p) for s in building.surfaces if s.kind in _SHELL for p in s.polygons]
    if not shell:
        raise DatasetError(f"{where}: empty building (no shell surfaces)")
    vertices = np.concatenate([p.exterior for _, p in shell])
    if looks_geographic(vertices):
        raise DatasetError(f"{where}: coordinates look like degrees (CRS '{short(building.crs)}'); "
                           f"reproject to a projected CRS in metres first")
    table = PolygonTable(shell, cell_size / SAMPLES_PER_CELL)
    if table.area.sum() <= 0:
        raise DatasetError(f"{where}: empty building (every polygon has zero area)")
    open_len = None
    inward = None
    if signed_volume(table) < 0:
        # a closed shell with a negative volume has every face wound inward, and so has an
        # open one with small holes whose volume is clearly negative: turn it round
        open_len, _ = open_edge_length([p for _, p in shell], WATERTIGHT_TOLERANCE)
        inward = wound_inward(table)
        if open_len == 0.0 or inward:
            inward = None
            building = flipped_shell(building, "faces were wound inside out; flipped")
            shell = [(s.kind, p) for s in building.surfaces if s.kind in _SHELL
                     for p in s.polygons]
            table = PolygonTable(shell, cell_size / SAMPLES_PER_CELL)

    rotation, dominance = dominant_rotation(table)
    frame = GridFrame(vertices, rotation, cell_size)
    if max(frame.shape) > MAX_CELLS_PER_AXIS:
        raise DatasetError(f"{where}: the building spans {list(frame.shape)} cells at cell size "
                           f"{cell_size:g}; at most {MAX_CELLS_PER_AXIS} per axis (wrong units, "
                           f"or use a larger cell size)")
    points = frame.to_grid(table.points)
    normals = table.sample_normals @ frame.rot
    if method == "flux":
        fraction = flux_fraction(points, table.weights, normals, frame.shape, cell_size)
    elif method == "winding":
        tris = frame.to_grid(np.concatenate([fan_triangles(p) for _, p in shell]))
        fraction = winding_fraction(tris, frame.shape, cell_size)
    else:
        fraction = flood_fraction(points, normals, frame.shape, cell_size)
    occ = fraction > FILL_THRESHOLD
    if not occ.any():
        size = " x ".join(f"{e:.1f}" for e in frame.extent)
        # the most of one cell a box of this extent can fill, whatever its shell
        if np.prod(np.minimum(frame.extent, cell_size)) <= FILL_THRESHOLD * cell_size ** 3:
            raise TooSmall(f"{where}: smaller than half a {cell_size:g} m cell ({size} m); a "
                           f"smaller cell size keeps it")
        if inward is not None:
            holes = hole_share(table)
            why = (f"the shell is too open to turn round (holes {holes:.0%} of its area)"
                   if holes > FLIP_MAX_HOLE_SHARE else "some faces point the other way")
            raise DatasetError(f"{where}: empty building ({size} m): its faces seem to be wound "
                               f"inward (negative volume), but {why}")
        raise DatasetError(f"{where}: empty building: no {cell_size:g} m cell is more than half "
                           f"inside ({size} m; an open or inside-out shell? another occupancy "
                           f"method, or a smaller cell size, may fill it)")

    notes = list(building.notes)
    openings = find_openings(building, frame)
    labelled = bool(openings["objects"])
    if building.lod >= 3 and not labelled:
        notes.append("LoD3 without any opening: occupancy only (its sides are unknown, not blank)")
    elif labelled and building.lod < 3:
        notes.append(f"windows / doors in LoD{building.lod} geometry: labelled like LoD3")
    labels, coverage = (None, None)
    if labelled:
        labels, coverage = label_faces(occ, openings, cell_size, parts)
    street = tuple(DIRECTIONS[d] for d in sorted({o["direction"] for o in openings["objects"]
                                                   if o["direction"] is not None}))
    known = cover = None
    if labels is not None:
        known = labels >= 0
        for d in range(4):
            if DIRECTIONS[d] not in street:
                known[..., d] = False
        cover = np.zeros(occ.shape + (6, 2), dtype=np.float32)
        cover[..., :4, :] = np.moveaxis(coverage["cover"], (0, 1), (-1, -2))
    stats = _stats(building, table, points, occ, labels, openings, coverage, parts, method,
                   dominance, cell_size)
    if check_watertight:
        if open_len is None:
            open_len, _ = open_edge_length([p for _, p in shell], WATERTIGHT_TOLERANCE)
        stats["watertight"] = open_len == 0.0
        stats["open_edge_m"] = round(open_len, 1)
    stats["time_s"] = round(time.perf_counter() - start, 3)
    return ImportedBuilding(
        building_id=building.building_id, source=building.source, lod=building.lod,
        occupancy=occ.astype(np.uint8), labels=labels, rotation_deg=float(rotation),
        origin=frame.origin, cell_size=float(cell_size), street_sides=street, stats=stats,
        notes=notes, crs=building.crs, parts=tuple(parts), label_known=known,
        opening_cover=cover)


# -- polygons as arrays -------------------------------------------------------------------
class PolygonTable:
    """Per-polygon kind / normal / area, and the shell's area samples, as arrays (world)."""

    def __init__(self, shell: list[tuple[str, Polygon]], spacing: float):
        n = len(shell)
        self.kinds = np.array([k for k, _ in shell])
        self.normals, self.area = np.zeros((n, 3)), np.zeros(n)
        pts, wts, owner = [], [], []
        for i, (_, poly) in enumerate(shell):
            p, w, normal, area = sample_polygon(poly, spacing)
            self.normals[i], self.area[i] = normal, area
            pts.append(p)
            wts.append(w)
            owner.append(np.full(len(p), i))
        self.points = np.concatenate(pts)
        self.weights = np.concatenate(wts)
        self.owner = np.concatenate(owner)
        self.sample_normals = self.normals[self.owner]
        self.sample_kinds = self.kinds[self.owner]


def signed_volume(table: PolygonTable) -> float:
    """Volume enclosed by the shell (divergence theorem over its area samples): exact for a
    closed shell wound outward, negative for one wound inside out."""
    z = table.points[:, 2] - table.points[:, 2].min()
    return float(np.sum(table.weights * table.sample_normals[:, 2] * z))


def hole_share(table: PolygonTable) -> float:
    """Length of the shell's total vector area over its area: 0 for a closed shell, the
    vector area of its holes otherwise (a missing wall is its whole area; the thin gaps
    along window frames next to nothing, however long their edges)."""
    total = float(table.area.sum())
    vector = np.linalg.norm((table.normals * table.area[:, None]).sum(axis=0))
    return float(vector / total) if total > 0 else 1.0


def wound_inward(table: PolygonTable) -> bool:
    """An open shell whose faces clearly point inward and whose holes are small: see
    ``FLIP_MAX_HOLE_SHARE`` and ``FLIP_MIN_INWARD``."""
    z = table.points[:, 2] - table.points[:, 2].min()
    unsigned = float(np.sum(table.weights * np.abs(table.sample_normals[:, 2]) * z))
    return bool(unsigned > 0 and signed_volume(table) <= -FLIP_MIN_INWARD * unsigned
                and hole_share(table) <= FLIP_MAX_HOLE_SHARE)


def flipped_shell(building: CityBuilding, note: str) -> CityBuilding:
    """A copy of ``building`` with every shell polygon (openings included) wound the other
    way, and ``note`` added to its notes."""
    def flip(p: Polygon) -> Polygon:
        return Polygon(p.exterior[::-1].copy(), tuple(r[::-1].copy() for r in p.interiors),
                       p.polygon_id)

    surfaces = [replace(s, polygons=[flip(p) for p in s.polygons]) if s.kind in _SHELL else s
                for s in building.surfaces]
    return replace(building, surfaces=surfaces, notes=list(building.notes) + [note])


def dominant_rotation(table: PolygonTable) -> tuple[float, float]:
    """``(rotation_deg in (-45, 45], share)`` of the building's walls
    (``proc_ml.alignment.dominant_wall_angle``): ``WallSurface`` polygons vote, or every shell
    polygon when the file has no semantic walls."""
    voters = table.kinds == "WallSurface"
    horizontal = np.hypot(table.normals[:, 0], table.normals[:, 1])
    if not np.any(voters & (horizontal > 0.5)):
        voters = table.kinds != "BuildingInstallation"
    return dominant_wall_angle(table.normals[voters], table.area[voters])


class GridFrame:
    """World <-> grid frame: rotation by -rotation_deg about z, origin at the low corner."""

    def __init__(self, vertices: np.ndarray, rotation_deg: float, cell: float):
        self.rot = rotation_z(rotation_deg)                  # grid -> world
        self.pivot = np.round(vertices.mean(axis=0), 3)      # keeps UTM-sized numbers small
        local = (vertices - self.pivot) @ self.rot
        self.low = local.min(axis=0)
        self.extent = local.max(axis=0) - self.low
        self.origin = self.pivot + self.rot @ self.low
        self.cell = cell
        # a sliver under GRID_SLACK of a cell past the last boundary gets no cells of its own
        self.shape = tuple(int(max(1, np.ceil(e / cell - GRID_SLACK))) for e in self.extent)

    def to_grid(self, points: np.ndarray) -> np.ndarray:
        return (points - self.pivot) @ self.rot - self.low


# -- openings -------------------------------------------------------------------------------
def find_openings(building: CityBuilding, frame: GridFrame) -> dict:
    """Opening objects (``objects``) and their facing polygons (``polygons``), grid frame.

    A Window / Door object whose polygons lie apart (one CityJSON semantic object for the
    panes of a whole building, a CityGML opening bundling several windows) is one opening
    per piece (:func:`opening_pieces`). An opening faces the side direction that holds the
    largest area of its polygons whose normal is within ``OPENING_ANGLE_DEG`` of it (None
    when none is, e.g. a roof window);
    only those polygons are kept, not its reveals, frame sides or back faces. Openings
    modelled inside out (normals into the building: several dev files have some) are
    turned round: the generalised winding number of the shell without its openings,
    averaged ``FLIP_PROBES`` m in front of and behind the opening, must read the front as
    the outside; when the front reads more than ``FLIP_MARGIN`` more inside, it is flipped.
    """
    cos_limit = np.cos(np.radians(OPENING_ANGLE_DEG))
    found = []
    for s in building.surfaces:
        if s.kind not in OPENING_KINDS:
            continue
        polys = []
        for p in s.polygons:
            rings = [frame.to_grid(r) for r in p.rings]
            n, area = normal_area(Polygon(rings[0], tuple(rings[1:])))
            if area > 0:
                polys.append((rings, n, area))
        if not polys:
            continue
        pieces = opening_pieces([rings[0] for rings, _, _ in polys])
        for k, members in enumerate(pieces):
            surface_id = s.surface_id if len(pieces) == 1 else f"{s.surface_id}#{k + 1}"
            found.append(_opening_object(s.kind, surface_id, [polys[i] for i in members],
                                         cos_limit, frame, len(found)))
    _turn_inside_out_openings(building, frame, found)
    return {"polygons": [c for _, mine in found for c in mine],
            "objects": [o for o, _ in found]}


def opening_pieces(rings: list[np.ndarray], gap: float = OPENING_PIECE_GAP) -> list[list[int]]:
    """Indices of the polygons (exterior rings, grid frame) of one opening object, grouped
    into pieces: polygons whose bounding boxes come within ``gap`` of each other, directly
    or through others, are one piece (a pane, its frame and reveals); pieces are ordered by
    their first polygon."""
    n = len(rings)
    if n <= 1:
        return [list(range(n))]
    lo = np.stack([r.min(axis=0) for r in rings]) - gap / 2
    hi = np.stack([r.max(axis=0) for r in rings]) + gap / 2
    pairs = []
    for start in range(0, n, _PIECE_BLOCK):
        a = slice(start, min(n, start + _PIECE_BLOCK))
        touch = np.all((lo[a, None, :] <= hi[None, :, :]) & (lo[None, :, :] <= hi[a, None, :]),
                       axis=2)
        i, j = np.nonzero(touch)
        pairs.append((i + start, j))
    i = np.concatenate([p[0] for p in pairs])
    j = np.concatenate([p[1] for p in pairs])
    component = np.arange(n)                   # each polygon takes the lowest index it reaches
    while True:
        low = component.copy()
        np.minimum.at(low, i, component[j])
        low = low[low]
        if np.array_equal(low, component):
            break
        component = low
    order: dict[int, list[int]] = {}
    for k, c in enumerate(component):
        order.setdefault(int(c), []).append(k)
    return list(order.values())


def _opening_object(kind, surface_id, polys, cos_limit, frame, index) -> tuple[dict, list]:
    """One opening (a piece of an opening object): its side direction, the polygons facing
    it and its layer (``find_openings``)."""
    facing, candidates, zs = np.zeros(4), [], []
    for rings, n, area in polys:
        zs.append(rings[0][:, 2])
        score = _SIDE_VECTORS @ n[:2]
        d = int(np.argmax(score))
        if score[d] >= cos_limit:
            facing[d] += area
            candidates.append({"kind": kind, "rings": rings, "normal": n, "direction": d,
                               "area": area, "centre": rings[0].mean(axis=0)})
    z = np.concatenate(zs)
    direction = int(np.argmax(facing)) if facing.max() > 0 else None
    mine = [c for c in candidates if c["direction"] == direction]
    obj = {"kind": kind, "id": surface_id, "direction": direction,
           "area_m2": round(float(facing.max()), 3), "flipped": False,
           "layer": int(np.clip(np.floor((z.min() + z.max()) / 2 / frame.cell), 0,
                                frame.shape[2] - 1))}
    for c in mine:
        c["object"] = index
    return obj, mine


def _turn_inside_out_openings(building: CityBuilding, frame: GridFrame, found: list) -> None:
    facing = [(o, mine) for o, mine in found if mine]
    shell = [p for s in building.surfaces if s.kind in _SHELL and s.kind not in OPENING_KINDS
             for p in s.polygons]
    if not facing or not shell:
        return
    tris = frame.to_grid(np.concatenate([fan_triangles(p) for p in shell]))
    probes = []
    for o, mine in facing:
        w = np.array([c["area"] for c in mine])
        centre = (np.stack([c["centre"] for c in mine]) * w[:, None]).sum(axis=0) / w.sum()
        step = np.array([*_SIDE_VECTORS[o["direction"]], 0.0])
        probes += [centre + t * step for t in FLIP_PROBES] + [centre - t * step for t in FLIP_PROBES]
    wn = winding_numbers(np.array(probes), tris).reshape(len(facing), 2, -1).mean(axis=2)
    for (o, mine), (front, back) in zip(facing, wn):
        if front - back > FLIP_MARGIN:
            o["direction"] = _OPPOSITE[o["direction"]]
            o["flipped"] = True
            for c in mine:
                c["direction"] = o["direction"]
                c["normal"] = -c["normal"]


def opening_coverage(occ: np.ndarray, openings: dict, cell: float) -> dict:
    """Where the openings land on the exterior side faces.

    Returns ``cover`` float64[2, 4, X, Y, Z] (share of each side face covered by windows,
    doors: index 0 / 1 as in ``OPENING_KINDS``), ``main`` bool[2, 4, X, Y, Z] (main faces
    of the openings, see the module docstring), ``unassigned`` (opening area in m^2 that no
    face within ``DEPTH_TOLERANCE`` took, per kind) and ``placed`` (per opening object, the
    area in m^2 that faces took).
    """
    ext = exterior_faces_by_direction(occ)
    shape, n_faces = occ.shape, occ.size
    nbins = SUB * SUB
    r = cell / SUB
    bins = {}                                # (kind, d) -> flat (face * nbins + bin) ids
    per_object = []                          # (object, face, bin) triples
    unassigned = {k: 0.0 for k in OPENING_KINDS}
    for poly in openings["polygons"]:
        d, kind = poly["direction"], poly["kind"]
        depth_axis, u = (0 if d < 2 else 1), along_axis(d)
        rings_2d = [np.stack([ring[:, u], ring[:, 2]], axis=1) for ring in poly["rings"]]
        lo = np.floor(rings_2d[0].min(axis=0) / r).astype(np.int64)
        hi = np.ceil(rings_2d[0].max(axis=0) / r).astype(np.int64)
        iu, iz = np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]), indexing="ij")
        iu, iz = iu.ravel(), iz.ravel()
        centres = np.stack([(iu + 0.5) * r, (iz + 0.5) * r], axis=1)
        a, b = ring_edges_2d(rings_2d)
        inside = inside_even_odd(centres, a, b)
        iu, iz, centres = iu[inside], iz[inside], centres[inside]
        if len(iu) == 0:
            continue
        n, c = poly["normal"], poly["rings"][0].mean(axis=0)
        depth = c[depth_axis] - (n[u] * (centres[:, 0] - c[u]) + n[2] * (centres[:, 1] - c[2])) \
            / n[depth_axis]
        col, layer = iu // SUB, iz // SUB
        valid = (col >= 0) & (col < shape[u]) & (layer >= 0) & (layer < shape[2])
        plus = d in (0, 2)
        nearest = np.round(depth / cell).astype(np.int64) - (1 if plus else 0)
        best = np.full(len(iu), -1)
        best_dist = np.full(len(iu), np.inf)
        for delta in (-1, 0, 1):
            i = nearest + delta
            ok = valid & (i >= 0) & (i < shape[depth_axis])
            idx = [None, None, None]
            idx[depth_axis], idx[u], idx[2] = (np.where(ok, i, 0), np.where(ok, col, 0),
                                               np.where(ok, layer, 0))
            ok &= ext[d][idx[0], idx[1], idx[2]]
            dist = np.abs((i + (1 if plus else 0)) * cell - depth)
            better = ok & (dist < best_dist) & (dist <= DEPTH_TOLERANCE * cell)
            best = np.where(better, i, best)
            best_dist = np.where(better, dist, best_dist)
        took = best >= 0
        unassigned[kind] += float(np.count_nonzero(~took)) * r * r
        if not took.any():
            continue
        idx = [None, None, None]
        idx[depth_axis], idx[u], idx[2] = best[took], col[took], layer[took]
        face = np.ravel_multi_index((idx[0], idx[1], idx[2]), shape)
        sub = (iu[took] % SUB) * SUB + iz[took] % SUB
        bins.setdefault((kind, d), []).append(face * nbins + sub)
        per_object.append((np.full(len(face), poly["object"]), np.full(len(face), d),
                           face * nbins + sub))
    cover = np.zeros((2, 4) + shape)
    for (kind, d), chunks in bins.items():
        uniq = np.unique(np.concatenate(chunks))
        count = np.bincount(uniq // nbins, minlength=n_faces)
        cover[OPENING_KINDS.index(kind), d] = (count / nbins).reshape(shape)
    main = np.zeros((2, 4) + shape, dtype=bool)
    placed = np.zeros(len(openings["objects"]))
    if per_object:
        obj = np.concatenate([p[0] for p in per_object])
        dirs = np.concatenate([p[1] for p in per_object])
        fb = np.concatenate([p[2] for p in per_object])
        key = np.unique(np.stack([obj, dirs, fb], axis=1), axis=0)   # union per object
        of, counts = np.unique(np.stack([key[:, 0], key[:, 1], key[:, 2] // nbins], axis=1),
                               axis=0, return_counts=True)
        placed = np.bincount(of[:, 0], weights=counts * r * r, minlength=len(placed))
        order = np.lexsort((-counts, of[:, 0]))
        first = order[np.r_[True, of[order[1:], 0] != of[order[:-1], 0]]]
        for o, d, f, cnt in zip(of[first, 0], of[first, 1], of[first, 2], counts[first]):
            if cnt * r * r >= MAIN_FACE_MIN_AREA:
                kind = OPENING_KINDS.index(openings["objects"][o]["kind"])
                main[kind, d].flat[f] = True
    return {"cover": cover, "main": main, "unassigned": unassigned, "placed": placed}


def label_faces(occ: np.ndarray, openings: dict, cell: float,
                parts: tuple[str, ...] = DEFAULT_PARTS) -> tuple[np.ndarray, dict]:
    """``(labels int8[X, Y, Z, 6], coverage)``: labels on exactly the exterior faces (rule:
    module docstring) and what :func:`opening_coverage` found."""
    vocab = Vocabulary(tuple(parts))
    wall, window, door = vocab.role("wall"), vocab.role("window"), vocab.role("door")
    roof, ground = vocab.role("roof"), vocab.role("ground")
    ext = exterior_faces_by_direction(occ)
    coverage = opening_coverage(occ, openings, cell)
    cover, main = coverage["cover"], coverage["main"]
    labels = np.full(occ.shape + (6,), NO_PART, dtype=np.int8)
    for d in range(4):
        part = side_parts(cover[0, d], cover[1, d], main[0, d], main[1, d], wall, window, door)
        np.copyto(labels[..., d], part, where=ext[d])
    np.copyto(labels[..., UP], np.int8(roof), where=ext[UP])
    np.copyto(labels[..., DOWN], np.int8(wall), where=ext[DOWN])
    np.copyto(labels[:, :, 0, DOWN], np.int8(ground), where=ext[DOWN][:, :, 0])
    return labels, coverage


# -- statistics -----------------------------------------------------------------------------
def _stats(building, table, points, occ, labels, openings, coverage, parts, method, dominance,
           cell) -> dict:
    surfaces = {}
    for s in building.surfaces:
        surfaces[s.kind] = surfaces.get(s.kind, 0) + 1
    # volume enclosed by the shell, divergence theorem (exact when the shell is closed)
    volume = float(np.sum(table.weights * table.sample_normals[:, 2] * points[:, 2]))
    Z = occ.shape[2]
    per_layer = {k: [0] * Z for k in OPENING_KINDS}
    for o in openings["objects"]:
        per_layer[o["kind"]][o["layer"]] += 1
    stats = {
        "grid_shape": list(occ.shape),
        "cells": int(occ.sum()),
        "occupancy_method": method,
        "shell_volume_m3": round(volume, 1),
        "grid_volume_m3": round(float(occ.sum()) * cell ** 3, 1),
        "extent_m": [round(float(e), 2) for e in points.max(axis=0) - points.min(axis=0)],
        "rotation_share": round(dominance, 3),
        "surfaces": surfaces,
        "area_m2": {k: round(float(table.area[table.kinds == k].sum()), 1)
                    for k in np.unique(table.kinds)},
        "openings": {"Window": sum(per_layer["Window"]), "Door": sum(per_layer["Door"]),
                     "not_facing_a_side": sum(o["direction"] is None for o in openings["objects"]),
                     "turned_round": sum(o["flipped"] for o in openings["objects"])},
        "openings_per_layer": per_layer,
        "roof_step_side_faces": _roof_step_faces(table, points, occ, cell),
    }
    if labels is not None:
        counts = np.bincount(labels[labels >= 0].astype(np.int64), minlength=len(parts))
        stats["faces_per_part"] = {name: int(c) for name, c in zip(parts, counts)}
        stats["opening_faces_per_layer"] = {
            name: [int(np.count_nonzero(labels[:, :, k, :] == parts.index(name))) for k in range(Z)]
            for name in ("window", "door") if name in parts}
        stats["opening_faces_top_bottom"] = int(np.count_nonzero(np.isin(
            labels[..., 4:], [parts.index(n) for n in ("window", "door") if n in parts])))
        stats["unassigned_opening_m2"] = {k: round(v, 2) for k, v in coverage["unassigned"].items()}
        placed = coverage["placed"]
        stats["openings_without_face"] = int(sum(
            1 for o, p in zip(openings["objects"], placed) if o["direction"] is not None and p == 0))
    return stats


def _roof_step_faces(table, points, occ, cell) -> int:
    """Side faces where roof area outweighs wall area in the two cells either side: the
    sides of the steps a sloped roof makes (labelled wall; counted for the record)."""
    shape = np.array(occ.shape)
    idx = np.floor(points / cell).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < shape), axis=1)
    flat = np.ravel_multi_index(tuple(idx[ok].T), occ.shape)
    kinds = table.sample_kinds[ok]
    w = table.weights[ok]
    roof = np.bincount(flat[kinds == "RoofSurface"], weights=w[kinds == "RoofSurface"],
                       minlength=occ.size).reshape(occ.shape)
    wall = np.bincount(flat[kinds == "WallSurface"], weights=w[kinds == "WallSurface"],
                       minlength=occ.size).reshape(occ.shape)
    ext = exterior_faces_by_direction(occ)
    total = 0
    for d in range(4):
        offset = tuple(int(v) for v in DIRECTION_VECTORS[d])
        r = roof + shifted(roof, offset, fill=0.0)
        wl = wall + shifted(wall, offset, fill=0.0)
        total += int(np.count_nonzero(ext[d] & (r > wl)))
    return total
