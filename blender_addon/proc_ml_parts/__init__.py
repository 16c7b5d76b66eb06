"""proc-ml Building Parts: label a building massing's faces with parts (Blender 4.2+).

Object > proc-ml: Predict Building Parts (or the "proc-ml" tab of the 3D view's N panel)
voxelises each selected mesh at the cell size, runs the exported ONNX parts model
through proc-ml's runtime, and writes the labelled exterior quads of the voxel grid to a
new object ``<name>_parts`` (updated in place on later runs; the massing itself is left
as it is). The result has a face int attribute ``part``, one face float attribute
``part_prob_<part>`` per part, and one material per part (``proc_ml_<part>``, in the
part's colour) assigned through the material index. A mesh with vertices but no faces
is read as voxel points at the cells' centres.

Corrections: "proc-ml: Set Part on Selected Faces" writes the face int attribute
``part_fix`` (the part's index, -1 = not corrected) on the selected faces of a ``_parts``
object. Predicting again keeps those faces' part (``part_fix`` carried onto the new
result), and "proc-ml: Export Training Data" writes the selected ``_parts`` objects as
buildings of a proc-ml dataset, the corrected part as the label and ``label_fixed``
marking the corrected faces (docs/blender.md).

proc-ml (with numpy and onnxruntime) must be importable from Blender's Python: install it
there, or set "proc-ml Python path" in the add-on preferences (see docs/blender.md).
"""

from __future__ import annotations

import sys

import bpy
import numpy as np
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, IntVectorProperty,
                       StringProperty)

# proc_ml.runtime.DEVICES (kept literal: proc-ml may not be importable when Blender loads
# the add-on; tests/test_blender_addon.py checks the two agree)
DEVICE_ITEMS = [("auto", "Auto", "The best provider onnxruntime can use here, else the CPU"),
                ("cpu", "CPU", "Always run on the CPU"),
                ("cuda", "CUDA", "NVIDIA GPU; an error if CUDA is not usable"),
                ("tensorrt", "TensorRT", "NVIDIA GPU through TensorRT"),
                ("directml", "DirectML", "Windows GPU through DirectML"),
                ("coreml", "CoreML", "Apple GPU / Neural Engine through CoreML")]
STREET_ITEMS = [(side, side, f"The street is on the {side} side") for side in ("+x", "-x", "+y", "-y")]
SYMMETRY_ITEMS = [
    ("MODEL", "Model's own", "What the model file declares (the installed model: dihedral)"),
    ("none", "None", "One model run per building (fastest)"),
    ("rotate", "Rotate", "Average the model over the building's four quarter turns"),
    ("dihedral", "Dihedral", "Average over the quarter turns and their mirror images (8 runs)"),
]
ENTRANCE_ITEMS = [
    ("MODEL", "Model's own", "What the model file says (the installed model: on): a building "
                             "whose street ground floor got no door gets one on its most "
                             "door-like face"),
    ("OFF", "Off", "Only the doors the network finds"),
]


def _package() -> str:
    return __package__ or __name__


def _preferences(context):
    addon = context.preferences.addons.get(_package())
    return addon.preferences if addon is not None else None


def _add_python_path(path: str) -> None:
    path = bpy.path.abspath(path) if path else ""
    if path and path not in sys.path:
        sys.path.append(path)



def _import_proc_ml(operator, context, *names):
    """The proc-ml modules ``names`` (the preferences' proc-ml Python path first put on
    ``sys.path``), or None after reporting why they cannot be imported."""
    import importlib

    prefs = _preferences(context)
    if prefs is not None:
        _add_python_path(prefs.python_path)
    try:
        return [importlib.import_module(name) for name in names]
    except ImportError as exc:
        operator.report({"ERROR"}, f"proc-ml is not importable from Blender's Python ({exc}); "
                                   f"install it or set the add-on's 'proc-ml Python path'")
        return None


def _output_path(path: str, what: str) -> str:
    """``path`` as an absolute path for writing, or ValueError with the line to report: a
    blend-relative ``//`` path of an unsaved file, or a relative path, would land wherever
    Blender was started from."""
    import os

    if path.startswith("//") and not bpy.data.filepath:
        raise ValueError(f"{what} '{path}' is relative to the .blend file, which is not saved yet: "
                         f"save it first or choose an absolute path")
    resolved = bpy.path.abspath(path)
    if not os.path.isabs(resolved):
        raise ValueError(f"{what} '{path}' is a relative path: choose an absolute path")
    return os.path.normpath(resolved)


