"""Shapes (meshes and point clouds) to the inputs of the point and voxel nets.

numpy + trimesh only (open3d is imported only to read ``.pcd`` / point-cloud ``.ply``
files and to estimate normals or thin out over-dense clouds), so training, the runtime
and batch jobs share these functions and preprocess every shape the same way.

* ``load_shape(path)``: a mesh (OBJ, OFF, STL, PLY with faces, GLB/GLTF) or a point cloud
  (PCD, PLY without faces) as a ``Shape``.
* ``shape_points(shape, n, seed)``: ``n`` surface points and normals, drawn with a fixed
  seed (``trimesh.sample.sample_surface`` on meshes; a seeded subset of a cloud, voxel
  down-sampled first when it is much denser than needed).
* ``normalize_points(points, mode)``: ``unit_sphere`` (centroid at the origin, farthest
  point at radius 1) or ``none``.
* ``shape_occupancy(shape, resolution)``: a centred ``uint8[R, R, R]`` surface occupancy
  grid, the longest bounding-box side spanning R - 1 cells (meshes are subdivided until
  every edge is under half a cell, so the surface has no gaps; clouds are binned).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..validation import library_message
from ..voxelize import MESH_SUFFIXES

CLOUD_SUFFIXES = (".pcd", ".ply")
SHAPE_SUFFIXES = tuple(sorted(set(MESH_SUFFIXES + CLOUD_SUFFIXES)))
NORMALIZE_MODES = ("unit_sphere", "none")
#: Neighbours used when a cloud's normals must be estimated.
NORMAL_NEIGHBOURS = 16


@dataclass
class Shape:
    """A mesh (``faces`` set) or a point cloud (``faces`` None), z up, in file units."""
    path: str
    vertices: np.ndarray               # float64[V, 3]
    faces: np.ndarray | None = None    # int64[F, 3] for meshes
    normals: np.ndarray | None = None  # float32[V, 3] for clouds that carry them
    notes: list = field(default_factory=list)   # what readers warned about (Open3D's warnings)

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None


def _ply_has_faces(path: Path) -> bool:
    with open(path, "rb") as fh:
        for count, raw in enumerate(fh):
            line = raw.decode("ascii", errors="replace").strip()
            if line.startswith("element face"):
                try:
                    return int(line.split()[-1]) > 0
                except ValueError:
                    return True          # let the mesh reader say what is wrong
            if line == "end_header" or count > 1000:
                return False
    return False


#: Default limits of ``load_shape`` (batch passes its own --max-bytes / --max-faces).
MAX_BYTES, MAX_FACES = 1 << 30, 10_000_000


def load_shape(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES,
               max_faces: int = MAX_FACES) -> Shape:
    """A mesh or point-cloud file (every type ``proc_ml.meshio`` reads, PCD through
    ``proc_ml.formats.pcd``); ``DatasetError`` naming the file when it is unreadable, empty,
    degenerate or over a limit."""
    from ..meshio import MeshError, extension_of, read_geometry

    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: a folder, not a mesh or point-cloud file (proc-ml batch "
                           f"reads every asset of a folder)")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    ext = extension_of(path)
    try:
        if ext == "ply" and not _ply_has_faces(path) and _has_open3d():
            return _load_ply_cloud(path, max_bytes, max_faces)
        geometry = read_geometry(path, max_bytes=max_bytes, max_faces=max_faces)
    except MeshError:
        raise
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed headers raise many types
        raise DatasetError(f"{path}: cannot read ({library_message(exc)})") from None
    notes = list(getattr(geometry, "notes", []) or [])
    if geometry.faces is None:
        return Shape(str(path), geometry.vertices, None, geometry.normals, notes)
    from ..voxelize import to_z_up

    up = "y" if geometry.format in ("glb", "gltf") else "z"
    vertices = to_z_up(np.asarray(geometry.vertices, dtype=np.float64), up)
    faces = geometry.faces
    area = np.linalg.norm(np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                                   vertices[faces[:, 2]] - vertices[faces[:, 0]]), axis=1)
    if not area.sum() > 0:
        raise DatasetError(f"{path}: the mesh has no surface area (degenerate triangles only)")
    return Shape(str(path), vertices, faces, None, notes)


def _has_open3d() -> bool:
    try:
        import open3d  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is no install
        return False
    return True


def _open3d(what: str):
    try:
        import open3d
    except ImportError:
        raise DatasetError(f"{what} needs open3d (pip install 'proc-ml[points]')") from None
    return open3d


def _load_ply_cloud(path: Path, max_bytes: int, max_points: int) -> Shape:
    """A PLY without faces (a point cloud, normals kept) through Open3D, its warnings
    captured into ``Shape.notes``."""
    from ..formats.pcd import captured_output, open3d_warnings
    from ..meshio import PLY_HEADER_BYTES, check_ply_header, checked_points

    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(f"{path}: file is {size} bytes, over the limit of {max_bytes} "
                           f"(--max-bytes)")
    with open(path, "rb") as fh:
        check_ply_header(fh.read(PLY_HEADER_BYTES), size, str(path), max_points)
    o3d = _open3d(f"{path}: reading a point cloud")
    lines: list = []
    with captured_output(lines):
        cloud = o3d.io.read_point_cloud(str(path), format="ply")
    notes = open3d_warnings(lines)
    points = np.asarray(cloud.points, dtype=np.float64)
    if len(points) == 0:
        why = f" ({notes[0]})" if notes else ""
        raise DatasetError(f"{path}: no points in the point cloud{why}")
    normals = np.asarray(cloud.normals, dtype=np.float32) if cloud.has_normals() else None
    geometry = checked_points(points, str(path), max_points, normals)
    return Shape(str(path), geometry.vertices, None, geometry.normals, notes)


# -- points ----------------------------------------------------------------------------
def shape_points(shape: Shape, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(float32[count, 3], float32[count, 3])``: surface points and unit normals."""
    if count < 1:
        raise ValueError(f"point count must be >= 1, got {count}")
    if shape.is_mesh:
        return _mesh_points(shape, count, seed)
    return _cloud_points(shape, count, seed)


