"""Which way a building faces: the dominant wall direction, the one rule proc-ml uses to
turn real buildings and users' meshes so their walls run along the grid axes (numpy only).

Walls vote with their area (times the horizontal length of their unit normal) for the angle
of their normal modulo 90 degrees, in a 1-degree histogram smoothed circularly with a
[1 2 3 2 1] kernel; the peak, refined by the circular mean (of 4 theta) of the votes within
4 degrees of it, is the rotation in (-45, 45] degrees. ``proc_ml.citygml`` (real buildings)
and ``proc_ml.voxelize`` (meshes) both call ``dominant_wall_angle``.
"""

from __future__ import annotations

import numpy as np

#: Votes within this many degrees of the peak refine it and count as its share.
PEAK_WIDTH_DEG = 4.0


def dominant_wall_angle(normals: np.ndarray, areas: np.ndarray) -> tuple[float, float]:
    """``(angle_deg in (-45, 45], share)`` of wall surfaces with unit ``normals`` float[N, 3]
    (z up) and ``areas`` float[N]: the direction the walls face modulo 90 degrees, and the
    share of the voting area within ``PEAK_WIDTH_DEG`` of it (1.0: every wall agrees).
    Surfaces whose normal is less than half horizontal do not vote; no voter gives (0, 0)."""
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    areas = np.asarray(areas, dtype=np.float64).reshape(-1)
    horizontal = np.hypot(normals[:, 0], normals[:, 1])
    vote = (horizontal > 0.5) & (areas > 0)
    if not vote.any():
        return 0.0, 0.0
    angle = np.degrees(np.arctan2(normals[vote, 1], normals[vote, 0])) % 90.0
    weight = areas[vote] * horizontal[vote]
    hist = np.bincount(np.floor(angle).astype(np.int64) % 90, weights=weight, minlength=90)
    smooth = sum(np.roll(hist, s) * k for s, k in zip(range(-2, 3), (1.0, 2.0, 3.0, 2.0, 1.0)))
    peak = float(np.argmax(smooth)) + 0.5
    near = np.abs((angle - peak + 45.0) % 90.0 - 45.0) <= PEAK_WIDTH_DEG
    mean = np.angle(np.sum(weight[near] * np.exp(4j * np.radians(angle[near]))))
    rotation = (np.degrees(mean) / 4.0 + 45.0) % 90.0 - 45.0
    if rotation <= -45.0 + 1e-9:
        rotation += 90.0
    return float(round(rotation, 6)), float(weight[near].sum() / weight.sum())


def rotation_z(degrees: float) -> np.ndarray:
    """float64[3, 3]: counter-clockwise rotation by ``degrees`` about z (seen from above)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
