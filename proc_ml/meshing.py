"""Exterior faces of a voxel grid as quads (numpy only), with the part on every face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import exterior_faces

# Corners of each face's quad in cell units, counter-clockwise seen from outside, so the
# triangle normals point along the face direction (+x, -x, +y, -y, +z, -z).
QUAD_CORNERS = np.array([
    [(1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1)],
    [(0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0)],
    [(0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0)],
    [(0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)],
    [(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)],
    [(0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)],
], dtype=np.float64)


UP_AXES = ("z", "y")
# proc-ml is z-up; glTF is y-up. Taking y-up coordinates to z-up ones: (x, y, z) -> (x, -z, y),
# the same convention as Blender's glTF importer.
Y_UP_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)


def _check_up(up: str) -> None:
    if up not in UP_AXES:
        raise ValueError(f"up axis must be one of {', '.join(UP_AXES)}, got '{up}'")


def to_z_up(points: np.ndarray, up: str) -> np.ndarray:
    """Points given in a frame whose up axis is ``up`` -> proc-ml's z-up frame."""
    _check_up(up)
    points = np.asarray(points, dtype=np.float64)
    return points @ Y_UP_TO_Z_UP.T if up == "y" else points


def from_z_up(points: np.ndarray, up: str) -> np.ndarray:
    """proc-ml z-up points -> a frame whose up axis is ``up``."""
    _check_up(up)
    points = np.asarray(points, dtype=np.float64)
    return points @ Y_UP_TO_Z_UP if up == "y" else points


def z_up_to_y_up_transform() -> np.ndarray:
    """4x4 node transform that shows z-up geometry upright in a y-up (glTF) viewer."""
    out = np.eye(4)
    out[:3, :3] = Y_UP_TO_Z_UP.T
    return out


@dataclass
class QuadMesh:
    """One quad per exterior face; vertices are not shared so each quad keeps its part."""
    vertices: np.ndarray    # float64[4F, 3]
    triangles: np.ndarray   # int64[2F, 3]
    cells: np.ndarray       # int32[F, 3] the cell each quad belongs to
    directions: np.ndarray  # int8[F]   face direction 0..5
    parts: np.ndarray       # int8[F]   part index, -1 when unlabelled

    @property
    def triangle_parts(self) -> np.ndarray:
        return np.repeat(self.parts, 2)


def quad_mesh(occupancy: np.ndarray, labels: np.ndarray | None = None,
              cell_size: float = 1.0, origin=(0.0, 0.0, 0.0)) -> QuadMesh:
    """Build the quads of every exterior face, ordered by (cell, direction)."""
    ext = exterior_faces(occupancy)
    x, y, z, d = np.nonzero(ext)
    cells = np.stack([x, y, z], axis=1)
    corners = cells[:, None, :] + QUAD_CORNERS[d]                       # [F, 4, 3]
    vertices = corners.reshape(-1, 3) * cell_size + np.asarray(origin, dtype=np.float64)
    base = np.arange(len(d), dtype=np.int64)[:, None] * 4
    triangles = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]], axis=1).reshape(-1, 3)
    parts = (np.asarray(labels)[x, y, z, d] if labels is not None
             else np.full(len(d), -1)).astype(np.int8)
    return QuadMesh(vertices, triangles, cells.astype(np.int32), d.astype(np.int8), parts)


def sample_points(mesh: QuadMesh, count: int, rng: np.random.Generator):
    """Uniform samples on the quads (all quads have equal area): points, normals, parts."""
    if len(mesh.parts) == 0:
        raise ValueError("cannot sample points on a mesh with no faces")
    quad = rng.integers(0, len(mesh.parts), size=count)
    uv = rng.random((count, 2))
    corners = mesh.vertices.reshape(-1, 4, 3)[quad]
    points = (corners[:, 0] + (corners[:, 1] - corners[:, 0]) * uv[:, :1]
              + (corners[:, 3] - corners[:, 0]) * uv[:, 1:])
    from .grid import DIRECTION_VECTORS
    normals = DIRECTION_VECTORS[mesh.directions[quad]].astype(np.float32)
    return points.astype(np.float32), normals, mesh.parts[quad]


def sample_triangle_points(vertices: np.ndarray, triangles: np.ndarray, triangle_parts: np.ndarray,
                           count: int, rng: np.random.Generator):
    """Uniform samples on any triangle mesh (triangles picked by area): points, unit
    normals (the triangles' winding), parts."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(triangles, dtype=np.int64)]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    if len(area) == 0 or area.sum() <= 0:
        raise ValueError("cannot sample points on a mesh with no area")
    pick = rng.choice(len(area), size=count, p=area / area.sum())
    uv = rng.random((count, 2))
    flip = uv.sum(axis=1) > 1
    uv[flip] = 1 - uv[flip]
    c = corners[pick]
    points = c[:, 0] + (c[:, 1] - c[:, 0]) * uv[:, :1] + (c[:, 2] - c[:, 0]) * uv[:, 1:]
    normals = cross[pick] / area[pick, None]
    # A component under 1e-9 is rounding noise (a wall of a turned footprint gets a normal z
    # of +-2e-15 whose sign depends on the CPU's trig routines): written as 0, so walls have
    # level normals and a dataset is the same file on every machine.
    normals[np.abs(normals) < 1e-9] = 0.0
    return (points.astype(np.float32), normals.astype(np.float32),
            np.asarray(triangle_parts)[pick])