def _leave_edit_mode(context, objects) -> bool:
    """Switch the objects of ``objects`` that are in edit mode to object mode: their mesh
    then holds the edits made there (corrections included; in edit mode its attributes read
    as empty) and can be rewritten. True when the active object was in edit mode, for
    :func:`_enter_edit_mode`."""
    view_layer = context.view_layer
    active = view_layer.objects.active
    was_editing = active is not None and active.mode == "EDIT"
    for obj in objects:
        if obj is not None and obj.mode == "EDIT" and obj.name in view_layer.objects:
            view_layer.objects.active = obj       # mode_set works on the active object
            bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = active
    return was_editing


def _enter_edit_mode(context, was_editing: bool) -> None:
    """Back to edit mode after :func:`_leave_edit_mode` when the artist was in it."""
    active = context.view_layer.objects.active
    if was_editing and active is not None and active.mode != "EDIT":
        bpy.ops.object.mode_set(mode="EDIT")


class ProcMLPartsPreferences(bpy.types.AddonPreferences):
    bl_idname = _package()

    model_path: StringProperty(name="Default model", subtype="FILE_PATH",
                               description="ONNX model exported with 'proc-ml export onnx' (empty: the model "
                                           "installed with proc-ml)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    python_path: StringProperty(
        name="proc-ml Python path", subtype="DIR_PATH",
        description="Folder holding proc_ml, numpy and onnxruntime for Blender's Python "
                    "(e.g. a 'pip install --target' folder); empty if installed in Blender")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "model_path")
        layout.prop(self, "device")
        layout.prop(self, "python_path")


class ProcMLPartsSettings(bpy.types.PropertyGroup):
    """Per-scene settings the sidebar panel edits and passes to the operator."""
    model_path: StringProperty(name="Model", subtype="FILE_PATH",
                               description="ONNX parts model (empty: the add-on preferences, then the "
                                           "model installed with proc-ml)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    cell_size: FloatProperty(name="Cell size", default=0.0, min=0.0, soft_max=10.0,
                             unit="LENGTH",
                             description="Voxel size; 0 uses the model's training cell size")
    street_sides: EnumProperty(name="Street sides", items=STREET_ITEMS, options={"ENUM_FLAG"},
                               default=set(),
                               description="Sides facing the street (Blender's z-up frame): "
                                           "street-aware models use them, a style-aware model "
                                           "the first; a massing-only model cannot")
    symmetry: EnumProperty(name="Symmetry averaging", items=SYMMETRY_ITEMS, default="MODEL",
                           description="Average the part probabilities over the building's "
                                       "turns (docs/onnx.md)")
    entrance: EnumProperty(name="Entrance rule", items=ENTRANCE_ITEMS, default="MODEL",
                           description="A door on the most door-like street ground-floor face "
                                       "of a building that got none (docs/onnx.md)")
    street_side: EnumProperty(name="Street side", items=STREET_ITEMS, default="+x",
                              description="Style-aware models only")
    window_period: IntProperty(name="Window period", default=1, min=1, max=3,
                               description="Style-aware models only")
    shopfront: BoolProperty(name="Shopfront", default=False, description="Style-aware models only")
    balconies: BoolProperty(name="Balconies", default=False, description="Style-aware models only")


