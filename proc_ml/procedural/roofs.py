"""Roof shapes over a rectangular wing, in metres (vectorised over sample points).

A wing is a box ``[x0, x1] x [y0, y1]`` up to its eaves; its roof adds a height that depends
on the distance to the wing's edges:

* ``flat``: nothing (the eaves are the top);
* ``gable``: rises at the pitch from the two eaves walls (parallel to the ridge) to the
  ridge; the other two walls are gable ends whose tops follow the roof (triangles);
* ``hip``: rises at the pitch from all four edges (ridge or point on top);
* ``mansard``: a steep lower slope (``MANSARD_STEEP_DEG``) up to ``MANSARD_BREAK_M`` of height,
  then a shallow one (the pitch / 2) from all four edges.

Every roof is capped ``max_rise`` above the eaves (a wide building gets a flat top rather
than a ridge taller than the grid). Walls end at the eaves except gable ends.
"""

from __future__ import annotations

import numpy as np

ROOFS = ("flat", "gable", "hip", "mansard")
MANSARD_STEEP_DEG = 70.0
MANSARD_BREAK_M = 2.4


def roof_rise(roof: str, dx: np.ndarray, dy: np.ndarray, ridge_x: bool, pitch_deg: float,
              max_rise: float) -> np.ndarray:
    """Height above the eaves at points ``dx`` / ``dy`` metres inside the wing's x / y edges
    (distances to the nearer edge). ``ridge_x``: a gable's ridge runs along x."""
    t = np.tan(np.radians(pitch_deg))
    if roof == "flat":
        rise = np.zeros(np.broadcast(dx, dy).shape)
    elif roof == "gable":
        rise = t * (dy if ridge_x else dx)
    elif roof == "hip":
        rise = t * np.minimum(dx, dy)
    elif roof == "mansard":
        d = np.minimum(dx, dy)
        steep = np.tan(np.radians(MANSARD_STEEP_DEG))
        knee = MANSARD_BREAK_M / steep
        rise = np.where(d < knee, steep * d, MANSARD_BREAK_M + t / 2 * (d - knee))
    else:
        raise ValueError(f"unknown roof '{roof}' (expected {', '.join(ROOFS)})")
    return np.minimum(rise, max_rise)


def gable_end_rise(roof: str, v: np.ndarray, width: float, pitch_deg: float,
                   max_rise: float) -> np.ndarray:
    """Top of a gable end wall above the eaves, ``v`` metres along the wall (0..width)."""
    if roof != "gable":
        return np.zeros_like(v)
    t = np.tan(np.radians(pitch_deg))
    return np.minimum(t * np.clip(np.minimum(v, width - v), 0.0, None), max_rise)
