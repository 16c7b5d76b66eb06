"""Labelled meshes: a part per triangle, as PLY, OBJ or GLB (through trimesh).

* PLY: one mesh; per-face ``part`` property (int) and per-face colour.
* GLB and OBJ: one object per part, named after the part and coloured with it
  (formats without per-face attributes carry the part in the object name). GLB is y-up
  as glTF requires (a node rotation over the z-up geometry it is given); OBJ and PLY keep
  the vertices as given (z-up in datasets; ``predict`` writes its PLY in the input's frame).

Writers take plain arrays (vertices, triangles, a part per triangle, -1 = unlabelled);
``read`` returns vertices in proc-ml's z-up frame for every format.

Precision: vertices are stored as float32 (what viewers and DCCs expect) unless float32
would move one by more than ``FLOAT32_TOLERANCE`` of the mesh's extent, as it does for
georeferenced coordinates (float32 steps are 6 cm at 680,000 m and 0.5 m at 5,400,000 m,
enough to bend a facade). Then PLY stores doubles, and GLB stores the geometry around a
whole-unit offset that its nodes' translation (JSON numbers: doubles) puts back; OBJ is
text with 8 decimals either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..colours import UNLABELLED
from ..errors import DatasetError
from ..meshing import to_z_up, z_up_to_y_up_transform

FORMATS = ("obj", "ply", "glb")
#: Largest float32 rounding of a vertex, as a share of the mesh's extent, stored as float32.
FLOAT32_TOLERANCE = 1e-5
#: Object name of faces without a part in OBJ/GLB (a massing to label); read back as -1.
UNLABELLED_OBJECT = "massing"


def preload() -> None:
    """Import trimesh and its exporters now (a batch worker does this before its first
    asset, so ``--timeout`` times the asset, not the imports)."""
    import trimesh
    import trimesh.exchange.export  # noqa: F401


def _rgba(colours, parts: np.ndarray) -> np.ndarray:
    table = np.array([tuple(c) + (255,) for c in colours], dtype=np.uint8)
    return table[parts]


def _face_rgba(colours, parts: np.ndarray) -> np.ndarray:
    """uint8[T, 4]: each triangle's part colour (faces without a part are grey)."""
    return np.where(parts[:, None] >= 0, _rgba(colours, np.maximum(parts, 0)),
                    np.array(UNLABELLED + (255,), np.uint8)).astype(np.uint8)


def labelled_trimesh(vertices, triangles, triangle_parts, colours):
    """One trimesh with per-face ``part`` and colours (faces without a part are grey)."""
    import trimesh

    tm = trimesh.Trimesh(np.asarray(vertices), np.asarray(triangles), process=False)
    parts = np.asarray(triangle_parts).astype(np.int32)
    tm.visual.face_colors = _face_rgba(colours, parts)
    tm.face_attributes["part"] = parts
    return tm


def part_scene(vertices, triangles, triangle_parts, names, colours, y_up: bool = False):
    """A scene with one geometry per part present, named after the part.

    With ``y_up`` the geometry stays z-up and each node carries the rotation to glTF's y-up
    frame, so viewers show the building upright and readers can undo it exactly.
    """
    import trimesh

    vertices, triangles = np.asarray(vertices, dtype=np.float64), np.asarray(triangles)
    offset = np.zeros(3)
    if needs_float64(vertices):     # far from the origin: geometry near it, the node moves it back
        offset = np.floor(vertices.min(axis=0))
        vertices = vertices - offset
    transform = np.eye(4)
    transform[:3, 3] = offset
    if y_up:
        transform = z_up_to_y_up_transform() @ transform
    transform = None if np.array_equal(transform, np.eye(4)) else transform
    scene = trimesh.Scene()
    tri_parts = np.asarray(triangle_parts)
    for part in np.unique(tri_parts):
        name = names[part] if part >= 0 else UNLABELLED_OBJECT
        colour = tuple(colours[part]) if part >= 0 else UNLABELLED
        faces = triangles[tri_parts == part]
        used, inverse = np.unique(faces, return_inverse=True)
        sub = trimesh.Trimesh(vertices[used], inverse.reshape(-1, 3), process=False)
        sub.visual = trimesh.visual.ColorVisuals(sub, face_colors=colour + (255,))
        scene.add_geometry(sub, geom_name=name, node_name=name, transform=transform)
    return scene


def mesh_bytes(vertices, triangles, triangle_parts, fmt: str, names, colours) -> bytes:
    """The labelled mesh as ``fmt`` (one of ``FORMATS``) bytes."""
    if fmt == "ply" and needs_float64(vertices):
        data = _ply_float64(vertices, triangles, triangle_parts, colours)
    elif fmt == "ply":
        data = labelled_trimesh(vertices, triangles, triangle_parts, colours).export(
            file_type="ply", include_attributes=True)
    elif fmt in ("glb", "obj"):
        data = part_scene(vertices, triangles, triangle_parts, names, colours,
                          y_up=(fmt == "glb")).export(file_type=fmt)
    else:
        raise ValueError(f"unknown mesh format '{fmt}' (expected one of {FORMATS})")
    return data.encode() if isinstance(data, str) else data


