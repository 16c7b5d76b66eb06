"""Polygons to triangles that stay inside them (numpy only).

trimesh turns an OBJ face of n vertices into a fan from its first vertex, which is right
for convex polygons only: the L-shaped floor plan, a facade with a notch, a gable wall cut
around a dormer - the concave polygons buildings are made of - get triangles outside the
polygon (an L of area 3 becomes 4). Closed meshes still voxelise right (the extra triangles
cancel in the crossing count), but the triangles are written back out (``input_parts.ply``)
and open meshes mark the cells they cross. :func:`triangulate_obj_polygons` rewrites the
OBJ faces of five or more vertices that are not convex as triangles found by ear clipping
(:func:`ear_clip`), keeping each corner's ``v/vt/vn`` reference, before trimesh reads the
file. Quads are left to trimesh (a concave quad is rare in a building model).
"""

from __future__ import annotations

import re

import numpy as np

#: OBJ face lines of five or more corners (the ones trimesh would fan).
_NGON = re.compile(rb"^f[ \t]+((?:[^\s#]+[ \t]+){4,}[^\s#]+)[ \t]*(?:#[^\r\n]*)?(\r?)$", re.M)
_VERTEX = re.compile(rb"^v[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)", re.M)
_VERTEX_LINE = re.compile(rb"^v[ \t]", re.M)


def triangulate_obj_polygons(data: bytes) -> bytes:
    """OBJ text with each non-convex face of five or more corners replaced by the triangles
    of :func:`ear_clip` (same corners, same orientation); ``data`` itself when there are
    none or the vertices cannot be read (trimesh then reports the file)."""
    if not _NGON.search(data):
        return data
    try:
        vertices = np.array(_VERTEX.findall(data), dtype=np.float64).reshape(-1, 3)
    except ValueError:
        return data

    def replace(match: re.Match) -> bytes:
        corners = match.group(1).split()
        try:
            index = [int(c.split(b"/")[0]) for c in corners]
        except ValueError:
            return match.group(0)
        if any(i < 0 for i in index):       # relative to the vertices read so far
            before = len(_VERTEX_LINE.findall(data, 0, match.start()))
            index = [i + before + 1 if i < 0 else i for i in index]
        if min(index) < 1 or max(index) > len(vertices):
            return match.group(0)            # trimesh says what is wrong
        points = vertices[np.array(index) - 1]
        if is_convex(points):
            return match.group(0)
        end = match.group(2)
        return (end + b"\n").join(b"f " + b" ".join(corners[k] for k in tri)
                                  for tri in ear_clip(points))
    return _NGON.sub(replace, data)


def _plane_coordinates(points: np.ndarray) -> np.ndarray:
    """2-D coordinates of a 3-D polygon in its own plane (Newell's normal), turning the
    same way as the polygon does about that normal (counter-clockwise)."""
    p, q = points, np.roll(points, -1, axis=0)
    normal = np.array([np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
                       np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
                       np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1]))])
    drop = int(np.argmax(np.abs(normal)))
    keep = [(drop + 1) % 3, (drop + 2) % 3]     # (y, z), (z, x) or (x, y): right-handed
    flat = points[:, keep].copy()
    if normal[drop] < 0:            # seen from behind: mirror so the order turns CCW
        flat[:, 0] = -flat[:, 0]
    return flat


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def is_convex(points: np.ndarray) -> bool:
    """Every corner of the polygon turns the same way (collinear corners allowed)."""
    flat = _plane_coordinates(np.asarray(points, dtype=np.float64))
    a, b, c = flat, np.roll(flat, -1, axis=0), np.roll(flat, -2, axis=0)
    turn = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    scale = np.abs(flat).max() ** 2 + 1e-300
    return bool((turn >= -1e-12 * scale).all())


def ear_clip(points: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles ``(i, j, k)`` (indices into ``points``, the polygon's own orientation)
    covering a simple polygon, by ear clipping: O(n^2), for the few corners a building
    polygon has. A polygon with no ear left (self-intersecting, degenerate) is finished
    as a fan."""
    flat = _plane_coordinates(np.asarray(points, dtype=np.float64))
    scale = np.abs(flat).max() ** 2 + 1e-300
    eps = 1e-12 * scale
    ring = list(range(len(flat)))
    triangles = []
    while len(ring) > 3:
        for n in range(len(ring)):
            i, j, k = ring[n - 1], ring[n], ring[(n + 1) % len(ring)]
            a, b, c = flat[i], flat[j], flat[k]
            if _cross(a, b, c) <= eps:          # a reflex or straight corner: no ear
                continue
            if any(_inside(flat[m], a, b, c, eps) for m in ring if m not in (i, j, k)):
                continue
            triangles.append((i, j, k))
            del ring[n]
            break
        else:
            triangles.extend((ring[0], ring[m], ring[m + 1]) for m in range(1, len(ring) - 1))
            return triangles
    triangles.append(tuple(ring))
    return triangles


def _inside(p, a, b, c, eps: float) -> bool:
    """``p`` in the CCW triangle ``a, b, c`` or on its boundary."""
    return _cross(a, b, p) >= -eps and _cross(b, c, p) >= -eps and _cross(c, a, p) >= -eps