class OBJECT_OT_proc_ml_predict_parts(bpy.types.Operator):
    """Label the selected massing meshes with building parts (a new <name>_parts object each)"""
    bl_idname = "object.proc_ml_predict_parts"
    bl_label = "proc-ml: Predict Building Parts"
    bl_options = {"REGISTER", "UNDO"}

    model_path: StringProperty(name="Model", subtype="FILE_PATH",
                               description="Empty: the scene setting, the preferences, then the model "
                                           "installed with proc-ml")
    device: EnumProperty(name="Device", items=[("SETTINGS", "From settings", "")] + DEVICE_ITEMS,
                         default="SETTINGS")
    cell_size: FloatProperty(name="Cell size", default=0.0, min=0.0, unit="LENGTH",
                             description="Voxel size; 0 uses the model's training cell size")
    street_sides: EnumProperty(name="Street sides", items=STREET_ITEMS, options={"ENUM_FLAG"},
                               default=set(), description="Sides facing the street")
    symmetry: EnumProperty(name="Symmetry averaging", items=SYMMETRY_ITEMS, default="MODEL")
    entrance: EnumProperty(name="Entrance rule", items=ENTRANCE_ITEMS, default="MODEL")
    street_side: EnumProperty(name="Street side", items=STREET_ITEMS, default="+x")
    window_period: IntProperty(name="Window period", default=1, min=1, max=3)
    shopfront: BoolProperty(name="Shopfront", default=False)
    balconies: BoolProperty(name="Balconies", default=False)

    @classmethod
    def poll(cls, context):
        if any(obj.type == "MESH" for obj in context.selected_objects):
            return True
        cls.poll_message_set("Select one or more mesh massings (convert curves or text first: "
                             "Object > Convert > Mesh)")
        return False

    def _model_and_device(self, context):
        settings = context.scene.proc_ml_parts
        prefs = _preferences(context)
        model = self.model_path or settings.model_path or (prefs.model_path if prefs else "")
        device = self.device if self.device != "SETTINGS" else settings.device
        return bpy.path.abspath(model) if model else "", device

    def execute(self, context):
        modules = _import_proc_ml(self, context, "proc_ml.dcc.blender", "proc_ml.dcc.fixes",
                                  "proc_ml.dcc.predict", "proc_ml.errors", "proc_ml.dcc.geometry",
                                  "proc_ml.dcc.prims")
        if modules is None:
            return {"CANCELLED"}
        bgeo = modules[0]
        apply_part_fix = modules[1].apply_part_fix
        open_session = modules[2].open_session
        predict_cell_points = modules[2].predict_cell_points
        predict_polygons = modules[2].predict_polygons
        style_vector = modules[2].style_vector
        ProcMLError = modules[3].ProcMLError
        self._standing_axis = modules[4].standing_axis
        self._blocks = (modules[4].touching_groups, modules[2].predict_polygon_pieces,
                        modules[5].split_pieces)
        model, device = self._model_and_device(context)
        sources = [obj for obj in context.selected_objects
                   if obj.type == "MESH" and "proc_ml_source" not in obj]
        if not sources:
            self.report({"ERROR"}, "only proc-ml results are selected: select the source meshes "
                                   "(a result's source is in its proc_ml_source property)")
            return {"CANCELLED"}
        # a result in edit mode cannot be rewritten (and its mesh lacks the edits made
        # there, corrections included): object mode for the run, edit mode again after it
        editing = _leave_edit_mode(context, sources + [bpy.data.objects.get(obj.name + "_parts")
                                                       for obj in sources])
        try:
            return self._predict(context, bgeo, apply_part_fix, open_session, predict_cell_points,
                                 predict_polygons, style_vector, ProcMLError, model, device, sources)
        finally:
            _enter_edit_mode(context, editing)

    def _predict(self, context, bgeo, apply_part_fix, open_session, predict_cell_points,
                 predict_polygons, style_vector, ProcMLError, model, device, sources):
        scale = bgeo.unit_scale(context.scene)       # metres per Blender unit
        cell_size = float(f"{self.cell_size * scale:.7g}")     # metres (float32 digits dropped)
        depsgraph = context.evaluated_depsgraph_get()
        touching_groups, predict_polygon_pieces, split_pieces = self._blocks
        labelled, fixed, failed = [], [], []
        try:
            session = open_session(model, device)     # proc-ml's one model cache
            style = (style_vector(self.street_side, self.window_period, self.shopfront,
                                  self.balconies) if session.with_style else None)
            street = tuple(side for side, _, _ in STREET_ITEMS if side in self.street_sides)
            kw = {"street": street, "symmetry": None if self.symmetry == "MODEL" else self.symmetry,
                  "entrance": None if self.entrance == "MODEL" else False}
            note = session.predictor.street_note(street)
            if note:
                self.report({"WARNING"}, note)

            def keep_fixes(prims, objects, name):
                """The artist's corrections (part_fix) on the massings or their previous
                results, applied to ``prims``."""
                fixes = [f for obj in objects
                         for f in bgeo.part_fix_sources(obj, session.parts, depsgraph, scale=scale)]
                if not fixes:
                    return prims
                prims, report = apply_part_fix(prims, fixes, session.colours)
                fixed.append(report.fixed)
                if report.warning():
                    self.report({"WARNING"}, f"{name}: {report.warning()}")
                return prims

            def write(item, prims, block=()):
                """``prims`` as the result of ``item``'s object; ``block``: the names of the
                objects it was labelled together with (itself included)."""
                source, points, counts, indices = item
                grid_notes = list(prims.grid.notes) if prims.grid is not None else []
                side = _side_note(self._standing_axis(points, counts, indices, "z"))
                if side:
                    grid_notes.insert(0, side)
                for grid_note in grid_notes:
                    self.report({"WARNING"}, f"{source.name}: {grid_note}")
                if len(prims) == 0:
                    self.report({"WARNING"}, f"{source.name}: fills no cells at this cell size")
                    return
                result = bgeo.result_object(source)
                bgeo.write_result(result, prims, bgeo.part_materials(session.parts, session.colours),
                                  scale)
                result["proc_ml_source"] = source.name
                result["proc_ml_parts"] = " ".join(session.parts)
                result["proc_ml_cell_size"] = float(prims.grid.cell_size)
                result["proc_ml_part_fix_count"] = (int((prims.fix >= 0).sum())
                                                    if prims.fix is not None else 0)
                result["proc_ml_street"] = " ".join(street)
                result["proc_ml_notes"] = "; ".join(n for n in [note] + grid_notes if n)
                if block:                 # labelled together: exported together (one building)
                    result["proc_ml_block"] = "\n".join(block)
                elif "proc_ml_block" in result:
                    del result["proc_ml_block"]
                labelled.append((result, len(prims)))

            def label_alone(item):
                source, points, counts, indices = item
                try:     # one object that cannot be labelled does not stop the others
                    prims = (predict_polygons(session, points, counts, indices, cell_size, style, **kw)
                             if len(counts) else
                             predict_cell_points(session, points, cell_size, style, **kw))
                except ProcMLError as exc:
                    self.report({"WARNING"}, f"{source.name}: not labelled: {exc}")
                    failed.append(source.name)
                    return
                write(item, keep_fixes(prims, [source], source.name))

            items = []        # (source, points, counts, indices) of each object to label
            for source in sources:
                points, counts, indices = bgeo.mesh_arrays(source, depsgraph, scale)
                if len(points) == 0:
                    self.report({"WARNING"}, f"{source.name}: empty mesh, nothing to label")
                    continue
                try:
                    bgeo.previous_result(source)      # never the artist's own <name>_parts
                except ProcMLError as exc:
                    self.report({"WARNING"}, f"{source.name}: not labelled: {exc}")
                    failed.append(source.name)
                    continue
                items.append((source, points, counts, indices))
            # selected polygon massings that touch are one block, each object a piece of it
            # (proc_ml.dcc.predict.predict_polygon_pieces); voxel points: each on its own
            massings = [item for item in items if len(item[2])]
            boxes = [(p[np.unique(i)].min(axis=0), p[np.unique(i)].max(axis=0))   # no loose vertices
                     for _, p, _, i in massings]
            for group in touching_groups(boxes):
                block = [massings[k] for k in group]
                if len(block) == 1:
                    label_alone(block[0])
                    continue
                names = ", ".join(item[0].name for item in block)
                try:
                    prims = predict_polygon_pieces(session, [item[1:] for item in block],
                                                   cell_size, style, **kw)
                except ProcMLError as exc:
                    self.report({"WARNING"}, f"{names}: not labelled together ({exc}); each is "
                                             f"labelled alone")
                    for item in block:
                        label_alone(item)
                    continue
                self.report({"INFO"}, f"{names} touch: labelled together, objects over the same "
                                      f"ground as one building (the floors of a building), the "
                                      f"others each as a building of its own (row houses)")
                prims = keep_fixes(prims, [item[0] for item in block], names)
                for item, own in zip(block, split_pieces(prims, len(block))):
                    write(item, own, [other[0].name for other in block])
            for item in items:
                if not len(item[2]):
                    label_alone(item)
        except ProcMLError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not labelled:
            if failed:
                self.report({"ERROR"}, f"no object could be labelled ({len(failed)} failed, above)")
            return {"CANCELLED"}
        faces = sum(n for _, n in labelled)
        kept = f"; {sum(fixed)} kept their part_fix" if sum(fixed) else ""
        not_done = f"; {len(failed)} object(s) could not be labelled (above)" if failed else ""
        self.report({"WARNING"} if failed else {"INFO"},
                    f"labelled {faces} faces on {len(labelled)} object(s){kept}{not_done}")
        return {"FINISHED"}


