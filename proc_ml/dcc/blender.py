"""Blender adapter: bpy meshes <-> numpy arrays, and nothing else.

Everything moves in bulk with ``foreach_get`` / ``foreach_set``. Blender is z-up with
counter-clockwise front faces, like proc-ml, so no frame change is needed; positions are
taken to world space with the object's matrix (modifiers applied through the depsgraph),
in metres: Blender units times the scene's Unit Scale (:func:`unit_scale`).

Blender stores positions as float32, which keeps centimetres only within about 100 km of
the origin (UTM northings are 5,000 km): results are written relative to an origin near
the building, set as the result object's location (:func:`write_result`).

Corrections (``proc_ml.dcc.fixes``): the INT face attribute ``part_fix`` holds the part an
artist set, as an index into the object's ``proc_ml_parts`` (like ``part``), -1 = not
corrected.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from .fixes import NO_FIX_INDEX, PART_FIX_ATTRIB, FixedFaces
from .geometry import GeometryError

PART_ATTRIB = "part"
PROB_ATTRIB_PREFIX = "part_prob_"
MATERIAL_PREFIX = "proc_ml_"
#: A result's origin is its building's centre rounded to this many Blender units: whole,
#: exactly representable in float32, and (0, 0, 0) for a building near the world origin.
RESULT_ORIGIN_STEP = 1000.0


def unit_scale(scene) -> float:
    """Metres per Blender unit: the scene's Unit Scale (1 when the unit system is None)."""
    settings = scene.unit_settings
    if settings.system == "NONE" or not settings.scale_length > 0:
        return 1.0
    return float(f"{settings.scale_length:.7g}")      # Blender's float32: 0.01, not 0.0099999998


def mesh_arrays(obj, depsgraph=None, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(world points float64[N, 3], vertex counts int64[F], vertex indices int64[sum])``
    of ``obj``'s evaluated mesh (its modifiers applied when a depsgraph is given); points
    times ``scale`` (:func:`unit_scale`: metres)."""
    source = obj.evaluated_get(depsgraph) if depsgraph is not None else obj
    mesh = source.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        starts = np.empty(len(mesh.polygons), dtype=np.int32)
        counts = np.empty(len(mesh.polygons), dtype=np.int32)
        mesh.polygons.foreach_get("loop_start", starts)
        mesh.polygons.foreach_get("loop_total", counts)
        corners = np.empty(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", corners)
    finally:
        source.to_mesh_clear()
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    points = (co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]) * float(scale)
    counts = counts.astype(np.int64)
    offsets = np.repeat(starts.astype(np.int64) - (np.cumsum(counts) - counts), counts)
    indices = corners[np.arange(int(counts.sum())) + offsets].astype(np.int64)
    return points, counts, indices


def write_labelled_mesh(mesh, prims, materials=(), points=None) -> None:
    """Replace ``mesh``'s geometry with ``LabelledPrims`` quads: a face int attribute
    ``part``, a face float attribute ``part_prob_<name>`` per part, ``materials`` in
    slots 0..K-1 with each face's material index = its part, and, when ``prims.fix`` is
    set, the face int attribute ``part_fix``. ``points``: the quads' positions as the mesh
    holds them (default ``prims.points``; :func:`write_result` gives them relative to the
    object's origin, in Blender units)."""
    points = prims.points if points is None else points
    mesh.clear_geometry()
    mesh.materials.clear()
    for material in materials:
        mesh.materials.append(material)
    n_faces = len(prims)
    mesh.vertices.add(4 * n_faces)
    mesh.vertices.foreach_set("co", np.ascontiguousarray(points, np.float32).reshape(-1))
    mesh.loops.add(4 * n_faces)
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(prims.polygons, np.int32).reshape(-1))
    mesh.polygons.add(n_faces)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 4 * n_faces, 4, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(n_faces, 4, dtype=np.int32))
    mesh.update()
    _face_attribute(mesh, PART_ATTRIB, "INT", prims.part.astype(np.int32))
    for k, name in enumerate(prims.parts):
        _face_attribute(mesh, PROB_ATTRIB_PREFIX + name, "FLOAT",
                        np.ascontiguousarray(prims.probs[:, k], np.float32))
    mesh.polygons.foreach_set("material_index", np.maximum(prims.part, 0).astype(np.int32))
    if prims.fix is not None:
        _face_attribute(mesh, PART_FIX_ATTRIB, "INT", prims.fix.astype(np.int32))


