"""Reading meshes and point clouds from the files a studio library holds (numpy + trimesh).

One reader for every command that takes a mesh: it knows which file types exist, opens
archives safely, keeps loaders inside the asset's folder, and turns every failure into one
line naming the file.

**File types.** The mesh types are trimesh's own list (``trimesh.available_formats()`` in
the running environment), so a trimesh with more loaders installed reads more types. Types
trimesh knows but cannot read here (its loader needs a package that is not installed: DAE
needs pycollada, STEP needs cascadio, CTM needs openctm, SVG needs svg.path, MSH needs
gmsh...) are still picked up and each such file is refused with what to install. Documented
exceptions, refused per file with the reason: 2-D drawings (DXF, SVG: lines, no faces) and
voxel files (BINVOX: no surface; convert to a mesh).

**Archives** (``.zip``, ``.gz``, ``.bz2``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``) are opened
here, not by trimesh: sizes come from the headers first and the bytes are then inflated
with a running cap (headers can lie), so a small archive that inflates to gigabytes is
refused before it is in memory. Only regular members are read (no links, no devices, no
archive inside an archive); the mesh members are loaded with the archive's other members
available to them (an OBJ's MTL, a glTF's buffers).

**Sandbox.** External files a mesh refers to (glTF buffers, OBJ materials) are read only
from the asset's own folder (or archive), only when they are regular files within the size
limit: a reference to ``/dev/zero``, ``../outside`` or a FIFO is refused with one line.

**Checks** after loading: faces exist (or, for point types, points), every coordinate is
finite and within ``MAX_COORDINATE``, face indices are in range, the face count is within
the limit (counted per scene instance *before* the scene is flattened), and the geometry has
an extent (not every vertex at one point).
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import os
import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from trimesh.resolvers import Resolver

from .errors import DatasetError
from .validation import library_message

#: Largest absolute coordinate accepted (beyond it float32 and grid arithmetic overflow).
MAX_COORDINATE = 1e12
#: Most members an archive may have.
MAX_ARCHIVE_MEMBERS = 10_000
ARCHIVE_EXTENSIONS = ("zip", "gz", "bz2", "tar.gz", "tgz", "tar.bz2", "tbz2")
#: Types that hold points, not faces (``xyz``: trimesh's text point cloud).
POINT_EXTENSIONS = ("pcd", "xyz")
#: 2-D drawings: trimesh reads them as lines (no faces).
DRAWING_EXTENSIONS = ("dxf", "svg")
#: Voxel files: no surface to voxelise.
VOXEL_EXTENSIONS = ("binvox",)
#: Types trimesh registers a loader for only when a package is installed.
OPTIONAL_PACKAGES = {"dae": "pycollada", "zae": "pycollada", "ctm": "openctm",
                     "step": "cascadio", "stp": "cascadio", "svg": "svg.path (and shapely)",
                     "msh": "gmsh"}
#: Types we never pass to trimesh: internal names and formats handled elsewhere.
_NOT_MESH = {"stl_ascii", "json", "dict", "dict64", "npz"}


class MeshError(DatasetError):
    """A mesh or point-cloud file cannot be used; the message is one line naming it."""


def _trimesh():
    import trimesh

    logging.getLogger("trimesh").setLevel(logging.CRITICAL)
    return trimesh


def available_mesh_extensions() -> tuple[str, ...]:
    """Mesh types trimesh can load in this environment (its own list, sorted)."""
    from trimesh.exchange.load import mesh_formats

    _trimesh()
    return tuple(sorted(set(mesh_formats()) - _NOT_MESH - set(POINT_EXTENSIONS)))


def missing_package_extensions() -> dict[str, str]:
    """Types trimesh knows but cannot load here -> the package that would make it."""
    from trimesh.exceptions import ExceptionWrapper
    from trimesh.exchange.load import mesh_loaders

    loaders = set(available_mesh_extensions())
    known = {k for k, v in mesh_loaders.items() if isinstance(v, ExceptionWrapper)}
    return {ext: OPTIONAL_PACKAGES.get(ext, "an optional trimesh dependency")
            for ext in sorted(known | set(OPTIONAL_PACKAGES)) if ext not in loaders}


def known_extensions() -> tuple[str, ...]:
    """Every type a batch or predict picks up: read, or refused with a reason per file."""
    return tuple(sorted(set(available_mesh_extensions()) | set(missing_package_extensions())
                        | set(DRAWING_EXTENSIONS) | set(VOXEL_EXTENSIONS)
                        | set(ARCHIVE_EXTENSIONS) | set(POINT_EXTENSIONS)))


def extension_of(path) -> str:
    """Lower-case type of a file name, with the two-part archive types (``tar.gz``)."""
    name = Path(path).name.lower()
    for double in ("tar.gz", "tar.bz2"):
        if name.endswith("." + double):
            return double
    return Path(name).suffix.lstrip(".")


@dataclass
class Geometry:
    """What a file holds: a triangle mesh (``faces`` set) or a point cloud."""
    vertices: np.ndarray                 # float64[V, 3]
    faces: np.ndarray | None = None      # int64[F, 3]
    normals: np.ndarray | None = None    # float32[V, 3] (point clouds that carry them)
    source: str = ""                     # the file (and archive member) it came from
    format: str = ""                     # the type that was read (inside an archive: the member's)
    notes: list = field(default_factory=list)   # decoder warnings (Open3D's), never printed
    #: int64[F]: the object each face came from (a scene node, an OBJ ``o`` object, an
    #: archive member's), read with ``objects=True``; else None
    pieces: np.ndarray | None = None
    piece_names: list = field(default_factory=list)   # the name of each object

    @property
    def kind(self) -> str:
        return "mesh" if self.faces is not None else "points"


# -- the reader ---------------------------------------------------------------------------
def read_geometry(path, *, max_bytes: int = 1 << 30, max_faces: int = 10_000_000,
                  allow_points: bool = True, objects: bool = False) -> Geometry:
    """The mesh (or point cloud) in ``path``, checked; ``MeshError`` otherwise. ``objects``:
    record which object each face came from (``Geometry.pieces``; an OBJ is then read by
    its ``o`` objects instead of by material)."""
    path = Path(path)
    _regular_file(path, max_bytes)
    ext = extension_of(path)
    if ext in ARCHIVE_EXTENSIONS:
        members = _archive_members(path, ext, max_bytes)
        return _from_members(path, members, max_faces, allow_points, objects)
    if ext == "pcd":
        return _pcd(path, path.read_bytes(), str(path), allow_points, max_faces)
    _check_type(path, ext)
    _check_parse_memory(path, path.stat().st_size, ext)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    resolver = _FolderResolver(path, max_bytes)
    return _load(path, io.BytesIO(data), ext, resolver, max_faces, allow_points, str(path),
                 objects)


def _regular_file(path: Path, max_bytes: int) -> int:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MeshError(f"{path}: file not found") from None
    except OSError as exc:
        raise MeshError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise MeshError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise MeshError(f"{path}: empty file (0 bytes)")
    if info.st_size > max_bytes:
        raise MeshError(f"{path}: file is {info.st_size} bytes, over the limit of {max_bytes} "
                        f"(--max-bytes)")
    return info.st_size


def _check_parse_memory(source, size: int, ext: str) -> None:
    from . import budget
    from .errors import LimitError

    try:
        budget.check(budget.parse_bytes(size, ext), f"reading this {size}-byte .{ext} file")
    except LimitError as exc:
        raise MeshError(f"{source}: {exc}") from None


def _check_type(path, ext: str) -> None:
    if ext in DRAWING_EXTENSIONS:
        raise MeshError(f"{path}: a 2-D drawing (.{ext}: lines, no faces), not a mesh")
    if ext in VOXEL_EXTENSIONS:
        raise MeshError(f"{path}: a voxel file (.{ext}) has no surface to read; export the "
                        f"model as a mesh")
    missing = missing_package_extensions()
    if ext in missing:
        raise MeshError(f"{path}: reading .{ext} files needs {missing[ext]} "
                        f"(pip install it into proc-ml's environment)")
    if ext not in available_mesh_extensions() and ext not in POINT_EXTENSIONS:
        raise MeshError(f"{path}: unsupported file type '.{ext}' (supported: "
                        f"{', '.join(known_extensions())})")


#: The first bytes of a Git LFS pointer file (a clone without ``git lfs pull``).
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
#: glTF extensions whose geometry trimesh cannot read here: name -> what to do.
_GLTF_COMPRESSION = {
    "KHR_draco_mesh_compression": "Draco-compressed geometry: pip install DracoPy into "
                                  "proc-ml's environment, or export without Draco compression",
    "EXT_meshopt_compression": "meshopt-compressed geometry, which proc-ml cannot read: export "
                               "without meshopt compression",
    "KHR_meshopt_compression": "meshopt-compressed geometry, which proc-ml cannot read: export "
                               "without meshopt compression",
}
#: Content that names its own type, for files whose extension says something else.
_MAGIC = ((b"glTF", "glb", "a binary glTF (.glb)"), (b"\x89PNG", "png", "a PNG image"),
          (b"\xff\xd8\xff", "jpg", "a JPEG image"), (b"ply\n", "ply", "a PLY mesh"),
          (b"ply\r\n", "ply", "a PLY mesh"))
_OBJ_FIRST_WORDS = {b"v", b"vn", b"vt", b"f", b"o", b"g", b"mtllib", b"usemtl", b"s"}


def _precheck(data: bytes, ext: str, source: str) -> None:
    """Problems trimesh reports badly (or not at all): a Git LFS pointer, content of another
    type than the extension says, truncated binary STL, non-JSON glTF, compressed glTF
    geometry, PLY triangle strips."""
    if data.startswith(LFS_POINTER):
        raise MeshError(f"{source}: a Git LFS pointer ({len(data)} bytes), not the .{ext} file "
                        f"itself; fetch it with `git lfs pull`")
    _check_content_type(data, ext, source)
    if ext in ("gltf", "glb"):
        _check_gltf_extensions(data, ext, source)
    if ext == "ply":
        header = data[:data.find(b"end_header")] if b"end_header" in data[:65536] else b""
        if re.search(rb"^element\s+tristrips\b", header, re.M) and \
                not re.search(rb"^element\s+face\s+[1-9]", header, re.M):
            raise MeshError(f"{source}: a PLY of triangle strips (element tristrips), which the "
                            f"reader does not take; save it with faces (e.g. MeshLab: export PLY)")
    if ext == "stl":
        head, size = data[:84], len(data)
        if head[:5].lower() != b"solid" and len(head) == 84:
            triangles = int.from_bytes(head[80:84], "little")
            if size != 84 + 50 * triangles:
                raise MeshError(f"{source}: truncated or corrupt binary STL: header says "
                                f"{triangles} triangles ({84 + 50 * triangles} bytes), file has "
                                f"{size} bytes")
        elif head[:5].lower() != b"solid":
            raise MeshError(f"{source}: not a valid STL file ({size} bytes, too short for binary STL)")
    elif ext == "gltf":
        import json

        try:
            json.loads(data)
        except RecursionError:
            raise MeshError(f"{source}: not a valid GLTF file (its JSON is nested too deeply)") from None
        except ValueError as exc:
            raise MeshError(f"{source}: not a valid GLTF file (not JSON: "
                            f"{library_message(exc, 120)})") from None


#: How far into a PLY its ``end_header`` line may be.
PLY_HEADER_BYTES = 65536
#: Bytes of each PLY scalar type (the PLY specification's names and the numbered aliases).
_PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2,
              "int16": 2, "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4,
              "float": 4, "float32": 4, "double": 8, "float64": 8}


def check_ply_header(head: bytes, size: int, source: str, max_items: int) -> None:
    """A PLY header's element counts against the limit and the file's size, before any
    reader allocates for them (a header may claim a billion vertices in a 1 kB file):
    ``MeshError`` when a face or vertex count is over ``max_items`` (the face / point limit;
    vertices may be three per face) or when the body is shorter than the smallest one the
    header allows (binary: the fixed-size properties, and one count per list; ASCII: one
    character and one separator per value). ``head`` holds the file's first bytes, ``size``
    its length."""
    end = re.search(rb"^end_header\r?\n?", head, re.M)
    if not head.startswith(b"ply") or end is None:
        return                                    # the reader says what is wrong
    lines = head[:end.start()].decode("ascii", errors="replace").splitlines()
    fmt = next((line.split()[1] for line in lines if line.startswith("format ")
                and len(line.split()) > 1), "")
    elements: list[list] = []                     # [name, count, smallest bytes per item]
    for line in lines:
        words = line.split()
        if words[:1] == ["element"] and len(words) == 3:
            try:
                elements.append([words[1], int(words[2]), 0])
            except ValueError:
                return
        elif words[:1] == ["property"] and elements and len(words) >= 3:
            if fmt == "ascii":
                elements[-1][2] += 2
            elif words[1] == "list" and len(words) >= 5:
                elements[-1][2] += _PLY_SIZES.get(words[2], 1)
            else:
                elements[-1][2] += _PLY_SIZES.get(words[1], 1)
    plural = {"vertex": "vertices", "face": "faces"}
    faces = sum(count for name, count, _ in elements if name == "face")
    for name, count, _ in elements:
        most = max_items * 3 if name == "vertex" and faces else max_items
        if name in plural and count > most:
            what = plural[name] if faces else "points"
            raise MeshError(f"{source}: the PLY header declares {count} {what}, over the limit "
                            f"of {most} (--max-faces)")
    body = size - end.end()
    least = sum(count * per_item for _, count, per_item in elements) - (fmt == "ascii")
    if body < least:
        declared = ", ".join(f"{count} {plural.get(name, name)}" for name, count, _ in elements)
        raise MeshError(f"{source}: truncated or corrupt PLY: the header declares {declared} "
                        f"(at least {least} bytes), the file has {max(body, 0)} bytes after it")


def _check_content_type(data: bytes, ext: str, source: str) -> None:
    """A file whose first bytes say it is another type than its extension (a GLB saved as
    .obj, an image renamed, an OBJ named .stl): one line naming what it is."""
    for magic, kind, what in _MAGIC:
        if data.startswith(magic) and kind != ext:
            raise MeshError(f"{source}: the content is {what}, not .{ext}; give the file its "
                            f"own extension")
    if ext in ("stl", "glb", "ply", "off"):
        first = next((line.split()[0] for line in data[:4096].splitlines()
                      if line.strip() and not line.lstrip().startswith(b"#")), b"")
        v_lines = sum(line.startswith(b"v ") for line in data[:4096].splitlines())
        if first in _OBJ_FIRST_WORDS and v_lines >= 3 and not data.lstrip().lower().startswith(b"solid"):
            raise MeshError(f"{source}: the content is an OBJ mesh (text of 'v' / 'f' lines), "
                            f"not .{ext}; give the file its own extension")


def _check_gltf_extensions(data: bytes, ext: str, source: str) -> None:
    """Refuse glTF geometry compressed in a way this environment cannot decode (trimesh
    would read placeholder zeros and the mesh would look empty)."""
    import importlib.util
    import json

    raw = data
    if ext == "glb":
        if len(data) < 20 or data[:4] != b"glTF" or data[16:20] != b"JSON":
            return
        raw = data[20:20 + int.from_bytes(data[12:16], "little")]
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return                                   # trimesh / the JSON check says what is wrong
    if not isinstance(doc, dict):
        return
    used = {str(e) for key in ("extensionsRequired", "extensionsUsed")
            for e in (doc.get(key) or []) if isinstance(doc.get(key), list)}
    for name, advice in _GLTF_COMPRESSION.items():
        if name not in used:
            continue
        if name == "KHR_draco_mesh_compression" and importlib.util.find_spec("DracoPy"):
            continue
        raise MeshError(f"{source}: {name}: {advice}")


def _load(path, file_obj, ext: str, resolver, max_faces: int, allow_points: bool,
          source: str, objects: bool = False) -> Geometry:
    trimesh = _trimesh()
    _precheck(file_obj.getvalue(), ext, source)
    if ext == "ply":
        data = file_obj.getvalue()
        check_ply_header(data[:PLY_HEADER_BYTES], len(data), source, max_faces)
    elif ext == "obj":
        from .triangulate import triangulate_obj_polygons

        # concave n-gons: trimesh would fan them, with triangles outside the polygon
        file_obj = io.BytesIO(triangulate_obj_polygons(file_obj.getvalue()))
    # by object, not by material: the objects of an OBJ are its buildings (or their parts)
    split = {"split_objects": True, "group_material": False} if objects and ext == "obj" else {}
    try:
        loaded = trimesh.load(file_obj, file_type=ext, resolver=resolver, process=False, **split)
    except MeshError:
        raise
    except RecursionError:
        raise MeshError(f"{source}: not a valid {ext.upper()} file (nested too deeply)") from None
    except MemoryError:
        raise MeshError(f"{source}: out of memory reading the {ext.upper()} file") from None
    except Exception as exc:  # noqa: BLE001 - loaders raise every type for broken files
        raise MeshError(f"{source}: not a valid {ext.upper()} file "
                        f"({_loader_message(exc)})") from None
    geometry = _geometry(loaded, ext, max_faces, allow_points, source, objects)
    geometry.format = ext
    return geometry


def _loader_message(exc: Exception) -> str:
    escaped = getattr(exc, "proc_ml_message", None)
    if escaped:
        return escaped
    text = str(exc)
    if "escapes resolver root" in text:
        name = text.split("'")[1] if text.count("'") >= 2 else "a file"
        return f"it refers to '{name}', outside its own folder (refused)"
    return library_message(exc)


def _geometry(loaded, ext: str, max_faces: int, allow_points: bool, source: str,
              objects: bool = False) -> Geometry:
    trimesh = _trimesh()
    if isinstance(loaded, trimesh.Scene):
        if not loaded.geometry:
            if ext in ("glb", "gltf", "3mf", "3dxml", "dae", "zae"):
                raise MeshError(f"{source}: the {ext.upper()} scene is empty (no meshes in it)")
            raise MeshError(f"{source}: no mesh data found (not a valid {ext.upper()} mesh)")
        _check_instances(loaded, max_faces, source)
        parts = loaded.dump()
    else:
        parts = [loaded]
    meshes = [g for g in parts if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    clouds = [g for g in parts if isinstance(g, trimesh.PointCloud) and len(g.vertices)]
    if meshes:
        vertices = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes])
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        faces = np.concatenate([np.asarray(m.faces, dtype=np.int64).reshape(-1, 3) + o
                                for m, o in zip(meshes, offsets)])
        geometry = checked_mesh(vertices, faces, source, max_faces)
        if objects:
            geometry.pieces = np.repeat(np.arange(len(meshes)), [len(m.faces) for m in meshes])
            geometry.piece_names = [str(m.metadata.get("node") or m.metadata.get("name")
                                        or f"object {k}") for k, m in enumerate(meshes)]
        return geometry
    if any(isinstance(g, trimesh.Trimesh) and len(g.vertices) for g in parts) or clouds:
        points = np.concatenate([np.asarray(g.vertices, dtype=np.float64).reshape(-1, 3)
                                 for g in parts if len(getattr(g, "vertices", ()))])
        if not allow_points:
            raise MeshError(f"{source}: {len(points)} vertices but no faces (a point cloud, "
                            f"not a mesh)")
        return checked_points(points, source, max_faces)
    if any(type(g).__name__.startswith("Path") for g in parts):
        raise MeshError(f"{source}: holds lines only (a drawing), no faces")
    raise MeshError(f"{source}: no mesh data found (not a valid {ext.upper()} mesh)")


def _check_instances(scene, max_faces: int, source: str) -> None:
    """Faces once every instance is placed: counted before ``dump`` copies them."""
    total = 0
    for node in scene.graph.nodes_geometry:
        _, name = scene.graph[node]
        geometry = scene.geometry.get(name)
        faces = getattr(geometry, "faces", None)
        total += len(faces) if faces is not None else len(getattr(geometry, "vertices", ()))
        if total > max_faces:
            raise MeshError(f"{source}: the scene places more than {max_faces} faces "
                            f"(instances counted), over the limit (--max-faces)")


# -- checks shared by every reader ----------------------------------------------------------
def checked_mesh(vertices, faces, source: str, max_faces: int = 10_000_000) -> Geometry:
    """``Geometry`` of a triangle mesh after the checks in the module doc."""
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        if len(vertices) == 0:
            raise MeshError(f"{source}: no geometry found")
        raise MeshError(f"{source}: {len(vertices)} vertices but no faces (a point cloud, not a mesh)")
    if len(faces) > max_faces:
        raise MeshError(f"{source}: {len(faces)} faces, over the limit of {max_faces} (--max-faces)")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(f"{source}: faces index vertices outside 0..{len(vertices) - 1}")
    _check_coordinates(vertices, "vertices", source)
    used = vertices[np.unique(faces)]
    if not (np.ptp(used, axis=0) > 0).any():
        raise MeshError(f"{source}: the mesh has no extent (every vertex is at the same point)")
    return Geometry(vertices, faces, source=source)


def checked_points(points, source: str, max_points: int = 10_000_000, normals=None) -> Geometry:
    """``Geometry`` of a point cloud: some points, finite, within the limit."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        raise MeshError(f"{source}: the point cloud has no points")
    if len(points) > max_points:
        raise MeshError(f"{source}: {len(points)} points, over the limit of {max_points} (--max-faces)")
    _check_coordinates(points, "points", source)
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32).reshape(-1, 3)
        if normals.shape != points.shape or not np.isfinite(normals).all():
            normals = None           # unusable normals are estimated again
    return Geometry(points, None, normals, source)


