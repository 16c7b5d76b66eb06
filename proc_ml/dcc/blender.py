"""Blender adapter: bpy meshes <-> numpy arrays, and nothing else.

Everything moves in bulk with ``foreach_get`` / ``foreach_set``. Blender is z-up with
counter-clockwise front faces, like proc-ml, so no frame change is needed; positions are
taken to world space with the object's matrix (modifiers applied through the depsgraph).

Corrections (``proc_ml.dcc.fixes``): the INT face attribute ``part_fix`` holds the part an
artist set, as an index into the object's ``proc_ml_parts`` (like ``part``), -1 = not
corrected.
"""

from __future__ import annotations

import bpy
import numpy as np

from .fixes import NO_FIX_INDEX, PART_FIX_ATTRIB, FixedFaces

PART_ATTRIB = "part"
PROB_ATTRIB_PREFIX = "part_prob_"
MATERIAL_PREFIX = "proc_ml_"


def mesh_arrays(obj, depsgraph=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(world points float64[N, 3], vertex counts int64[F], vertex indices int64[sum])``
    of ``obj``'s evaluated mesh (its modifiers applied when a depsgraph is given)."""
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
    points = co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    counts = counts.astype(np.int64)
    offsets = np.repeat(starts.astype(np.int64) - (np.cumsum(counts) - counts), counts)
    indices = corners[np.arange(int(counts.sum())) + offsets].astype(np.int64)
    return points, counts, indices


def write_labelled_mesh(mesh, prims, materials=()) -> None:
    """Replace ``mesh``'s geometry with ``LabelledPrims`` quads: a face int attribute
    ``part``, a face float attribute ``part_prob_<name>`` per part, ``materials`` in
    slots 0..K-1 with each face's material index = its part, and, when ``prims.fix`` is
    set, the face int attribute ``part_fix``."""
    mesh.clear_geometry()
    mesh.materials.clear()
    for material in materials:
        mesh.materials.append(material)
    n_faces = len(prims)
    mesh.vertices.add(4 * n_faces)
    mesh.vertices.foreach_set("co", np.ascontiguousarray(prims.points, np.float32).reshape(-1))
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


def face_attribute(mesh, name: str) -> np.ndarray | None:
    """A face attribute's values (int or float), or None when the mesh lacks it."""
    attribute = mesh.attributes.get(name)
    if attribute is None or attribute.domain != "FACE":
        return None
    dtype = np.int32 if attribute.data_type == "INT" else np.float32
    values = np.empty(len(mesh.polygons), dtype=dtype)
    attribute.data.foreach_get("value", values)
    return values


def evaluated_face_attribute(obj, name: str, depsgraph=None) -> np.ndarray | None:
    """A face attribute of ``obj``'s evaluated mesh (the faces ``mesh_arrays`` reads)."""
    source = obj.evaluated_get(depsgraph) if depsgraph is not None else obj
    mesh = source.to_mesh()
    try:
        return face_attribute(mesh, name)
    finally:
        source.to_mesh_clear()


def fixed_faces(obj, parts, depsgraph=None) -> FixedFaces | None:
    """``obj``'s faces (world space) with their ``part_fix`` (indices into ``parts``), or
    None when it has no ``part_fix``."""
    values = evaluated_face_attribute(obj, PART_FIX_ATTRIB, depsgraph)
    if values is None:
        return None
    points, counts, indices = mesh_arrays(obj, depsgraph)
    return FixedFaces(points, counts, indices, values, tuple(parts), "z", f"{obj.name}: ", "face")


def part_fix_sources(source, parts, depsgraph=None, suffix: str = "_parts") -> list:
    """The corrections a new prediction of ``source`` keeps: ``part_fix`` on the massing
    itself, then on its existing ``<name>_parts`` result (which wins where both cover a
    face). Indices refer to each object's ``proc_ml_parts``, else to ``parts``."""
    found = []
    previous = bpy.data.objects.get(source.name + suffix)
    for obj, graph in ((source, depsgraph), (previous, None)):
        if obj is None or obj.type != "MESH":
            continue
        vocabulary = tuple(str(obj.get("proc_ml_parts", "")).split()) or tuple(parts)
        fixed = fixed_faces(obj, vocabulary, graph)
        if fixed is not None:
            found.append(fixed)
    return found


def set_part_fix(mesh, value: int) -> int:
    """Set ``part_fix`` to ``value`` (a part index, -1 = clear) on the selected faces of
    ``mesh`` (object mode), creating the attribute (-1 elsewhere); material indices show
    the corrected part (else ``part``). Returns the number of faces set (0: nothing
    selected, the mesh is left as it is)."""
    n = len(mesh.polygons)
    selected = np.zeros(n, dtype=bool)
    mesh.polygons.foreach_get("select", selected)
    if not selected.any():
        return 0
    current = face_attribute(mesh, PART_FIX_ATTRIB)
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
    """The object ``<source>_parts`` (created beside ``source`` when missing) and its mesh."""
    name = source.name + suffix
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "MESH":
        mesh = bpy.data.meshes.get(name) or bpy.data.meshes.new(name)
        obj = bpy.data.objects.new(name, mesh)
        collections = source.users_collection or (bpy.context.scene.collection,)
        for collection in collections:
            collection.objects.link(obj)
    obj.matrix_world.identity()     # quads are written in world space
    return obj


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
