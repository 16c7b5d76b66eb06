"""Reading one asset file with every check a real asset folder needs (numpy + trimesh only).

Each problem becomes an ``AssetError`` whose message is one line saying what is wrong
(empty file, truncated binary, text that is not a mesh, NaN coordinates, no faces, an
empty scene, over a size limit), so a batch records it and moves on to the next asset.
"""

from __future__ import annotations

import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ProcMLError
from ..formats import pcd

MESH_EXTENSIONS = ("obj", "ply", "stl", "off", "glb", "gltf")
POINT_EXTENSIONS = ("pcd",)
NPZ_EXTENSIONS = ("npz",)
ASSET_EXTENSIONS = MESH_EXTENSIONS + POINT_EXTENSIONS + NPZ_EXTENSIONS


class AssetError(ProcMLError):
    """One asset cannot be processed; the message is a single line."""


@dataclass(frozen=True)
class Limits:
    """Size limits that turn an absurdly large asset into an error instead of an OOM."""
    max_bytes: int = 1 << 30          # file size
    max_faces: int = 10_000_000       # mesh triangles (or points of a point cloud)
    max_cells: int = 256 ** 3         # voxel grid cells

    def check_bytes(self, size: int) -> None:
        if size == 0:
            raise AssetError("empty file (0 bytes)")
        if size > self.max_bytes:
            raise AssetError(f"file is {size} bytes, over the limit of {self.max_bytes} "
                             f"(--max-bytes)")

    def check_faces(self, count: int, what: str = "faces") -> None:
        if count > self.max_faces:
            raise AssetError(f"{count} {what}, over the limit of {self.max_faces} (--max-faces)")

    def check_cells(self, shape) -> None:
        cells = math.prod(int(n) for n in shape)
        if cells > self.max_cells:
            dims = "x".join(str(int(n)) for n in shape)
            raise AssetError(f"voxel grid {dims} = {cells} cells, over the limit of "
                             f"{self.max_cells} (--max-cells; or use a larger --cell-size)")


@dataclass
class Asset:
    """What one file holds, validated: a triangle mesh, a point cloud or a voxel grid."""
    kind: str                                 # "mesh" | "points" | "grid"
    vertices: np.ndarray | None = None        # float64[V, 3] (mesh) / float64[N, 3] (points)
    faces: np.ndarray | None = None           # int64[F, 3] (mesh)
    occupancy: np.ndarray | None = None       # uint8[X, Y, Z] (grid)
    arrays: dict | None = None                # every array of a proc-ml .npz


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its message, or its type when it has none."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ProcMLError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def asset_error(exc: ProcMLError, path) -> "AssetError":
    """A library error about ``path`` as one asset's error: the manifest names the asset,
    so the message loses its ``path:`` prefix."""
    message, prefix = str(exc), f"{path}: "
    return AssetError(message[len(prefix):] if message.startswith(prefix) else message)


def extension(path) -> str:
    return Path(path).suffix.lower().lstrip(".")


def load_asset(path, limits: Limits = Limits()) -> Asset:
    """Read and validate ``path`` by its extension; raise ``AssetError`` on any problem."""
    path = Path(path)
    ext = extension(path)
    if ext not in ASSET_EXTENSIONS:
        raise AssetError(f"unsupported file type '.{ext}' (supported: {', '.join(ASSET_EXTENSIONS)})")
    limits.check_bytes(path.stat().st_size)
    if ext in MESH_EXTENSIONS:
        return _load_mesh(path, ext, limits)
    if ext in POINT_EXTENSIONS:
        try:
            points = pcd.read(path)
        except DatasetError as exc:
            raise asset_error(exc, path) from None
        return _checked_points(points, limits)
    return _load_npz(path, limits)


# -- meshes (trimesh) -----------------------------------------------------------------------

def _load_mesh(path: Path, ext: str, limits: Limits) -> Asset:
    import trimesh

    logging.getLogger("trimesh").setLevel(logging.CRITICAL)
    _precheck_mesh_file(path, ext)
    try:
        loaded = trimesh.load(str(path), file_type=ext, process=False)
    except Exception as exc:  # noqa: BLE001 - every loader failure is a per-asset error
        raise AssetError(f"not a valid {ext.upper()} file ({one_line(exc)})") from None
    geometry = _single_geometry(loaded, ext)
    vertices = np.asarray(geometry.vertices, dtype=np.float64).reshape(-1, 3)
    if not hasattr(geometry, "faces") or geometry.faces is None or len(geometry.faces) == 0:
        if len(vertices) == 0:
            raise AssetError(f"no geometry found (not a {ext.upper()} mesh?)")
        raise AssetError(f"{len(vertices)} vertices but no faces (a point cloud, not a mesh)")
    faces = np.asarray(geometry.faces, dtype=np.int64).reshape(-1, 3)
    limits.check_faces(len(faces))
    _check_finite(vertices, "vertices")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise AssetError(f"faces index vertices outside 0..{len(vertices) - 1}")
    return Asset("mesh", vertices=vertices, faces=faces)


