"""The mesh path of the facade grammar: every wing as an exact, closed, labelled mesh.

A wing is a box up to its eaves with its roof (``roofs.py``) on top: the roof is the graph of
``eave + f(d)`` over the footprint, ``d`` the distance to the nearer eaves edge (all four
edges for hip and mansard roofs, the two eaves walls for a gable), ``f`` piecewise linear.
Its mesh is therefore exact with a few rings: the footprint inset by each break distance of
``f`` (the mansard's knee, the cap of ``max_rise``, the ridge) at that height, joined side by
side; gable ends are the wall polygons under the roof's profile. Walls are tiled at the
edges of every window and door rectangle, so the openings are exact quads with their part
(a window's centre decides); the bottom is ``ground``, the roof ``roof``.

The wings of a building overlap (an L plan is two boxes); the mesh is their union as an
artist's block-out often is: closed, consistently oriented parts that intersect.
``proc_ml.voxelize`` fills such a mesh by its winding number, so the grid is the union's,
exactly as ``proc-ml predict`` voxelises a user's mesh. Attic windows of gable ends are
drawn in the grid labels only (the gable triangle is one polygon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .facades import DOOR, NONE, SHOP, WINDOW, WallTable
from .lots import Lot, Wing
from .parts import Vocabulary
from .roofs import MANSARD_BREAK_M, MANSARD_STEEP_DEG


@dataclass
class LotMesh:
    vertices: np.ndarray        # float64[V, 3], grid frame metres
    triangles: np.ndarray       # int64[T, 3], counter-clockwise seen from outside
    triangle_parts: np.ndarray  # int8[T]


def roof_breaks(wing: Wing) -> list[tuple[float, float]]:
    """``[(d, rise)]``: the distances from the eaves edges where the roof's slope changes
    (0 first, the ridge or the flat cap last), with the rise above the eaves there."""
    if wing.roof == "flat":
        return [(0.0, 0.0)]
    half = (wing.y1 - wing.y0) / 2 if wing.roof == "gable" and wing.ridge_x else \
        (wing.x1 - wing.x0) / 2 if wing.roof == "gable" else \
        min(wing.x1 - wing.x0, wing.y1 - wing.y0) / 2
    t = np.tan(np.radians(wing.pitch))
    if wing.roof == "mansard":
        steep = np.tan(np.radians(MANSARD_STEEP_DEG))
        knee = MANSARD_BREAK_M / steep
        points = [(0.0, 0.0), (knee, MANSARD_BREAK_M)]
        points.append((knee + (half - knee), MANSARD_BREAK_M + t / 2 * (half - knee)))
    else:
        points = [(0.0, 0.0), (half, t * half)]
    out = []
    for (d0, r0), (d1, r1) in zip(points, points[1:]):
        if d1 > half:                          # the ridge comes first: stop the slope there
            r1 = r0 + (r1 - r0) * (half - d0) / (d1 - d0)
            d1 = half
        out.append((d0, r0))
        if r1 > wing.max_rise >= r0:           # capped: a flat top from there on
            out.append((d0 + (wing.max_rise - r0) / (r1 - r0) * (d1 - d0), wing.max_rise))
            return out
        if d1 >= half:
            out.append((d1, r1))
            return out
    out.append(points[-1])
    return out


def _opening_breaks(table: WallTable, wall_index: int, length: float, top: float):
    """u and z positions (wall frame) of every opening edge on a wall."""
    lay_kinds = table.kinds[wall_index]
    bay = table.bay_w[wall_index]
    st = table.style
    us, zs = {0.0, length}, {0.0, top}
    for b, s in zip(*np.nonzero(lay_kinds != NONE)):
        kind = lay_kinds[b, s]
        centre = (b + 0.5) * bay
        base = table.bases[wall_index, s]
        nxt = table.bases[wall_index, s + 1]
        if kind == WINDOW:
            half = st.window_width / 2
            sill = st.ground_sill if s == 0 else st.sill
            z0, z1 = base + sill, base + sill + st.window_height
        elif kind == DOOR:
            half, z0, z1 = st.door_width / 2, base, base + st.door_height
        else:
            from .facades import SHOP_HEAD_GAP, SHOP_PIER, SHOP_SILL
            half = bay / 2 - SHOP_PIER / 2
            z0 = base + SHOP_SILL
            z1 = base + ((nxt - base) if np.isfinite(nxt) else 3.0) - SHOP_HEAD_GAP
        us.update((float(np.clip(centre - half, 0, length)), float(np.clip(centre + half, 0, length))))
        zs.update((float(np.clip(z0, 0, top)), float(np.clip(z1, 0, top))))
    return np.array(sorted(us)), np.array(sorted(zs))


def lot_mesh(lot: Lot, table: WallTable, vocab: Vocabulary, shop_part: str = "window") -> LotMesh:
    """The labelled mesh of ``lot``'s wings (see the module docstring), grid frame."""
    roles = {name: vocab.role(name) for name in ("wall", "window", "door", "roof", "ground")}
    shop = vocab.role(shop_part) if shop_part != "window" else roles["window"]
    part_of = {NONE: roles["wall"], WINDOW: roles["window"], DOOR: roles["door"], SHOP: shop}
    polys: list[tuple[np.ndarray, int]] = []       # convex polygons (local frame), outward CCW
    walls_by_wing: dict[int, list[int]] = {}
    for k in range(len(table.normals)):
        walls_by_wing.setdefault(int(table.wing_of[k]), []).append(k)
    for wi, wing in enumerate(lot.wings):
        walls = {table.sides[k]: k for k in walls_by_wing.get(wi, [])}
        breaks = roof_breaks(wing)
        zs_all = {0.0, wing.eave}
        ubreaks = {}
        for side, k in walls.items():
            us, zs = _opening_breaks(table, k, table.length[k], wing.eave)
            ubreaks[side] = us
            zs_all.update(zs.tolist())
        zs_all = np.array(sorted(zs_all))
        for side, k in walls.items():
            polys += _wall_tiles(table, k, side, wing, ubreaks[side], zs_all, part_of)
        polys += _gable_ends(wing, breaks, ubreaks, roles["wall"])
        polys += _roof(wing, breaks, ubreaks, roles["roof"])
        polys.append((_bottom(wing, ubreaks), roles["ground"]))
    vertices, triangles, parts = _triangulate(polys)
    xy = lot.to_grid(vertices[:, :2])
    return LotMesh(np.column_stack([xy, vertices[:, 2]]), triangles, parts)