def _face_attribute(mesh, name: str, kind: str, values: np.ndarray) -> None:
    existing = mesh.attributes.get(name)
    if existing is not None and (existing.data_type != kind or existing.domain != "FACE"):
        mesh.attributes.remove(existing)
        existing = None
    attribute = existing or mesh.attributes.new(name, kind, "FACE")
    attribute.data.foreach_set("value", values)


#: numpy types of the single-value attribute types ``face_attribute`` reads in bulk
_VALUE_TYPES = {"INT": np.int32, "INT8": np.int8, "FLOAT": np.float32, "BOOLEAN": bool}


def face_attribute(mesh, name: str, where: str = "") -> np.ndarray | None:
    """A face attribute's values (int, float, bool or, for a ``STRING`` attribute, str),
    or None when the mesh lacks it. The same name on another domain (points, corners,
    edges), or with several values per face (a vector or colour), is a
    :class:`GeometryError` (``where`` prefixes it, e.g. the object's name): read as
    missing it would drop the values in silence."""
    attribute = mesh.attributes.get(name)
    if attribute is None:
        return None
    if attribute.domain != "FACE":
        raise GeometryError(f"{where}'{name}' is a {attribute.domain.lower()} attribute; proc-ml reads "
                            f"it per face (domain Face)")
    n = len(mesh.polygons)
    if attribute.data_type == "STRING":
        values = [item.value for item in attribute.data]      # bytes (UTF-8) in Blender
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                         for v in values], dtype=object).reshape(n)
    dtype = _VALUE_TYPES.get(attribute.data_type)
    if dtype is None:
        raise GeometryError(f"{where}'{name}' is a {attribute.data_type} attribute; proc-ml reads "
                            f"one value per face (an integer part index)")
    values = np.empty(n, dtype=dtype)
    attribute.data.foreach_get("value", values)
    return values.astype(np.int32) if dtype is np.int8 else values


def evaluated_face_attribute(obj, name: str, depsgraph=None) -> np.ndarray | None:
    """A face attribute of ``obj``'s evaluated mesh (the faces ``mesh_arrays`` reads)."""
    source = obj.evaluated_get(depsgraph) if depsgraph is not None else obj
    mesh = source.to_mesh()
    try:
        return face_attribute(mesh, name, f"{obj.name}: ")
    finally:
        source.to_mesh_clear()


def fixed_faces(obj, parts, depsgraph=None, scale: float = 1.0) -> FixedFaces | None:
    """``obj``'s faces (world space, times ``scale``) with their ``part_fix`` (indices
    into ``parts``), or None when it has no ``part_fix``."""
    values = evaluated_face_attribute(obj, PART_FIX_ATTRIB, depsgraph)
    if values is None:
        return None
    points, counts, indices = mesh_arrays(obj, depsgraph, scale)
    return FixedFaces(points, counts, indices, values, tuple(parts), "z", f"{obj.name}: ", "face")


def previous_result(source, suffix: str = "_parts"):
    """``source``'s existing ``<name>_parts`` result, or None when there is none yet. An
    object of that name that is not ``source``'s result (the artist's own, another
    object's, linked from a library) is a :class:`GeometryError`: it is never overwritten."""
    name = source.name + suffix
    obj = bpy.data.objects.get(name)
    if obj is None:
        return None
    if obj.type != "MESH" or obj.get("proc_ml_source") != source.name:
        raise GeometryError(f"{name} already exists and is not the proc-ml result of {source.name}; "
                            f"rename it (the result is written to {name})")
    if obj.library is not None or (obj.data is not None and obj.data.library is not None):
        raise GeometryError(f"{name} is linked from a library and cannot be rewritten; make it "
                            f"local (Object > Relations > Make Local) or delete it")
    return obj


def part_fix_sources(source, parts, depsgraph=None, suffix: str = "_parts",
                     scale: float = 1.0) -> list:
    """The corrections a new prediction of ``source`` keeps: ``part_fix`` on the massing
    itself, then on its existing ``<name>_parts`` result (which wins where both cover a
    face). Indices refer to each object's ``proc_ml_parts``, else to ``parts``; positions
    are in metres (``scale``, :func:`unit_scale`)."""
    found = []
    previous = previous_result(source, suffix)
    for obj, graph in ((source, depsgraph), (previous, None)):
        if obj is None or obj.type != "MESH":
            continue
        vocabulary = tuple(str(obj.get("proc_ml_parts", "")).split()) or tuple(parts)
        fixed = fixed_faces(obj, vocabulary, graph, scale)
        if fixed is not None:
            found.append(fixed)
    return found