def _side_note(found: str | None) -> str | None:
    """A line when the massing stands on another axis than Blender's Z (``found``, from
    ``proc_ml.dcc.geometry.standing_axis``: a Z-up OBJ or PLY imported with Y up), else
    None. It is labelled as it lies: the note says how to stand it up."""
    if found is None:
        return None
    return (f"it lies on its side (its walls and roofs stand along Blender's {found.upper()} axis, "
            f"as when a Z-up file is imported with {found.upper()} up): stand it up (rotate it 90 "
            f"degrees about X; Alt+R clears a rotation the importer set) or import it again with "
            f"Up Z, then predict again")


NO_FIX_ITEM = "NONE"
_PART_ITEMS: list = []      # Blender needs the items of a dynamic enum kept alive


def _part_items(self, context):
    obj = getattr(context, "active_object", None) if context is not None else None
    names = str(obj.get("proc_ml_parts", "")).split() if obj is not None else []
    _PART_ITEMS[:] = ([(NO_FIX_ITEM, "None (clear)", "Remove the correction: the model's part stands", 0)]
                      + [(name, name, f"Set the part to {name}", i + 1) for i, name in enumerate(names)])
    return _PART_ITEMS


class OBJECT_OT_proc_ml_fix_part(bpy.types.Operator):
    """Set the part of the selected faces of a <name>_parts object (the face attribute
    part_fix); predicting again keeps it, and the export writes it as the label"""
    bl_idname = "object.proc_ml_fix_part"
    bl_label = "proc-ml: Set Part on Selected Faces"
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "part"

    part: EnumProperty(name="Part", items=_part_items,
                       description="The part the selected faces get; None clears their correction")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "MESH" and "proc_ml_parts" in obj

    def invoke(self, context, event):
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        modules = _import_proc_ml(self, context, "proc_ml.dcc.blender", "proc_ml.errors")
        if modules is None:
            return {"CANCELLED"}
        bgeo = modules[0]
        obj = context.active_object
        names = str(obj["proc_ml_parts"]).split()
        value = -1 if self.part == NO_FIX_ITEM else names.index(self.part)
        editing = obj.mode == "EDIT"
        if editing:                  # edit-mode selection and attributes reach the mesh
            bpy.ops.object.mode_set(mode="OBJECT")
        try:
            count = bgeo.set_part_fix(obj.data, value, f"{obj.name}: ")
        except modules[1].ProcMLError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            if editing:
                bpy.ops.object.mode_set(mode="EDIT")
        if not count:
            self.report({"WARNING"}, f"{obj.name}: no faces selected")
            return {"CANCELLED"}
        what = "cleared the part_fix of" if value < 0 else f"set part_fix = {self.part} on"
        self.report({"INFO"}, f"{obj.name}: {what} {count} face(s)")
        return {"FINISHED"}


