"""A straightforward per-cell Python version of the generator's rules.

Kept as the reference the vectorised code is tested against and benchmarked against
(``benchmarks/bench_generate.py``). Not used in production paths.
"""

from __future__ import annotations

import numpy as np

from ..grid import DIRECTION_VECTORS, NO_PART
from .building import Building, building_rng, draw_massing
from .parts import Vocabulary


def _occupied(occ, x, y, z) -> bool:
    X, Y, Z = len(occ), len(occ[0]), len(occ[0][0])
    return 0 <= x < X and 0 <= y < Y and 0 <= z < Z and occ[x][y][z]


def _exterior(occ, x, y, z, d) -> bool:
    dx, dy, dz = (int(v) for v in DIRECTION_VECTORS[d])
    return occ[x][y][z] and not _occupied(occ, x + dx, y + dy, z + dz)


def label_faces_reference(occupancy: np.ndarray, style, vocab: Vocabulary) -> np.ndarray:
    occ = occupancy.astype(bool).tolist()
    X, Y, Z = occupancy.shape
    out = [[[[NO_PART] * 6 for _ in range(Z)] for _ in range(Y)] for _ in range(X)]
    for x in range(X):
        for y in range(Y):
            for z in range(Z):
                if not occ[x][y][z]:
                    continue
                for d in range(6):
                    if not _exterior(occ, x, y, z, d):
                        continue
                    if d == 4:
                        part = vocab.role("roof")
                    elif d == 5:
                        part = vocab.role("ground") if z == 0 else vocab.role("wall")
                    else:
                        u = y if d in (0, 1) else x
                        window = u % style.window_period == 0
                        part = vocab.role("window") if window else vocab.role("wall")
                        if d == style.street_side:
                            px, py = (x, y - 1) if d in (0, 1) else (x - 1, y)
                            run_start = not (_occupied(occ, px, py, z) and _exterior(occ, px, py, z, d))
                            if z == 0 and run_start:
                                part = vocab.role("door")
                            elif z == 0 and style.shopfront:
                                part = vocab.role("shopfront")
                            elif z > 0 and z % 2 == 0 and window and style.balconies:
                                part = vocab.role("balcony")
                    out[x][y][z][d] = part
    return np.array(out, dtype=np.int8)


def generate_building_reference(cfg: dict, seed: int, index: int) -> Building:
    """Same draws as ``generate_building`` (noise excluded), then per-cell loops."""
    rng = building_rng(seed, index)
    archetype, hm, style = draw_massing(cfg, rng)
    X, Y = hm.shape
    Z = cfg["grid"]["size"][2]
    occ = np.zeros((X, Y, Z), dtype=np.uint8)
    for x in range(X):
        for y in range(Y):
            for z in range(int(hm[x, y])):
                occ[x, y, z] = 1
    labels = label_faces_reference(occ, style, Vocabulary(tuple(cfg["parts"])))
    return Building(index, archetype, occ, labels, style)
