"""Building massing on a voxel grid, as height fields built from rectangles.

Each archetype draws a footprint made of a few rectangles and a height for each, fills a
2-D height map with numpy slicing, and places it at a random offset in the grid. The
occupancy is then ``z < height[x, y]``: no per-cell Python loops anywhere.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Rect = tuple[int, int, int, int, int]  # x0, x1, y0, y1, height


def _span(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Random integer in [lo, hi], tolerant of hi < lo on very small grids."""
    return int(rng.integers(lo, max(lo, hi) + 1))


def _canvas(rects: list[Rect]) -> np.ndarray:
    w = max(r[1] for r in rects)
    d = max(r[3] for r in rects)
    hm = np.zeros((w, d), dtype=np.int32)
    for x0, x1, y0, y1, h in rects:
        np.maximum(hm[x0:x1, y0:y1], h, out=hm[x0:x1, y0:y1])
    return hm


def slab(rng, W, D, H):
    w, d = _span(rng, max(4, W // 2), W - 1), _span(rng, 2, max(3, D // 4))
    return [(0, w, 0, d, _span(rng, 2, max(3, (H * 2) // 3)))], None


def tower(rng, W, D, H):
    s = _span(rng, 2, max(3, min(W, D) // 3))
    rects = []
    off = 0
    if rng.random() < 0.5 and min(W, D) >= s + 4:
        pod = s + 2 * _span(rng, 1, 2)
        rects.append((0, pod, 0, pod, _span(rng, 1, 2)))
        off = (pod - s) // 2
    rects.append((off, off + s, off, off + s, _span(rng, max(4, (H * 2) // 3), H)))
    return rects, None


def setback(rng, W, D, H):
    w, d = _span(rng, max(5, W // 2), W - 1), _span(rng, max(5, D // 2), D - 1)
    rects, x0, x1, y0, y1 = [], 0, w, 0, d
    h = 0
    for _ in range(_span(rng, 2, 4)):
        h = min(H, h + _span(rng, 1, max(2, H // 4)))
        rects.append((x0, x1, y0, y1, h))
        sides = rng.random(4) < 0.5
        sides[rng.integers(4)] = True
        x0, x1 = x0 + int(sides[0]), x1 - int(sides[1])
        y0, y1 = y0 + int(sides[2]), y1 - int(sides[3])
        if x1 - x0 < 2 or y1 - y0 < 2 or h >= H:
            break
    return rects, None


def _wing(rng, n: int) -> int:
    return _span(rng, 2, max(2, min(4, n // 3)))


def l_block(rng, W, D, H):
    w, d = _span(rng, max(5, W // 2), W - 1), _span(rng, max(5, D // 2), D - 1)
    a, b = _wing(rng, D), _wing(rng, W)
    h1 = _span(rng, 2, max(3, H // 2))
    h2 = h1 if rng.random() < 0.5 else _span(rng, 2, max(3, H // 2))
    return [(0, w, 0, a, h1), (0, b, 0, d, h2)], None


def t_block(rng, W, D, H):
    w, d = _span(rng, max(6, W // 2), W - 1), _span(rng, max(5, D // 2), D - 1)
    a, b = _wing(rng, D), _wing(rng, W)
    c = (w - b) // 2
    h1 = _span(rng, 2, max(3, H // 2))
    h2 = h1 if rng.random() < 0.5 else _span(rng, 2, max(3, H // 2))
    return [(0, w, 0, a, h1), (c, c + b, 0, d, h2)], None


def u_block(rng, W, D, H):
    w, d = _span(rng, max(7, W // 2), W - 1), _span(rng, max(5, D // 2), D - 1)
    a, b = _wing(rng, D), _wing(rng, W)
    h = _span(rng, 2, max(3, H // 2))
    return [(0, w, 0, a, h), (0, b, 0, d, h), (w - b, w, 0, d, h)], None


def courtyard(rng, W, D, H):
    w, d = _span(rng, max(7, W // 2), W - 1), _span(rng, max(7, D // 2), D - 1)
    t = _span(rng, 2, max(2, min(w, d) // 3 - 1))
    h = _span(rng, 2, max(3, H // 3))
    return [(0, w, 0, t, h), (0, w, d - t, d, h), (0, t, 0, d, h), (w - t, w, 0, d, h)], None


def pagoda(rng, W, D, H):
    s = _span(rng, max(5, min(W, D) // 2), min(W, D) - 1)
    rects, h, lo, hi = [], 0, 0, s
    while hi - lo >= 1 and h < H:
        h = min(H, h + _span(rng, 1, 2))
        rects.append((lo, hi, lo, hi, h))
        lo, hi = lo + 1, hi - 1
    return rects, None


def row_houses(rng, W, D, H):
    """Houses side by side along x, fronts facing -y, every other one set back a cell."""
    rects, x = [], 0
    depth = _span(rng, 3, max(3, D // 3))
    limit = W - 1
    n = 0
    while n < 6:
        width = _span(rng, 2, 3)
        if x + width > limit and n >= 2:
            break
        width = min(width, max(1, limit - x))
        back = n % 2
        rects.append((x, x + width, back, back + depth, _span(rng, 2, max(3, H // 3))))
        x += width
        n += 1
        if x >= limit:
            break
    return rects, 3  # street side -y: the staggered fronts face it


ARCHETYPE_FUNCTIONS: dict[str, Callable] = {
    "slab": slab, "tower": tower, "setback": setback, "l_block": l_block,
    "t_block": t_block, "u_block": u_block, "courtyard": courtyard,
    "pagoda": pagoda, "row_houses": row_houses,
}


def orient(hm: np.ndarray, street_side: int | None, rng) -> tuple[np.ndarray, int | None]:
    """Rotate the height map by a random quarter turn, carrying a fixed street side along."""
    k = int(rng.integers(4))
    # A quarter turn (np.rot90 in the x-y plane) maps +x -> +y -> -x -> -y -> +x.
    turn = {0: 2, 2: 1, 1: 3, 3: 0}
    if street_side is not None:
        for _ in range(k):
            street_side = turn[street_side]
    return np.ascontiguousarray(np.rot90(hm, k) if k else hm), street_side


def height_map(archetype: str, rng: np.random.Generator, size) -> tuple[np.ndarray, int | None]:
    """Draw an archetype and place it in the grid: ``(int32[X, Y] heights, street side)``."""
    X, Y, Z = size
    side = min(X, Y)
    rects, street = ARCHETYPE_FUNCTIONS[archetype](rng, side, side, Z)
    local, street = orient(_canvas(rects), street, rng)
    local = local[:X, :Y]
    hm = np.zeros((X, Y), dtype=np.int32)
    ox = int(rng.integers(0, X - local.shape[0] + 1))
    oy = int(rng.integers(0, Y - local.shape[1] + 1))
    hm[ox:ox + local.shape[0], oy:oy + local.shape[1]] = np.minimum(local, Z)
    if not hm.any():  # degenerate draws on tiny grids: keep at least one cell
        hm[X // 2, Y // 2] = 1
    return hm, street


def occupancy_from_heights(hm: np.ndarray, Z: int) -> np.ndarray:
    """``uint8[X, Y, Z]``: 1 below each column's height (a 0/1 view of the boolean grid)."""
    return (np.arange(Z, dtype=hm.dtype) < hm[:, :, None]).view(np.uint8)