def _side_frame(wing: Wing, side: str):
    """Origin (x, y) and u direction of a wall, u running counter-clockwise seen from above
    (so the outward normal is u rotated by -90 degrees)."""
    return {"-y": ((wing.x0, wing.y0), (1.0, 0.0)), "+x": ((wing.x1, wing.y0), (0.0, 1.0)),
            "+y": ((wing.x1, wing.y1), (-1.0, 0.0)), "-x": ((wing.x0, wing.y1), (0.0, -1.0))}[side]


def _to_table_u(side: str, wing: Wing, u_ccw: np.ndarray) -> np.ndarray:
    """Counter-clockwise u -> the wall table's u (from the wall's low coordinate end)."""
    length = (wing.x1 - wing.x0) if side in ("-y", "+y") else (wing.y1 - wing.y0)
    return u_ccw if side in ("-y", "+x") else length - u_ccw


def _wall_tiles(table, k, side, wing, us_table, zs, part_of):
    """The wall up to the eaves as a grid of quads cut at every opening edge, each quad
    labelled by the opening (if any) at its centre."""
    (ox, oy), (dx, dy) = _side_frame(wing, side)
    us = np.sort(_to_table_u(side, wing, us_table))   # ccw positions of the same breaks
    us = us[np.r_[True, np.diff(us) > 1e-9]]
    zs = zs[np.r_[True, np.diff(zs) > 1e-9]]
    if len(us) < 2 or len(zs) < 2:
        return []
    u0, z0 = np.meshgrid(us[:-1], zs[:-1], indexing="ij")
    u1, z1 = np.meshgrid(us[1:], zs[1:], indexing="ij")
    u0, u1, z0, z1 = u0.ravel(), u1.ravel(), z0.ravel(), z1.ravel()
    uc = _to_table_u(side, wing, (u0 + u1) / 2)
    kind = table.openings(np.full(len(uc), k), uc, (z0 + z1) / 2)[0]
    ax, ay, bx, by = ox + dx * u0, oy + dy * u0, ox + dx * u1, oy + dy * u1
    quads = np.stack([np.stack([ax, ay, z0], 1), np.stack([bx, by, z0], 1),
                      np.stack([bx, by, z1], 1), np.stack([ax, ay, z1], 1)], axis=1)
    return [(q, part_of[int(c)]) for q, c in zip(quads, kind)]


def _ring(wing: Wing, d: float) -> tuple[float, float, float, float]:
    """The footprint inset by ``d`` from the eaves edges (gable: the two eaves sides)."""
    x0, x1, y0, y1 = wing.x0, wing.x1, wing.y0, wing.y1
    if wing.roof == "gable":
        if wing.ridge_x:
            mid = (y0 + y1) / 2
            return x0, x1, min(y0 + d, mid), max(y1 - d, mid)
        mid = (x0 + x1) / 2
        return min(x0 + d, mid), max(x1 - d, mid), y0, y1
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return min(x0 + d, mx), max(x1 - d, mx), min(y0 + d, my), max(y1 - d, my)


def _edge_points(a, b, breaks_u):
    """Points from a to b including the (0..1) breaks in between."""
    out = [a]
    for t in breaks_u:
        if 1e-9 < t < 1 - 1e-9:
            out.append(tuple(a[i] + t * (b[i] - a[i]) for i in range(len(a))))
    out.append(b)
    return out


