"""Polygon geometry on numpy arrays: normals, areas, area samples, fan triangles, winding numbers.

No triangulation library is needed: a polygon (with holes) is handled through

* its Newell normal and area (holes subtracted);
* an even-odd point-in-polygon test in the polygon's own plane, which gives area samples
  (points on a lattice inside the polygon, weights summing to its area) and rasterises it;
* fan triangles of every ring (holes reversed against the exterior): their signed solid
  angles add up to the polygon's exactly, which is all a winding number needs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .model import OPENING_KINDS, Polygon, Surface, keep_surfaces

#: At most this many lattice points per polygon (the spacing grows for huge polygons).
MAX_SAMPLES_PER_POLYGON = 20000


def newell(ring: np.ndarray) -> np.ndarray:
    """Newell vector of a ring float64[N, 3]: normal times twice the area (right-hand rule)."""
    nxt = np.concatenate([ring[1:], ring[:1]])
    d, s = ring - nxt, ring + nxt
    return np.array([np.dot(d[:, 1], s[:, 2]), np.dot(d[:, 2], s[:, 0]), np.dot(d[:, 0], s[:, 1])])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def normal_area(poly: Polygon) -> tuple[np.ndarray, float]:
    """Unit normal (of the exterior ring) and area (holes subtracted) of a polygon."""
    n = newell(poly.exterior)
    length = float(np.linalg.norm(n))
    if length == 0.0:
        return np.zeros(3), 0.0
    area = length / 2 - sum(float(np.linalg.norm(newell(h))) / 2 for h in poly.interiors)
    return n / length, max(area, 0.0)


def plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane normal to ``normal``."""
    helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
    u = _cross(normal, helper)
    u /= np.linalg.norm(u)
    return u, _cross(normal, u)


