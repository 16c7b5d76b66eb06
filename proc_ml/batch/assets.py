"""Reading one asset file with every check a real asset folder needs (numpy + trimesh only).

Each problem becomes an ``AssetError`` whose message is one line saying what is wrong
(empty file, truncated binary, text that is not a mesh, NaN coordinates, no faces, an
empty scene, over a size limit), so a batch records it and moves on to the next asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import budget, meshio
from ..errors import LimitError, ProcMLError
from ..validation import library_message

#: The types a mesh task picks up by default (proc_ml.meshio): every type trimesh reads in
#: this environment, the types it would read with a package that is not installed (each
#: such file is refused saying what to install) and archives (.zip, .gz, .bz2, .tar.*).
MESH_EXTENSIONS = tuple(sorted(set(meshio.available_mesh_extensions())
                               | set(meshio.missing_package_extensions())
                               | set(meshio.ARCHIVE_EXTENSIONS)))
POINT_EXTENSIONS = meshio.POINT_EXTENSIONS
NPZ_EXTENSIONS = ("npz",)
#: Documented exceptions, never picked up by default: 2-D drawings (DXF, SVG) and voxel
#: files (BINVOX) hold no surface; named with --extensions, each is refused with the reason.
NOT_BY_DEFAULT = meshio.DRAWING_EXTENSIONS + meshio.VOXEL_EXTENSIONS
ASSET_EXTENSIONS = MESH_EXTENSIONS + POINT_EXTENSIONS + NPZ_EXTENSIONS + NOT_BY_DEFAULT


class AssetError(ProcMLError):
    """One asset cannot be processed; the message is a single line."""


@dataclass(frozen=True)
class Limits:
    """Size limits that turn an absurdly large asset into an error instead of an OOM."""
    max_bytes: int = 1 << 30          # file size (and inflated size of an archive)
    max_faces: int = 10_000_000       # mesh triangles (or points of a point cloud)
    max_cells: int = 256 ** 3         # voxel grid cells
    memory_budget: int | None = None  # bytes per worker (None: proc_ml.budget's default)

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
        """The cell limit, then the memory budget of labelling a grid of ``shape``."""
        cells = math.prod(int(n) for n in shape)
        dims = "x".join(str(int(n)) for n in shape)
        if cells > self.max_cells:
            raise AssetError(f"voxel grid {dims} = {cells} cells, over the limit of "
                             f"{self.max_cells} (a mesh in centimetres or millimetres? use "
                             f"--cell-size in its units; or raise --max-cells)")
        try:
            budget.check(budget.grid_bytes(shape), f"a {dims} voxel grid",
                         "use a larger --cell-size")
        except LimitError as exc:
            raise AssetError(str(exc)) from None


@dataclass
class Asset:
    """What one file holds, validated: a triangle mesh, a point cloud or a voxel grid."""
    kind: str                                 # "mesh" | "points" | "grid"
    vertices: np.ndarray | None = None        # float64[V, 3] (mesh) / float64[N, 3] (points)
    faces: np.ndarray | None = None           # int64[F, 3] (mesh)
    occupancy: np.ndarray | None = None       # uint8[X, Y, Z] (grid)
    arrays: dict | None = None                # every array of a proc-ml .npz
    normals: np.ndarray | None = None         # float32[N, 3] (point clouds that carry them)
    notes: list | None = None                 # reader warnings (Open3D's), for the record


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its message, or its type when it has none."""
    return library_message(exc)


def asset_error(exc: ProcMLError, path) -> "AssetError":
    """A library error about ``path`` as one asset's error: the manifest names the asset,
    so the message loses its ``path:`` prefix."""
    # (whitespace is collapsed in both: a name with a newline must not break the line)
    message, prefix = " ".join(str(exc).split()), " ".join(str(path).split()) + ": "
    while message.startswith(prefix):
        message = message[len(prefix):]
    if message.startswith(prefix[:-2] + " ["):   # an archive member: "[house.obj]: ..."
        message = message[len(prefix) - 1:]
    return AssetError(message)


def extension(path) -> str:
    return meshio.extension_of(path)


def load_asset(path, limits: Limits = Limits()) -> Asset:
    """Read and validate ``path`` by its extension; raise ``AssetError`` on any problem."""
    path = Path(path)
    ext = extension(path)
    if ext not in ASSET_EXTENSIONS:
        raise AssetError(f"unsupported file type '.{ext}' (supported: {', '.join(ASSET_EXTENSIONS)})")
    limits.check_bytes(path.stat().st_size)
    if ext in NPZ_EXTENSIONS:
        return _load_npz(path, limits)
    try:
        # mesh types must hold faces; points come from point types (and archives of them)
        geometry = meshio.read_geometry(path, max_bytes=limits.max_bytes,
                                        max_faces=limits.max_faces,
                                        allow_points=ext in POINT_EXTENSIONS + meshio.ARCHIVE_EXTENSIONS)
    except ProcMLError as exc:
        raise asset_error(exc, path) from None
    if geometry.faces is None:
        return Asset("points", vertices=geometry.vertices, normals=geometry.normals,
                     notes=geometry.notes)
    return Asset("mesh", vertices=geometry.vertices, faces=geometry.faces, notes=geometry.notes)


# -- proc-ml .npz (voxel grids and point clouds written by proc-ml generate) ---------------------

def _load_npz(path: Path, limits: Limits) -> Asset:
    from ..formats import npz

    try:
        shapes = {name: shape for name, (shape, _) in npz.check(
            path, max_bytes=limits.max_bytes, source=str(path)).items()}
    except ProcMLError as exc:
        raise asset_error(exc, path) from None
    if "occupancy" in shapes:
        shape = shapes["occupancy"]
        if len(shape) != 3:
            raise AssetError(f"npz 'occupancy' must be a 3-D grid [X, Y, Z], got shape {list(shape)}")
        limits.check_cells(shape)
    elif "points" in shapes:
        if len(shapes["points"]) != 2 or shapes["points"][1] != 3:
            raise AssetError(f"npz 'points' must be [N, 3], got shape {list(shapes['points'])}")
        limits.check_faces(shapes["points"][0], "points")
    else:
        raise AssetError(f"npz holds neither 'occupancy' (voxel grid) nor 'points' "
                         f"(arrays: {', '.join(sorted(shapes)) or 'none'})")
    try:
        arrays = npz.load(path, max_bytes=limits.max_bytes, source=str(path))
    except ProcMLError as exc:
        raise asset_error(exc, path) from None
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise AssetError(f"npz '{name}' has NaN or infinite values")
    if "occupancy" in arrays:
        occupancy = np.asarray(arrays["occupancy"])
        if occupancy.dtype.kind not in "biuf":
            raise AssetError(f"npz 'occupancy' has dtype {occupancy.dtype}, expected numbers")
        grid = (occupancy > 0).astype(np.uint8)
        if not grid.any():
            raise AssetError("npz 'occupancy' grid is empty (no filled cells)")
        return Asset("grid", occupancy=grid, arrays=arrays)
    points = np.asarray(arrays["points"])
    if points.dtype.kind not in "iuf":
        raise AssetError(f"npz 'points' has dtype {points.dtype}, expected numbers")
    try:
        geometry = meshio.checked_points(points, str(path), limits.max_faces)
    except ProcMLError as exc:
        raise asset_error(exc, path) from None
    return Asset("points", vertices=geometry.vertices, arrays=arrays)