class OBJECT_OT_proc_ml_export_training_data(bpy.types.Operator):
    """Write the selected <name>_parts objects as buildings of a proc-ml dataset folder
    (part_fix, where set, is the label; the grids mark those faces in label_fixed)"""
    bl_idname = "object.proc_ml_export_training_data"
    bl_label = "proc-ml: Export Training Data"
    bl_options = {"REGISTER"}

    directory: StringProperty(name="Dataset folder", subtype="DIR_PATH",
                              description="Dataset folder (created); buildings are added to it")
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})
    building_id: IntProperty(name="First building ID", default=-1, min=-1,
                             description="ID of the first selected object (sorted by name); "
                                         "-1: the next free ID, so each export adds to the "
                                         "dataset; an existing ID is replaced")
    cell_size: FloatProperty(name="Cell size", default=0.0, min=0.0, unit="LENGTH",
                             description="0: the cell size each object was predicted at")
    grid_size: IntVectorProperty(name="Grid size", size=3, default=(16, 16, 16), min=0,
                                 description="Grid every building is placed in; 0 0 0 fits each "
                                             "massing (batch training needs one size)")
    formats: StringProperty(name="Formats", default="grids,faces,adjacency,points",
                            description="Comma list of faces,adjacency,grids,meshes,points "
                                        "(meshes need SciPy, which the extension does not bundle)")
    archetype: StringProperty(name="Archetype", default="custom")
    seed: IntProperty(name="Seed", default=0, min=0)
    val_fraction: FloatProperty(name="Validation fraction", default=0.1, min=0.0, max=1.0)
    test_fraction: FloatProperty(name="Test fraction", default=0.1, min=0.0, max=1.0)
    update_index: BoolProperty(name="Update index", default=True,
                               description="Rebuild the dataset-wide tables and dataset.yaml")

    @classmethod
    def poll(cls, context):
        if any(obj.type == "MESH" and "proc_ml_parts" in obj for obj in context.selected_objects):
            return True
        cls.poll_message_set("Select the <name>_parts results of Predict Building Parts")
        return False

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        modules = _import_proc_ml(self, context, "proc_ml.dcc.blender", "proc_ml.dcc.export",
                                  "proc_ml.errors", "proc_ml.formats", "proc_ml.dcc.fixes",
                                  "proc_ml.dcc.geometry")
        if modules is None:
            return {"CANCELLED"}
        bgeo = modules[0]
        ProcMLError = modules[2].ProcMLError
        parse_formats = modules[3].parse_formats
        self._fix_names = modules[4].fix_names
        self._join_meshes = modules[5].join_meshes
        if not self.directory:
            self.report({"ERROR"}, "no dataset folder set")
            return {"CANCELLED"}
        try:
            out = _output_path(self.directory, "dataset folder")
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        objects = sorted((obj for obj in context.selected_objects
                          if obj.type == "MESH" and "proc_ml_parts" in obj), key=lambda o: o.name)
        editing = _leave_edit_mode(context, objects)
        try:
            return self._export(context, bgeo, modules[1], ProcMLError, parse_formats, out, objects)
        finally:
            _enter_edit_mode(context, editing)

    def _export(self, context, bgeo, dcc_export, ProcMLError, parse_formats, out, objects):
        export_labelled_faces = dcc_export.export_labelled_faces
        fix_names = self._fix_names
        scale = bgeo.unit_scale(context.scene)       # metres per Blender unit
        fixed = 0
        free = dcc_export.next_building_id(out)
        first = self.building_id if self.building_id >= 0 else free
        if first > free:        # written, it would break the folder's index for every later export
            self.report({"ERROR"}, f"First Building ID {first} would leave ids {free}-{first - 1} missing "
                                   f"in {out} (ids must run 0..N-1): use -1 (the next free id, {free}) "
                                   f"or an id up to {free}")
            return {"CANCELLED"}
        try:
            formats = parse_formats(self.formats)
        except ProcMLError as exc:
            self.report({"ERROR"}, f"Formats: {str(exc).removeprefix('--formats: ')}")
            return {"CANCELLED"}
        try:
            units = _export_units(objects)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for i, unit in enumerate(units):
            obj, name = unit[0], " + ".join(o.name for o in unit)
            try:
                cell_size = (float(f"{self.cell_size * scale:.7g}")     # metres
                             or float(obj.get("proc_ml_cell_size", 0.0)))
                if not cell_size:
                    raise ProcMLError("no cell size: set the operator's cell size")
                parts = str(obj["proc_ml_parts"]).split()
                arrays, values, fixes = [], [], []
                for member in unit:
                    if str(member["proc_ml_parts"]).split() != parts:
                        raise ProcMLError(f"{member.name} was labelled with other parts than {obj.name}")
                    part = bgeo.face_attribute(member.data, bgeo.PART_ATTRIB, f"{member.name}: ")
                    if part is None:
                        raise ProcMLError(f"{member.name}: not a proc-ml parts result (no 'part' "
                                          f"face attribute)")
                    arrays.append(bgeo.mesh_arrays(member, None, scale))
                    values.append(part)
                    fixes.append(bgeo.face_attribute(member.data, bgeo.PART_FIX_ATTRIB,
                                                     f"{member.name}: "))
                points, counts, indices, _ = self._join_meshes(arrays)
                part_fix = fixes[0]
                if len(unit) > 1 and any(f is not None for f in fixes):   # as names, "" = none
                    part_fix = np.concatenate([
                        np.full(len(a[1]), "", dtype=object) if f is None else
                        fix_names(f, parts, f"{m.name}: building {first + i}, ", "face")
                        for m, a, f in zip(unit, arrays, fixes)])
                building, _ = export_labelled_faces(
                    out, first + i, points, counts, indices, np.concatenate(values),
                    parts, cell_size, tuple(self.grid_size), up="z",
                    formats=formats, source="blender", archetype=self.archetype,
                    split=(self.val_fraction, self.test_fraction), seed=self.seed,
                    update_index=self.update_index,     # after each: the next is checked against it
                    part_fix=part_fix, element="face", street=obj.get("proc_ml_street"))
            except (ProcMLError, OSError) as exc:
                why = (f"cannot write to {out}: {exc.strerror or exc}" if isinstance(exc, OSError)
                       else str(exc))
                why = why if why.startswith(f"{obj.name}: ") else f"{name}: {why}"
                done = ("" if not i else f" (id {first} of this export was written, the others were not)"
                        if i == 1 else f" (ids {first}-{first + i - 1} of this export were written, "
                                       f"the others were not)")
                self.report({"ERROR"}, f"{why}{done}")
                return {"CANCELLED"}
            fixed += int(building.fixed.sum()) if building.fixed is not None else 0
        ids = f"id {first}" if len(units) == 1 else f"ids {first}-{first + len(units) - 1}"
        self.report({"INFO"}, f"exported {len(units)} building(s) to {out} ({ids}); "
                              f"{fixed} cell faces from part_fix")
        return {"FINISHED"}