def _mesh_points(shape: Shape, count: int, seed: int):
    import trimesh

    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    points, face_index = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, np.float32), np.asarray(mesh.face_normals[face_index], np.float32)


def _cloud_points(shape: Shape, count: int, seed: int):
    points, normals = shape.vertices, shape.normals
    if len(points) > 4 * count or normals is None:
        points, normals = _fix_cloud(points, normals, count)
    rng = np.random.default_rng([int(seed), 0xC10D])
    pick = (rng.choice(len(points), count, replace=False) if len(points) >= count
            else rng.integers(0, len(points), count))
    return points[pick].astype(np.float32), normals[pick].astype(np.float32)


def _fix_cloud(points: np.ndarray, normals: np.ndarray | None, count: int):
    """Even out an over-dense cloud (voxel down-sampling) and estimate missing normals (open3d)."""
    o3d = _open3d("evening out a point cloud or estimating its normals")

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    if len(points) > 4 * count:
        extent = float(np.linalg.norm(np.ptp(points, axis=0)))
        # about 2 * count voxels on a surface: surface area scales with the square of the side
        voxel = extent / np.sqrt(2.0 * count)
        thinned = cloud.voxel_down_sample(voxel)
        if len(thinned.points) >= count:
            cloud = thinned
    if not cloud.has_normals():
        unique = len(np.unique(np.asarray(cloud.points), axis=0))
        if unique < 3:
            raise DatasetError(f"the point cloud has {unique} distinct point"
                               f"{'s' if unique != 1 else ''}; at least 3 are needed to "
                               f"estimate normals")
        from ..formats.pcd import captured_output

        with captured_output([]):
            cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(NORMAL_NEIGHBOURS))
            cloud.orient_normals_towards_camera_location(np.asarray(cloud.points).mean(axis=0))
        cloud.normals = o3d.utility.Vector3dVector(-np.asarray(cloud.normals))  # point outwards
    points, normals = np.asarray(cloud.points), np.asarray(cloud.normals)
    if not np.isfinite(normals).all() or not (np.abs(normals).sum(axis=1) > 0).all():
        raise DatasetError("the point cloud's normals cannot be estimated (its points lie on "
                           "a line or at one place)")
    return points, normals