def _single_geometry(loaded, ext: str):
    """One geometry from whatever trimesh returned: a scene's meshes are merged in world space."""
    import trimesh

    if not isinstance(loaded, trimesh.Scene):
        return loaded
    if not loaded.geometry:
        if ext in ("glb", "gltf"):
            raise AssetError(f"the {ext.upper()} scene is empty (no meshes in it)")
        raise AssetError(f"no mesh data found (not a valid {ext.upper()} mesh)")
    meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        raise AssetError(f"the {ext.upper()} scene holds no mesh with faces")
    return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)


def _precheck_mesh_file(path: Path, ext: str) -> None:
    """Problems trimesh reports badly (or not at all): truncated binary STL, non-JSON glTF."""
    if ext == "stl":
        with open(path, "rb") as fh:
            head = fh.read(84)
        size = path.stat().st_size
        if head[:5].lower() != b"solid" and len(head) == 84:
            triangles = int.from_bytes(head[80:84], "little")
            if size != 84 + 50 * triangles:
                raise AssetError(f"truncated or corrupt binary STL: header says {triangles} "
                                 f"triangles ({84 + 50 * triangles} bytes), file has {size} bytes")
        elif head[:5].lower() != b"solid":
            raise AssetError(f"not a valid STL file ({size} bytes, too short for binary STL)")
    elif ext == "gltf":
        import json

        try:
            json.loads(path.read_bytes())
        except ValueError as exc:
            raise AssetError(f"not a valid GLTF file (not JSON: {one_line(exc)})") from None


def _check_finite(values: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(values).all(axis=-1)
    if bad.any():
        raise AssetError(f"{int(bad.sum())} of {len(values)} {what} have NaN or infinite coordinates")


def _checked_points(points: np.ndarray, limits: Limits) -> Asset:
    if len(points) == 0:
        raise AssetError("the point cloud has no points")
    limits.check_faces(len(points), "points")
    _check_finite(points, "points")
    return Asset("points", vertices=points)


# -- proc-ml .npz (voxel grids and point clouds written by proc-ml generate) ---------------------

def _load_npz(path: Path, limits: Limits) -> Asset:
    shapes = _npz_shapes(path)
    if "occupancy" in shapes:
        shape = shapes["occupancy"]
        if len(shape) != 3:
            raise AssetError(f"npz 'occupancy' must be a 3-D grid [X, Y, Z], got shape {list(shape)}")
        limits.check_cells(shape)
    elif "points" in shapes:
        if len(shapes["points"]) != 2 or shapes["points"][1] != 3:
            raise AssetError(f"npz 'points' must be [N, 3], got shape {list(shapes['points'])}")
    else:
        raise AssetError(f"npz holds neither 'occupancy' (voxel grid) nor 'points' "
                         f"(arrays: {', '.join(sorted(shapes)) or 'none'})")
    arrays = _npz_arrays(path)
    if "occupancy" in arrays:
        occupancy = np.asarray(arrays["occupancy"])
        if occupancy.dtype.kind not in "biuf":
            raise AssetError(f"npz 'occupancy' has dtype {occupancy.dtype}, expected numbers")
        if occupancy.dtype.kind == "f" and not np.isfinite(occupancy).all():
            raise AssetError("npz 'occupancy' has NaN or infinite values")
        grid = (occupancy > 0).astype(np.uint8)
        if not grid.any():
            raise AssetError("npz 'occupancy' grid is empty (no filled cells)")
        return Asset("grid", occupancy=grid, arrays=arrays)
    asset = _checked_points(np.asarray(arrays["points"], dtype=np.float64), limits)
    asset.arrays = arrays
    return asset


def _npz_shapes(path: Path) -> dict[str, tuple]:
    """Array shapes from the .npy headers, read without loading (no allocation from a bomb)."""
    try:
        with zipfile.ZipFile(path) as zf:
            shapes = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    shape, _, _ = np.lib.format._read_array_header(fh, version)
                shapes[info.filename[:-4]] = tuple(shape)
            return shapes
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise AssetError(f"not a valid .npz file ({one_line(exc)})") from None


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise AssetError(f"not a valid .npz file ({one_line(exc)})") from None