def _check_coordinates(values: np.ndarray, what: str, source: str) -> None:
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise MeshError(f"{source}: {int(bad.sum())} of {len(values)} {what} have NaN or "
                        f"infinite coordinates")
    huge = (np.abs(values) > MAX_COORDINATE).any(axis=1)
    if huge.any():
        raise MeshError(f"{source}: {int(huge.sum())} of {len(values)} {what} lie farther than "
                        f"{MAX_COORDINATE:g} units from the origin (broken export or wrong units)")


# -- point clouds -----------------------------------------------------------------------------
def _pcd(path, data: bytes, source: str, allow_points: bool, max_points: int) -> Geometry:
    from .formats import pcd

    if not allow_points:
        raise MeshError(f"{source}: a point cloud (PCD), not a mesh")
    cloud = pcd.read_bytes(data, source, max_points=max_points,
                           file=path if str(path) == source else None)
    geometry = checked_points(cloud.points, source, max_points, cloud.normals)
    geometry.format, geometry.notes = "pcd", list(cloud.warnings)
    return geometry


# -- sandboxed external files -----------------------------------------------------------------
class _FolderResolver(Resolver):
    """trimesh resolver over the asset's own folder: regular files inside it only, within
    the size limit (see the module doc)."""

    def __init__(self, path: Path, max_bytes: int):
        self.parent = Path(path).resolve().parent
        self.max_bytes = max_bytes

    def keys(self):
        try:
            return [e.name for e in os.scandir(self.parent) if e.is_file(follow_symlinks=False)]
        except OSError:
            return []

    def namespaced(self, namespace: str):
        return _FolderResolver(self.parent / namespace / "x", self.max_bytes)

    def get(self, name: str) -> bytes:
        target = (self.parent / str(name).strip()).resolve()
        if target != self.parent and self.parent not in target.parents:
            raise _Refused(f"it refers to '{name}', outside its own folder (refused)")
        try:
            info = os.stat(target)
        except OSError:
            raise FileNotFoundError(name) from None
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(f"it refers to '{name}', which is not a regular file (refused)")
        if info.st_size > self.max_bytes:
            raise _Refused(f"it refers to '{name}' of {info.st_size} bytes, over the limit "
                           f"of {self.max_bytes} (--max-bytes)")
        with open(target, "rb") as fh:
            return fh.read()

    def __contains__(self, name) -> bool:
        return name in self.keys()

    def write(self, name, data):
        raise _Refused("loaders may not write files")

    def get_base(self):
        raise FileNotFoundError("no base file")