def normalize_points(points: np.ndarray, mode: str = "unit_sphere"):
    """``(points, centre float64[3], scale)`` with ``normalized = (points - centre) / scale``."""
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize mode must be one of {', '.join(NORMALIZE_MODES)}, got '{mode}'")
    points = np.asarray(points, dtype=np.float64)
    if mode == "none" or len(points) == 0:
        return points.astype(np.float32), np.zeros(3), 1.0
    centre = points.mean(axis=0)
    radius = float(np.sqrt(((points - centre) ** 2).sum(axis=1).max()))
    scale = radius if radius > 0 else 1.0
    return ((points - centre) / scale).astype(np.float32), centre, scale


# -- voxels ----------------------------------------------------------------------------
def _grid_transform(vertices: np.ndarray, resolution: int):
    """Map to grid units: the bounding box centred, its longest side spanning R - 1 cells."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    extent = float((hi - lo).max())
    scale = (resolution - 1) / extent if extent > 0 else 1.0
    return lambda v: (v - (lo + hi) / 2.0) * scale + resolution / 2.0


def shape_occupancy(shape: Shape, resolution: int = 32) -> np.ndarray:
    """``uint8[R, R, R]`` surface occupancy of a mesh or cloud (see the module doc)."""
    to_grid = _grid_transform(shape.vertices if not shape.is_mesh
                              else shape.vertices[np.unique(shape.faces)], resolution)
    if shape.is_mesh:
        import trimesh

        vertices, faces = trimesh.remesh.subdivide_to_size(to_grid(shape.vertices), shape.faces,
                                                           max_edge=0.5, max_iter=20)
        cells = np.floor(np.asarray(vertices)[np.unique(faces)]).astype(np.int64)
    else:
        cells = np.floor(to_grid(shape.vertices)).astype(np.int64)
    cells = np.clip(cells, 0, resolution - 1)
    grid = np.zeros((resolution,) * 3, dtype=np.uint8)
    grid[cells[:, 0], cells[:, 1], cells[:, 2]] = 1
    return grid


def points_occupancy(points: np.ndarray, resolution: int = 32) -> np.ndarray:
    """``uint8[R, R, R]`` occupancy of the cells holding ``points`` (same framing as meshes)."""
    return shape_occupancy(Shape("points", np.asarray(points, np.float64)), resolution)


# -- net inputs (training and the runtime build them with these same functions) ---------
#: How a run's coordinates are normalised: unit sphere per shape, or cell units (buildings,
#: whose part rules follow the cell grid).
NORMALIZE_FOR = ("unit_sphere", "cells")


def normalize_for(points: np.ndarray, mode: str, cell_size: float | None) -> np.ndarray:
    """The coordinates a run was trained on (``NORMALIZE_FOR``)."""
    if mode == "cells":
        if not cell_size or cell_size <= 0:
            raise ValueError(f"'cells' normalisation needs a cell size > 0, got {cell_size}")
        return (np.asarray(points, np.float64) / float(cell_size)).astype(np.float32)
    if mode != "unit_sphere":
        raise ValueError(f"normalisation must be one of {', '.join(NORMALIZE_FOR)}, got '{mode}'")
    return normalize_points(points, "unit_sphere")[0]


def point_feature_names(normals: bool, with_style: bool) -> list[str]:
    from ..encoding import STYLE_FEATURES

    return (["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
            + (list(STYLE_FEATURES) if with_style else []))


def point_features(points: np.ndarray, normals: np.ndarray | None,
                   style: np.ndarray | None) -> np.ndarray:
    """``float32[N, C]``: x, y, z, then normals, then the style repeated on every point."""
    columns = [np.asarray(points, np.float32)]
    if normals is not None:
        columns.append(np.asarray(normals, np.float32))
    if style is not None:
        style = np.asarray(style, np.float32).reshape(-1)
        columns.append(np.broadcast_to(style, (len(points), len(style))))
    return np.concatenate(columns, axis=1).astype(np.float32)