def ring_edges_2d(rings_2d: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points float64[M, 2] of every edge of every (closed) ring."""
    a = np.concatenate(rings_2d)
    b = np.concatenate([np.concatenate([r[1:], r[:1]]) for r in rings_2d])
    return a, b


def inside_even_odd(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool[P]: points float64[P, 2] inside the region bounded by edges a->b (even-odd rule)."""
    px, py = points[:, 0:1], points[:, 1:2]
    ax, ay, bx, by = a[None, :, 0], a[None, :, 1], b[None, :, 0], b[None, :, 1]
    straddle = (ay > py) != (by > py)
    dy = np.where(by == ay, 1.0, by - ay)
    x_cross = ax + (py - ay) * (bx - ax) / dy
    return (np.count_nonzero(straddle & (px < x_cross), axis=1) % 2) == 1


def lattice(lo: np.ndarray, hi: np.ndarray, spacing: float) -> np.ndarray:
    """Centres float64[P, 2] of a lattice of ``spacing`` covering the box [lo, hi]."""
    n = np.maximum(1, np.ceil((hi - lo) / spacing).astype(np.int64))
    start = (lo + hi) / 2 - (n - 1) * spacing / 2
    xs = start[0] + spacing * np.arange(n[0])
    ys = start[1] + spacing * np.arange(n[1])
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def sample_polygon(poly: Polygon, spacing: float):
    """Area samples of one polygon: ``(points [P, 3], weights [P], normal [3], area)``.

    Points lie on a lattice of ``spacing`` (coarser for huge polygons) inside the polygon;
    the weights add up to its area. A polygon too thin to hold a lattice point gets one
    sample at its vertex mean. Degenerate polygons give no samples.
    """
    normal, area = normal_area(poly)
    if area <= 0.0:
        return np.zeros((0, 3)), np.zeros(0), normal, 0.0
    if area < 0.5 * spacing * spacing:        # too small for a lattice: one sample
        return poly.exterior.mean(axis=0)[None], np.array([area]), normal, area
    u, v = plane_basis(normal)
    centre = poly.exterior.mean(axis=0)
    rings_2d = [np.stack([(r - centre) @ u, (r - centre) @ v], axis=1) for r in poly.rings]
    lo, hi = rings_2d[0].min(axis=0), rings_2d[0].max(axis=0)
    box = float(np.prod(np.maximum(hi - lo, 1e-9)))
    step = max(spacing, np.sqrt(box / MAX_SAMPLES_PER_POLYGON))
    grid = lattice(lo, hi, step)
    a, b = ring_edges_2d(rings_2d)
    grid = grid[inside_even_odd(grid, a, b)]
    if len(grid) == 0:
        points = centre[None]
    else:
        points = centre + grid[:, :1] * u + grid[:, 1:] * v
    weights = np.full(len(points), area / len(points))
    return points, weights, normal, area


def fan_triangles(poly: Polygon) -> np.ndarray:
    """float64[T, 3, 3]: fan triangles of every ring, holes turned against the exterior.

    Their signed solid angles (and area vectors) add up to the polygon's, whatever the
    polygon's shape: what winding numbers need, not a triangulation for display.
    """
    n_ext = newell(poly.exterior)
    out = []
    for i, ring in enumerate(poly.rings):
        if i > 0 and float(newell(ring) @ n_ext) > 0:
            ring = ring[::-1]
        if len(ring) < 3:
            continue
        out.append(np.stack([np.repeat(ring[:1], len(ring) - 2, axis=0), ring[1:-1], ring[2:]],
                            axis=1))
    return np.concatenate(out) if out else np.zeros((0, 3, 3))


def winding_numbers(points: np.ndarray, triangles: np.ndarray, chunk: int = 500_000) -> np.ndarray:
    """Generalised winding number float64[P] of points w.r.t. triangles float64[T, 3, 3].

    The sum of the triangles' signed solid angles over 4 pi (Van Oosterom & Strackee):
    ~1 inside a closed outward-oriented surface, ~0 outside, and a smooth value in between
    where the surface has holes (Jacobson et al. 2013). Points x triangles are processed in
    chunks of about ``chunk`` pairs (~100 MB of temporaries).
    """
    out = np.zeros(len(points))
    if len(points) == 0 or len(triangles) == 0:
        return out
    step = max(1, chunk // len(triangles))
    v0, v1, v2 = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    for s in range(0, len(points), step):
        p = points[s:s + step, None, :]
        a, b, c = v0[None] - p, v1[None] - p, v2[None] - p
        la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
        det = np.einsum("pti,pti->pt", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("pti,pti->pt", a, b) * lc
               + np.einsum("pti,pti->pt", a, c) * lb + np.einsum("pti,pti->pt", b, c) * la)
        out[s:s + step] = np.arctan2(det, den).sum(axis=1) / (2 * np.pi)
    return out


def merge_vertices(pts: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """``(index into merged [P], merged vertices [V, 3])``: points within ``tol`` of each
    other (chains of them) become one, whatever the rounding grid's phase."""
    low = pts.min(axis=0)
    grid = np.floor((pts - low) / tol).astype(np.int64) + 1
    span = grid.max(axis=0) + 2
    keys = (grid[:, 0] * span[1] + grid[:, 1]) * span[2] + grid[:, 2]
    ukeys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    upts = pts[first]
    ugrid = grid[first]
    # pairs of occupied rounding cells that touch and hold points within tol
    offsets = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                        if (i, j, k) > (0, 0, 0)])
    nb = ugrid[:, None, :] + offsets[None]
    nkeys = (nb[..., 0] * span[1] + nb[..., 1]) * span[2] + nb[..., 2]
    pos = np.clip(np.searchsorted(ukeys, nkeys), 0, len(ukeys) - 1)
    hit = ukeys[pos] == nkeys
    a = np.repeat(np.arange(len(ukeys)), offsets.shape[0])[hit.ravel()]
    b = pos[hit]
    close = np.linalg.norm(upts[a] - upts[b], axis=1) <= tol
    a, b = a[close], b[close]
    label = np.arange(len(ukeys))
    while len(a):                       # connected components by label propagation
        low_ab = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low_ab)
        np.minimum.at(new, b, low_ab)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    roots, merged = np.unique(label, return_inverse=True)
    return merged.reshape(-1)[inverse], upts[roots]