class _ArchiveResolver(_FolderResolver):
    """trimesh resolver over the members of an archive (already size-checked)."""

    def __init__(self, members: dict[str, bytes], base: str = ""):
        self.members, self.base = members, base

    def keys(self):
        return list(self.members)

    def namespaced(self, namespace: str):
        return _ArchiveResolver(self.members, f"{self.base}{namespace.strip('/')}/")

    def get(self, name: str) -> bytes:
        name = str(name).strip().replace("\\", "/")
        for candidate in (self.base + name, name, name.lstrip("./"), os.path.basename(name)):
            candidate = os.path.normpath(candidate).replace("\\", "/")
            if candidate in self.members:
                return self.members[candidate]
        matches = [k for k in self.members if os.path.basename(k) == os.path.basename(name)]
        if len(matches) == 1:
            return self.members[matches[0]]
        raise FileNotFoundError(name)


class _Refused(ValueError):
    """A loader asked for a file it may not read; the message is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.proc_ml_message = message


# -- archives ---------------------------------------------------------------------------------
def _archive_members(path: Path, ext: str, max_bytes: int) -> dict[str, bytes]:
    """Regular members of an archive (name -> bytes), inflated within ``max_bytes`` in all."""
    try:
        if ext == "zip":
            return _zip_members(path, max_bytes)
        if ext in ("tar.gz", "tgz", "tar.bz2", "tbz2"):
            return _tar_members(path, max_bytes)
        opener = gzip.open if ext == "gz" else bz2.open
        inner = path.name[:-(len(ext) + 1)]
        with opener(path, "rb") as fh:
            data = _read_capped(fh, max_bytes, path)
        if extension_of(inner) == "tar" or inner.lower().endswith(".tar"):
            return _tar_members_from(io.BytesIO(data), path, max_bytes)
        return {os.path.basename(inner) or "member": data}
    except MeshError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise MeshError(f"{path}: not a valid {ext} archive ({library_message(exc)})") from None


def _read_capped(fh, limit: int, path) -> bytes:
    chunks, total = [], 0
    while True:
        block = fh.read(1 << 20)
        if not block:
            return b"".join(chunks)
        total += len(block)
        if total > limit:
            raise MeshError(f"{path}: inflates to more than {limit} bytes, over the limit "
                            f"(--max-bytes; an archive bomb?)")
        chunks.append(block)


def _zip_members(path: Path, max_bytes: int) -> dict[str, bytes]:
    members, total = {}, 0
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_ARCHIVE_MEMBERS:
            raise MeshError(f"{path}: {len(infos)} members, over the limit of {MAX_ARCHIVE_MEMBERS}")
        stated = sum(i.file_size for i in infos)
        if stated > max_bytes:
            raise MeshError(f"{path}: inflates to {stated} bytes, over the limit of {max_bytes} "
                            f"(--max-bytes)")
        for info in infos:
            if info.flag_bits & 0x1:
                raise MeshError(f"{path}: member '{info.filename}' is encrypted")
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode != stat.S_IFREG:
                raise MeshError(f"{path}: member '{info.filename}' is not a regular file (refused)")
            with zf.open(info) as fh:
                data = _read_capped(fh, max_bytes - total, path)
            total += len(data)
            members[_member_name(info.filename, path)] = data
    return members


def _tar_members(path: Path, max_bytes: int) -> dict[str, bytes]:
    with open(path, "rb") as raw:
        mode = "r:gz" if extension_of(path) in ("tar.gz", "tgz") else "r:bz2"
        with tarfile.open(fileobj=raw, mode=mode) as tf:
            return _tar_read(tf, path, max_bytes)


def _tar_members_from(fileobj, path: Path, max_bytes: int) -> dict[str, bytes]:
    with tarfile.open(fileobj=fileobj, mode="r:") as tf:
        return _tar_read(tf, path, max_bytes)


def _tar_read(tf, path: Path, max_bytes: int) -> dict[str, bytes]:
    members, total, count = {}, 0, 0
    for info in tf:
        count += 1
        if count > MAX_ARCHIVE_MEMBERS:
            raise MeshError(f"{path}: more than {MAX_ARCHIVE_MEMBERS} members")
        if info.isdir():
            continue
        if not info.isreg():
            raise MeshError(f"{path}: member '{info.name}' is a link or device (refused)")
        if total + info.size > max_bytes:
            raise MeshError(f"{path}: inflates to more than {max_bytes} bytes, over the limit "
                            f"(--max-bytes)")
        data = _read_capped(tf.extractfile(info), max_bytes - total, path)
        total += len(data)
        members[_member_name(info.name, path)] = data
    return members


def _member_name(name: str, path) -> str:
    clean = os.path.normpath(name.replace("\\", "/")).replace("\\", "/").lstrip("/")
    if clean.startswith("..") or not clean or clean == ".":
        raise MeshError(f"{path}: member name '{name}' leaves the archive (refused)")
    return clean


def _from_members(path: Path, members: dict[str, bytes], max_faces: int,
                  allow_points: bool, objects: bool = False) -> Geometry:
    readable = set(available_mesh_extensions()) | {"pcd", "xyz"}
    inner = [name for name in sorted(members) if extension_of(name) in readable]
    nested = [name for name in members if extension_of(name) in ARCHIVE_EXTENSIONS]
    if not inner:
        if nested:
            raise MeshError(f"{path}: holds an archive ('{nested[0]}'); archives inside "
                            f"archives are not opened")
        types = sorted({extension_of(n) or "(none)" for n in members})
        raise MeshError(f"{path}: no mesh inside the archive (member types: {', '.join(types)})")
    resolver = _ArchiveResolver(members)
    pieces = []
    for name in inner:
        ext = extension_of(name)
        source = f"{path} [{name}]"
        if ext == "pcd":
            pieces.append(_pcd(path, members[name], source, allow_points, max_faces))
            continue
        _check_parse_memory(source, len(members[name]), ext)
        member_resolver = resolver.namespaced(os.path.dirname(name)) if "/" in name else resolver
        pieces.append(_load(path, io.BytesIO(members[name]), ext, member_resolver, max_faces,
                            allow_points, source, objects))
    meshes = [p for p in pieces if p.faces is not None]
    if meshes:
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        geometry = checked_mesh(np.concatenate([m.vertices for m in meshes]),
                                np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
                                str(path), max_faces)
        if objects:          # each member's objects, numbered on
            starts = np.cumsum([0] + [len(m.piece_names) for m in meshes[:-1]])
            geometry.pieces = np.concatenate([m.pieces + k for m, k in zip(meshes, starts)])
            geometry.piece_names = [f"{m.source}: {n}" for m in meshes for n in m.piece_names]
    else:
        geometry = checked_points(np.concatenate([p.vertices for p in pieces]), str(path), max_faces)
    formats = {p.format for p in (meshes or pieces)}
    geometry.format = formats.pop() if len(formats) == 1 else ""
    geometry.notes = [note for p in pieces for note in p.notes]
    return geometry