def set_part_fix(mesh, value: int, where: str = "") -> int:
    """Set ``part_fix`` to ``value`` (a part index, -1 = clear) on the selected faces of
    ``mesh`` (object mode), creating the attribute (-1 elsewhere); material indices show
    the corrected part (else ``part``). Returns the number of faces set (0: nothing
    selected, the mesh is left as it is)."""
    n = len(mesh.polygons)
    selected = np.zeros(n, dtype=bool)
    mesh.polygons.foreach_get("select", selected)
    if not selected.any():
        return 0
    current = face_attribute(mesh, PART_FIX_ATTRIB, where)
    if current is not None and current.dtype.kind not in "iu":
        raise GeometryError(f"{where}'{PART_FIX_ATTRIB}' is a {mesh.attributes[PART_FIX_ATTRIB].data_type} "
                            f"attribute; the add-on sets part indices in an INT one: remove it first")
    fix = np.full(n, NO_FIX_INDEX, np.int32) if current is None else current.astype(np.int32)
    fix[selected] = int(value)
    _face_attribute(mesh, PART_FIX_ATTRIB, "INT", fix)
    part = face_attribute(mesh, PART_ATTRIB)
    shown = np.where(fix >= 0, fix, part if part is not None else 0)
    mesh.polygons.foreach_set("material_index", np.maximum(shown, 0).astype(np.int32))
    mesh.update()
    return int(selected.sum())


def part_materials(parts, colours) -> list:
    """One material per part, ``proc_ml_<part>``, coloured with the part's colour."""
    materials = []
    for name, rgb in zip(parts, np.asarray(colours, dtype=np.float32)):
        material = bpy.data.materials.get(MATERIAL_PREFIX + name) or bpy.data.materials.new(
            MATERIAL_PREFIX + name)
        colour = (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)
        material.diffuse_color = colour
        tree = getattr(material, "node_tree", None)
        bsdf = tree.nodes.get("Principled BSDF") if tree is not None else None
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = colour
        materials.append(material)
    return materials


def result_object(source, suffix: str = "_parts"):
    """The object ``<source>_parts``: the existing result (:func:`previous_result`), else
    a new object with a new mesh in ``source``'s collections that can take it (the scene's
    collection when ``source`` is only in linked ones)."""
    obj = previous_result(source, suffix)
    if obj is None:
        name = source.name + suffix
        obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
    if not obj.users_collection:      # new, or left in no collection
        collections = [c for c in source.users_collection
                       if c.library is None and getattr(c, "override_library", None) is None]
        for collection in collections or [bpy.context.scene.collection]:
            collection.objects.link(obj)
    return obj


def write_result(obj, prims, materials=(), scale: float = 1.0) -> None:
    """Write ``prims`` (positions in metres, ``scale`` metres per Blender unit) into the
    result object ``obj``: its location is the building's centre rounded to
    :data:`RESULT_ORIGIN_STEP` units and the quads are written relative to it, so float32
    keeps them on the cell grid at any world position (UTM coordinates)."""
    points = np.asarray(prims.points, dtype=np.float64) / float(scale)
    origin = (np.round(points.mean(axis=0) / RESULT_ORIGIN_STEP) * RESULT_ORIGIN_STEP
              if len(points) else np.zeros(3))
    obj.matrix_world = Matrix.Translation(tuple(float(v) for v in origin))
    write_labelled_mesh(obj.data, prims, materials, points - origin)


def write_uvs(mesh, uv: np.ndarray, name: str = "UVMap") -> None:
    """Per-point UVs (``float[N, 2]``) as the UV layer ``name`` (made active), per loop."""
    layer = mesh.uv_layers.get(name) or mesh.uv_layers.new(name=name)
    mesh.uv_layers.active = layer
    corners = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    layer.data.foreach_set("uv", np.ascontiguousarray(np.asarray(uv, np.float32)[corners]).reshape(-1))


def assign_textured_material(mesh, name: str, image_path: str):
    """Make ``mesh``'s only material one whose base colour is the image at ``image_path``."""
    image = bpy.data.images.load(image_path, check_existing=True)
    image.reload()
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):       # Blender 5 materials always have a node tree
        material.use_nodes = True
    tree = material.node_tree
    bsdf = tree.nodes.get("Principled BSDF") or tree.nodes.new("ShaderNodeBsdfPrincipled")
    texture = tree.nodes.get("proc_ml_atlas") or tree.nodes.new("ShaderNodeTexImage")
    texture.name = "proc_ml_atlas"
    texture.image = image
    tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    mesh.materials.clear()
    mesh.materials.append(material)
    mesh.polygons.foreach_set("material_index", np.zeros(len(mesh.polygons), dtype=np.int32))
    return material