def _eave_breaks(wing: Wing, side: str, ubreaks: dict) -> list[float]:
    if side not in ubreaks:
        return []
    length = (wing.x1 - wing.x0) if side in ("-y", "+y") else (wing.y1 - wing.y0)
    ccw = np.sort(_to_table_u(side, wing, ubreaks[side]))
    return (ccw / length).tolist()


def _roof(wing: Wing, breaks, ubreaks, roof_part):
    """Rings of the roof joined side by side, and the flat cap (or the flat roof)."""
    polys = []
    corners = lambda r, h: [(r[0], r[2], h), (r[1], r[2], h), (r[1], r[3], h), (r[0], r[3], h)]  # noqa: E731
    sides = ("-y", "+x", "+y", "-x")
    rings = [(corners(_ring(wing, d), wing.eave + rise)) for d, rise in breaks]
    for level, (inner, outer) in enumerate(zip(rings[1:], rings[:-1])):
        for s, side in enumerate(sides):
            a, b = outer[s], outer[(s + 1) % 4]
            c, d = inner[(s + 1) % 4], inner[s]
            bottom = _edge_points(a, b, _eave_breaks(wing, side, ubreaks)) if level == 0 else [a, b]
            if wing.roof == "gable" and _is_gable_side(wing, side):
                continue                     # a gable end: the wall polygon closes it
            polys.append((np.array(bottom + [c, d]), roof_part))
    top = rings[-1]
    if len(breaks) == 1:                     # flat: one polygon with the walls' breaks
        pts = []
        for s, side in enumerate(sides):
            pts += _edge_points(top[s], top[(s + 1) % 4], _eave_breaks(wing, side, ubreaks))[:-1]
        polys.append((np.array(pts), roof_part))
    else:
        polys.append((np.array(top), roof_part))
    return polys


def _is_gable_side(wing: Wing, side: str) -> bool:
    return (side in ("-x", "+x")) == wing.ridge_x


def _gable_ends(wing: Wing, breaks, ubreaks, wall_part):
    """The wall polygons above the eaves at the two gable ends (gable roofs only)."""
    if wing.roof != "gable" or len(breaks) < 2:
        return []
    polys = []
    for side in ("-y", "+x", "+y", "-x"):
        if not _is_gable_side(wing, side):
            continue
        (ox, oy), (dx, dy) = _side_frame(wing, side)
        length = (wing.x1 - wing.x0) if side in ("-y", "+y") else (wing.y1 - wing.y0)
        pts = [(ox, oy, wing.eave)]
        # the eaves line, with the breaks of the wall tiles below it (no T-junctions)
        for t in _eave_breaks(wing, side, ubreaks):
            if 1e-9 < t < 1 - 1e-9:
                pts.append((ox + dx * t * length, oy + dy * t * length, wing.eave))
        pts.append((ox + dx * length, oy + dy * length, wing.eave))
        for d, rise in breaks[1:]:
            u = length - d
            pts.append((ox + dx * u, oy + dy * u, wing.eave + rise))
        for d, rise in reversed(breaks[1:]):
            pts.append((ox + dx * d, oy + dy * d, wing.eave + rise))
        polys.append((np.array(pts), wall_part))
    return polys


def _bottom(wing: Wing, ubreaks) -> np.ndarray:
    pts = []
    c = [(wing.x0, wing.y0, 0.0), (wing.x1, wing.y0, 0.0), (wing.x1, wing.y1, 0.0), (wing.x0, wing.y1, 0.0)]
    for s, side in enumerate(("-y", "+x", "+y", "-x")):
        pts += _edge_points(c[s], c[(s + 1) % 4], _eave_breaks(wing, side, ubreaks))[:-1]
    return np.array(pts[::-1])               # seen from below: clockwise from above


def _triangulate(polys):
    """Triangulate convex polygons (quads split in two, larger ones fanned from their
    centroid, so points on an edge make no slivers); merge coincident vertices."""
    corners, parts = [], []
    for poly, part in polys:
        poly = _dedupe(poly)
        if len(poly) < 3:
            continue
        if len(poly) <= 4:
            tri = np.stack([np.repeat(poly[:1], len(poly) - 2, axis=0), poly[1:-1], poly[2:]], axis=1)
        else:
            centre = np.repeat(poly.mean(axis=0, keepdims=True), len(poly), axis=0)
            tri = np.stack([centre, poly, np.roll(poly, -1, axis=0)], axis=1)
        corners.append(tri)
        parts.append(np.full(len(tri), part, dtype=np.int8))
    corners = np.concatenate(corners)
    parts = np.concatenate(parts)
    flat = corners.reshape(-1, 3)
    _, first, inverse = np.unique(np.round(flat, 7), axis=0, return_index=True, return_inverse=True)
    tri = inverse.reshape(-1, 3)
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    return flat[first], tri[keep], parts[keep]


def _dedupe(poly: np.ndarray) -> np.ndarray:
    keep = np.ones(len(poly), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(poly, axis=0), axis=1) > 1e-9
    if len(poly) > 1 and np.linalg.norm(poly[0] - poly[-1]) <= 1e-9:
        keep[-1] = False
    return poly[keep]