def needs_float64(vertices) -> bool:
    """float32 would move a vertex by more than ``FLOAT32_TOLERANCE`` of the extent."""
    v = np.asarray(vertices, dtype=np.float64)
    if not v.size:
        return False
    extent = max(float(np.ptp(v, axis=0).max()), np.finfo(np.float64).tiny)
    return float(np.abs(v.astype(np.float32) - v).max()) > FLOAT32_TOLERANCE * extent


def _ply_float64(vertices, triangles, triangle_parts, colours) -> bytes:
    """The PLY ``labelled_trimesh`` writes (binary, per-face colour and ``part``), with
    double vertices."""
    vertices = np.asarray(vertices, dtype="<f8")
    triangles = np.asarray(triangles, dtype="<i4")
    parts = np.asarray(triangle_parts).astype("<i4")
    rgba = _face_rgba(colours, parts)
    faces = np.zeros(len(triangles), dtype=[("count", "u1"), ("index", "<i4", (3,)),
                                            ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                                            ("alpha", "u1"), ("part", "<i4")])
    faces["count"], faces["index"], faces["part"] = 3, triangles, parts
    for i, channel in enumerate(("red", "green", "blue", "alpha")):
        faces[channel] = rgba[:, i]
    header = ("ply\nformat binary_little_endian 1.0\ncomment proc-ml (double vertices: "
              "georeferenced coordinates)\n"
              f"element vertex {len(vertices)}\nproperty double x\nproperty double y\n"
              f"property double z\nelement face {len(triangles)}\n"
              "property list uchar int vertex_indices\nproperty uchar red\nproperty uchar green\n"
              "property uchar blue\nproperty uchar alpha\nproperty int part\nend_header\n")
    return header.encode("ascii") + vertices.tobytes() + faces.tobytes()


def read(path: str | os.PathLike, parts):
    """A labelled mesh -> ``(trimesh.Trimesh, int32 part per triangle)``.

    PLY carries a ``part`` face property; GLB and OBJ carry one object per part name.
    Vertices come back in proc-ml's z-up frame for every format (GLB is stored y-up).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".ply":
            mesh = trimesh.load(path, process=False, force="mesh")
            raw = mesh.metadata.get("_ply_raw", {}).get("face", {}).get("data")
            if raw is None or "part" not in (raw.dtype.names or ()):
                raise DatasetError(f"{path}: PLY has no per-face 'part' property")
            return mesh, np.asarray(raw["part"], dtype=np.int32)
        if suffix == ".obj":
            mesh = trimesh.load(path, process=False, force="mesh")
            return mesh, _obj_object_parts(path, parts, len(mesh.faces))
        if suffix in (".glb", ".gltf"):
            scene = trimesh.load(path, process=False, force="scene")
            meshes, labels = [], []
            for node in scene.graph.nodes_geometry:
                transform, name = scene.graph[node]
                if name not in parts and name != UNLABELLED_OBJECT:
                    raise DatasetError(f"{path}: object '{name}' is not a part name ({', '.join(parts)})")
                geom = scene.geometry[name].copy()
                geom.apply_transform(transform)              # world frame, y-up (glTF)
                geom.vertices = to_z_up(geom.vertices, "y")  # proc-ml frame, z-up
                meshes.append(geom)
                label = list(parts).index(name) if name in parts else -1
                labels.append(np.full(len(geom.faces), label, dtype=np.int32))
            if not meshes:
                raise DatasetError(f"{path}: no geometry")
            return trimesh.util.concatenate(meshes), np.concatenate(labels)
    except DatasetError:
        raise
    except Exception as exc:  # trimesh raises many types for malformed files
        raise DatasetError(f"{path}: cannot read mesh ({type(exc).__name__}: {exc})") from None
    raise DatasetError(f"{path}: unsupported mesh format '{suffix}' (expected .ply, .glb, .obj)")


def _obj_object_parts(path: Path, parts, n_faces: int) -> np.ndarray:
    """Part per triangle from the ``o NAME`` sections of an OBJ (trimesh merges them on load)."""
    labels, current = [], None
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.startswith("o "):
            current = line[2:].strip()
            if current not in parts and current != UNLABELLED_OBJECT:
                raise DatasetError(f"{path}: line {lineno}: object '{current}' is not a part name "
                                   f"({', '.join(parts)})")
        elif line.startswith("f "):
            if current is None:
                raise DatasetError(f"{path}: line {lineno}: face outside a named part object")
            labels.append(list(parts).index(current) if current in parts else -1)
    if len(labels) != n_faces:
        raise DatasetError(f"{path}: {len(labels)} face lines but {n_faces} triangles "
                           f"(labelled OBJ files must hold triangles only)")
    return np.array(labels, dtype=np.int32)