def _export_units(objects) -> list[list]:
    """The selected results grouped into the buildings they are exported as: each result on
    its own, but the results of objects labelled together (``proc_ml_block``: the floors of a
    building, a row of houses) as one, which must all be selected. ValueError otherwise."""
    selected = {obj.name: obj for obj in objects}
    units, seen = [], set()
    for obj in objects:
        if obj.name in seen:
            continue
        block = [name + "_parts" for name in str(obj.get("proc_ml_block", "")).split("\n") if name]
        if not block:
            units.append([obj])
            seen.add(obj.name)
            continue
        missing = [name for name in block if name not in selected]
        if missing:
            raise ValueError(f"{obj.name} was labelled together with {', '.join(missing)}: select "
                             f"them too, the block is exported as one building")
        units.append([selected[name] for name in block])
        seen.update(block)
    return units


MATERIAL_ITEMS = [("plaster", "Plaster", "Plaster walls"), ("brick", "Brick", "Brick walls")]


class OBJECT_OT_proc_ml_texture_building(bpy.types.Operator):
    """Texture the active <name>_parts object with a pix2pix facade model: UVs into one atlas
    image, and a material that shows it"""
    bl_idname = "object.proc_ml_texture_building"
    bl_label = "proc-ml: Texture Building"
    bl_options = {"REGISTER", "UNDO"}

    model_path: StringProperty(name="Texture model", subtype="FILE_PATH",
                               description="pix2pix ONNX generator (empty: procedural textures)")
    atlas_path: StringProperty(name="Atlas", subtype="FILE_PATH", default="//proc_ml_atlas.png",
                               description="PNG the texture atlas is written to")
    material: EnumProperty(name="Walls", items=MATERIAL_ITEMS, default="plaster")
    module_px: IntProperty(name="Pixels per module", default=0, min=0,
                           description="0: the model's training value (16 without a model)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    seed: IntProperty(name="Seed", default=0, min=0)

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "MESH" and "proc_ml_parts" in obj

    def execute(self, context):
        modules = _import_proc_ml(self, context, "proc_ml.dcc.blender", "proc_ml.errors",
                                  "proc_ml.dcc.texture", "proc_ml.runtime.textures")
        if modules is None:
            return {"CANCELLED"}
        bgeo = modules[0]
        ProcMLError = modules[1].ProcMLError
        texture_quads = modules[2].texture_quads
        write_atlas = modules[2].write_atlas
        TextureGenerator = modules[3].TextureGenerator
        obj = context.active_object
        try:
            atlas_path = _output_path(self.atlas_path, "atlas")
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        try:
            generator = (TextureGenerator.open(bpy.path.abspath(self.model_path), self.device)
                         if self.model_path else None)
            points, counts, indices = bgeo.mesh_arrays(obj, None, bgeo.unit_scale(context.scene))
            parts = bgeo.face_attribute(obj.data, bgeo.PART_ATTRIB)
            if parts is None or len(counts) == 0 or (counts != 4).any():
                raise ProcMLError(f"{obj.name}: not a proc-ml parts result (quads with a 'part' attribute)")
            textures = texture_quads(points, indices.reshape(-1, 4), parts, obj["proc_ml_parts"].split(),
                                     generator, material=self.material, module_px=self.module_px or None,
                                     seed=self.seed)
            path = write_atlas(atlas_path, textures.atlas)
        except ProcMLError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except OSError as exc:
            self.report({"ERROR"}, f"{obj.name}: cannot write the atlas {atlas_path}: {exc.strerror or exc}")
            return {"CANCELLED"}
        bgeo.write_uvs(obj.data, textures.uv, "proc_ml_atlas")
        bgeo.assign_textured_material(obj.data, f"proc_ml_texture_{obj.name}", path)
        self.report({"INFO"}, f"textured {textures.faces} faces on {textures.facades} facades; "
                              f"atlas {path}")
        return {"FINISHED"}


class VIEW3D_PT_proc_ml_parts(bpy.types.Panel):
    bl_label = "Building Parts"
    bl_idname = "VIEW3D_PT_proc_ml_parts"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "proc-ml"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.proc_ml_parts
        layout.prop(settings, "model_path")
        layout.prop(settings, "device")
        layout.prop(settings, "cell_size")
        layout.prop(settings, "street_sides")
        layout.prop(settings, "symmetry")
        layout.prop(settings, "entrance")
        style = layout.box()
        style.label(text="Style (style-aware models)")
        for name in ("street_side", "window_period", "shopfront", "balconies"):
            style.prop(settings, name)
        op = layout.operator(OBJECT_OT_proc_ml_predict_parts.bl_idname, icon="MOD_BUILD")
        op.model_path = settings.model_path
        op.device = settings.device
        op.cell_size = settings.cell_size
        op.street_sides = settings.street_sides
        op.symmetry = settings.symmetry
        op.entrance = settings.entrance
        op.street_side = settings.street_side
        op.window_period = settings.window_period
        op.shopfront = settings.shopfront
        op.balconies = settings.balconies
        layout.operator(OBJECT_OT_proc_ml_texture_building.bl_idname, icon="TEXTURE")
        fixes = layout.box()
        fixes.label(text="Corrections (part_fix)")
        fixes.operator_menu_enum(OBJECT_OT_proc_ml_fix_part.bl_idname, "part",
                                 text="Set Part on Selected Faces", icon="BRUSH_DATA")
        fixes.operator(OBJECT_OT_proc_ml_export_training_data.bl_idname, icon="EXPORT")


def _menu(self, context):
    self.layout.operator(OBJECT_OT_proc_ml_predict_parts.bl_idname)
    self.layout.operator(OBJECT_OT_proc_ml_texture_building.bl_idname)
    self.layout.operator(OBJECT_OT_proc_ml_export_training_data.bl_idname)


def _face_menu(self, context):
    self.layout.operator_menu_enum(OBJECT_OT_proc_ml_fix_part.bl_idname, "part",
                                   text="proc-ml: Set Part on Selected Faces")


CLASSES = (ProcMLPartsPreferences, ProcMLPartsSettings, OBJECT_OT_proc_ml_predict_parts,
           OBJECT_OT_proc_ml_texture_building, OBJECT_OT_proc_ml_fix_part,
           OBJECT_OT_proc_ml_export_training_data, VIEW3D_PT_proc_ml_parts)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.proc_ml_parts = bpy.props.PointerProperty(type=ProcMLPartsSettings)
    bpy.types.VIEW3D_MT_object.append(_menu)
    bpy.types.VIEW3D_MT_edit_mesh_faces.append(_face_menu)


def unregister():
    bpy.types.VIEW3D_MT_edit_mesh_faces.remove(_face_menu)
    bpy.types.VIEW3D_MT_object.remove(_menu)
    del bpy.types.Scene.proc_ml_parts
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