def open_edge_length(polygons: list[Polygon], tol: float = 2e-3, bucket: float = 0.5) -> tuple[float, float]:
    """``(open, total)`` edge length of a polygon shell: is it watertight?

    Vertices closer than ``tol`` are merged; every ring edge is split at the vertices lying
    on it (T-junctions, the normal case in CityGML where a wall meets two roof polygons);
    a piece used by an odd number of rings is open. A shell is watertight when no piece is
    open. Vertices near an edge are found through a spatial hash of ``bucket``-sized cells.
    """
    rings = [r for p in polygons for r in p.rings if len(r) >= 3]
    if not rings:
        return 0.0, 0.0
    pts = np.concatenate(rings)
    vid, verts = merge_vertices(pts, tol)
    starts = np.cumsum([0] + [len(r) for r in rings[:-1]])
    a = np.concatenate([s + np.arange(len(r)) for s, r in zip(starts, rings)])
    b = np.concatenate([s + np.roll(np.arange(len(r)), -1) for s, r in zip(starts, rings)])
    ea, eb = vid[a], vid[b]
    keep = ea != eb
    ea, eb = ea[keep], eb[keep]
    pa, pb = verts[ea], verts[eb]
    length = np.linalg.norm(pb - pa, axis=1)
    # (edge, hash cell) for points every bucket/8 along each edge, widened by bucket/16
    n = np.maximum(1, np.ceil(length / (bucket / 8)).astype(np.int64)) + 1
    edge = np.repeat(np.arange(len(ea)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n - 1, n)
    samples = pa[edge] + t[:, None] * (pb - pa)[edge]
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
    cells = np.floor((samples[:, None, :] + corners[None] * (bucket / 16)) / bucket).astype(np.int64)
    edge = np.repeat(edge, len(corners))
    cells = cells.reshape(-1, 3)
    vcells = np.floor(verts / bucket).astype(np.int64)
    lo = np.minimum(cells.min(axis=0), vcells.min(axis=0))
    span = np.maximum(cells.max(axis=0), vcells.max(axis=0)) - lo + 1
    ckey = ((cells[:, 0] - lo[0]) * span[1] + cells[:, 1] - lo[1]) * span[2] + cells[:, 2] - lo[2]
    vkey = ((vcells[:, 0] - lo[0]) * span[1] + vcells[:, 1] - lo[1]) * span[2] + vcells[:, 2] - lo[2]
    ncell = int(span.prod())
    pair_key = np.unique(edge * ncell + ckey)
    pair = np.stack([pair_key // ncell, pair_key % ncell], axis=1)
    order = np.argsort(vkey, kind="stable")
    sorted_keys = vkey[order]
    left = np.searchsorted(sorted_keys, pair[:, 1], side="left")
    right = np.searchsorted(sorted_keys, pair[:, 1], side="right")
    count = right - left
    cand_edge = np.repeat(pair[:, 0], count)
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    cand_vert = order[np.repeat(left, count) + offsets]
    d = pb[cand_edge] - pa[cand_edge]
    tt = np.einsum("ij,ij->i", verts[cand_vert] - pa[cand_edge], d) / np.maximum(
        np.einsum("ij,ij->i", d, d), 1e-30)
    foot = pa[cand_edge] + tt[:, None] * d
    on = (tt > 0) & (tt < 1) & (np.linalg.norm(verts[cand_vert] - foot, axis=1) <= tol) \
        & (cand_vert != ea[cand_edge]) & (cand_vert != eb[cand_edge])
    # split points per edge: its two ends plus the vertices on it, sorted along it
    e_all = np.concatenate([np.arange(len(ea)), np.arange(len(ea)), cand_edge[on]])
    t_all = np.concatenate([np.zeros(len(ea)), np.ones(len(ea)), tt[on]])
    v_all = np.concatenate([ea, eb, cand_vert[on]])
    order = np.lexsort((t_all, e_all))
    e_all, v_all = e_all[order], v_all[order]
    same = e_all[1:] == e_all[:-1]
    s0, s1 = v_all[:-1][same], v_all[1:][same]
    s0, s1 = s0[s0 != s1], s1[s0 != s1]
    lo_v, hi_v = np.minimum(s0, s1), np.maximum(s0, s1)
    piece_keys, counts = np.unique(lo_v * len(verts) + hi_v, return_counts=True)
    pieces = np.stack([piece_keys // len(verts), piece_keys % len(verts)], axis=1)
    piece_len = np.linalg.norm(verts[pieces[:, 1]] - verts[pieces[:, 0]], axis=1)
    odd = counts % 2 == 1
    return float(piece_len[odd].sum()), float(piece_len.sum())


# -- copies of one polygon ------------------------------------------------------------------
#: Two polygons whose vertices lie within this distance (m) of each other's, in the same
#: cyclic order (either way round), holes too, are copies of one polygon. Exporters that
#: write every polygon twice put the copy 0-2 mm away; a pane set back behind its frame, or
#: the two faces of a thin slab, are centimetres apart and are not copies.
DUPLICATE_TOLERANCE = 0.01
_NEIGHBOURS = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]


def ring_match(a: np.ndarray, b: np.ndarray, tol: float) -> int:
    """1 when ring ``b`` has ``a``'s vertices (each within ``tol``) in the same cyclic order,
    -1 when in the reverse order (the other winding), 0 when it is another ring."""
    if len(a) != len(b):
        return 0
    n = len(b)
    for j in np.flatnonzero(np.linalg.norm(b - a[0], axis=1) <= tol):
        if np.all(np.linalg.norm(np.roll(b, -j, axis=0) - a, axis=1) <= tol):
            return 1
        if np.all(np.linalg.norm(np.roll(b[::-1], j + 1 - n, axis=0) - a, axis=1) <= tol):
            return -1
    return 0


def same_polygon(a: Polygon, b: Polygon, tol: float = DUPLICATE_TOLERANCE) -> int:
    """:func:`ring_match` of the exteriors when the holes match too (in any order), else 0."""
    m = ring_match(a.exterior, b.exterior, tol)
    if not m or len(a.interiors) != len(b.interiors):
        return 0
    rest = list(b.interiors)
    for hole in a.interiors:
        k = next((k for k, r in enumerate(rest) if ring_match(hole, r, tol)), None)
        if k is None:
            return 0
        rest.pop(k)
    return m


def duplicate_polygons(polygons: list[Polygon], tol: float = DUPLICATE_TOLERANCE,
                       groups=None) -> tuple[list[int], int]:
    """``(indices, reversed)``: the polygons that repeat an earlier one of the list
    (:func:`same_polygon`), and how many of those are wound the other way round.
    Polygons that merely share an edge or a vertex are not copies. ``groups`` (one key per
    polygon, e.g. its BuildingPart): a polygon wound the other way round in another group
    is not a copy -- it is the other side of a wall two closed parts share, and dropping
    it would open the shell."""
    if not polygons:
        return [], 0
    # copies have the same vertex count and vertex means within tol: neighbouring cells
    counts = np.array([len(p.exterior) for p in polygons])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(np.concatenate([p.exterior for p in polygons]), starts,
                            axis=0) / counts[:, None]
    keys = np.floor(means / tol).astype(np.int64).tolist()
    cells: dict[tuple, list[int]] = {}
    dups, turned = [], 0
    for i, (poly, (x, y, z)) in enumerate(zip(polygons, keys)):
        n = len(poly.exterior)
        match = 0
        for dx, dy, dz in _NEIGHBOURS:
            for j in cells.get((n, x + dx, y + dy, z + dz), ()):
                match = same_polygon(polygons[j], poly, tol)
                if match < 0 and groups is not None and groups[j] != groups[i]:
                    match = 0           # a wall shared by two parts, one side each
                if match:
                    break
            if match:
                break
        if match:
            dups.append(i)
            turned += match < 0
        else:
            cells.setdefault((n, x, y, z), []).append(i)
    return dups, turned


def drop_duplicate_polygons(surfaces: list[Surface], tol: float = DUPLICATE_TOLERANCE,
                            owners=None) -> tuple[list[Surface], str | None]:
    """The surfaces without the shell polygons that copy another shell polygon of the
    building (:func:`duplicate_polygons`; installations are not looked at), and a note
    saying how many were dropped (None when none). Of two copies the one kept is a
    Window / Door's over a boundary surface's over an Unclassified one, else the first in
    the file; a surface left without polygons is dropped (openings' parents renumbered).
    ``owners`` (one per surface: its Building / BuildingPart): the two sides of a wall two
    parts share (the same polygon wound the other way in another owner) are both kept."""
    rank = {k: 0 for k in OPENING_KINDS}
    rank["Unclassified"] = 2
    entries = sorted(((rank.get(s.kind, 1), si, pi) for si, s in enumerate(surfaces)
                      if s.kind != "BuildingInstallation" for pi in range(len(s.polygons))),
                     key=lambda e: e[0])
    groups = None if owners is None else [owners[si] for _, si, _ in entries]
    dups, turned = duplicate_polygons([surfaces[si].polygons[pi] for _, si, pi in entries], tol,
                                      groups)
    if not dups:
        return surfaces, None
    drop = {(entries[i][1], entries[i][2]) for i in dups}
    thinned = [replace(s, polygons=[p for pi, p in enumerate(s.polygons) if (si, pi) not in drop])
               for si, s in enumerate(surfaces)]
    kept = keep_surfaces(thinned, [bool(t.polygons) or not s.polygons
                                   for s, t in zip(surfaces, thinned)])
    n = len(dups)
    other_way = f", {turned} of them wound the other way" if turned else ""
    return kept, (f"{n} duplicate polygon{'s' if n > 1 else ''} dropped (a copy of another "
                  f"within {tol * 100:g} cm{other_way})")


def vector_area(polygons: list[Polygon]) -> tuple[np.ndarray, float]:
    """``(sum of normal x area, sum of area)`` of polygons: the first is zero for a closed
    shell, and the vector area of its holes otherwise."""
    total, area = np.zeros(3), 0.0
    for p in polygons:
        n, a = normal_area(p)
        total += n * a
        area += a
    return total, area


def closes_holes(shell: list[Polygon], added: list[Polygon], slack: float = 0.05) -> bool:
    """Whether adding ``added`` to ``shell`` leaves its holes no bigger (the length of the
    vector area grows by at most ``slack`` of the added area): a missing roof or ground
    closes a hole, walls all round change nothing, a second bottom under one that is
    already there opens one."""
    before, _ = vector_area(shell)
    extra, area = vector_area(added)
    return bool(np.linalg.norm(before + extra) <= np.linalg.norm(before) + slack * area)


# -- does one part lie inside another? ------------------------------------------------------
def share_inside(shell: list[Polygon], part: list[Polygon], depth: float = 0.3,
                 max_probes: int = 600) -> float:
    """Area share (0-1) of ``part`` (a closed-ish shell) whose inside -- probes ``depth`` m
    behind its faces -- lies inside ``shell`` (generalised winding number above 1/2 in
    absolute value, so either winding of ``shell`` counts). A part next to ``shell`` (a
    shared wall) gives ~0, a part inside it ~1."""
    tris = [fan_triangles(p) for p in shell]
    tris = np.concatenate(tris) if tris else np.zeros((0, 3, 3))
    sampled = [(normal_area(p), p) for p in part]
    total = sum(a for (_, a), _ in sampled)
    if len(tris) == 0 or total <= 0:
        return 0.0
    # which way the part is wound: sign of its volume (divergence theorem, field x / 3)
    ref = np.concatenate([p.exterior for p in part]).mean(axis=0)
    volume = sum(float(n @ (p.exterior.mean(axis=0) - ref)) * a for (n, a), p in sampled)
    inward = -1.0 if volume >= 0 else 1.0
    spacing = max(0.25, float(np.sqrt(total / max_probes)))
    pts, wts = [], []
    for (normal, area), poly in sampled:
        if area <= 0:
            continue
        p, w, _, _ = sample_polygon(poly, spacing)
        pts.append(p + inward * depth * normal)
        wts.append(w)
    pts, wts = np.concatenate(pts), np.concatenate(wts)
    if len(pts) > max_probes:
        pick = np.linspace(0, len(pts) - 1, max_probes).astype(np.int64)
        pts, wts = pts[pick], wts[pick]
    w = winding_numbers(pts, tris)
    return float(wts[np.abs(w) > 0.5].sum() / wts.sum())
