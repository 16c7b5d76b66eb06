"""proc-ml Predict Parts: Python SOP code (Houdini 19.5+, Python 3).

Labels the exterior faces of a building massing with parts (wall, window, door, roof...)
using an ONNX model exported by ``proc-ml export onnx``. Run it as the code of a Python
SOP or of an HDA built on one (see docs/houdini.md); Houdini executes it on every cook
with ``hou.pwd()`` set to the node.

Input 0, either
  * voxel points: points only (no primitives), one at each filled cell's centre
    (e.g. from Points from Volume), spaced ``cellsize`` apart; or
  * polygon massing: closed polygons, voxelised at ``cellsize``.
Positions and ``cellsize`` are in scene units: the hip file's Unit Length
(``hou.scaleToMKS("m1")``, metres per unit) takes them to metres for the model, and the
output is written back in scene units, so it overlays the input in any Unit Length.
Output: one quad per exterior cell face, in world space, with prim attributes
  ``part`` (int), ``part_name`` (string), ``part_prob`` (float[K], the model's
  probability of each part, in the order of the detail attribute ``part_names``) and
  ``Cd`` (the part's colour).

Corrections: when the input polygons carry the string prim attribute ``part_fix`` (a part
name an artist painted, empty = not corrected), the output faces those polygons cover keep
the artist's part (``part``, ``part_name``, ``Cd``; ``part_prob`` stays the model's), the
output carries ``part_fix`` on, and the detail int ``part_fix_count`` says how many faces
were corrected; so a prediction can be re-run on corrected output without losing the
corrections (``proc_ml.dcc.fixes``). A ``part_fix`` the model has no part for is an error;
corrected polygons that are no cell face of the new grid are dropped with a warning.

Parameters: ``model`` (file), ``device`` (auto/cpu/cuda/tensorrt/directml/coreml, ``proc_ml.runtime.DEVICES``), ``threads`` (onnxruntime
intra-op threads, 0 = its default), ``cellsize`` (float, scene units, 0 = the
model's training cell size), ``inputtype`` (auto/points/polygons), ``upaxis`` (y/z),
``street`` (the sides facing the street, e.g. "+x -y" in proc-ml's z-up frame: street-aware
models use them, a massing-only model cannot and the node warns), ``symmetry``
(model/none/rotate/dihedral: average the probabilities over the building's turns;
``PartsPredictor``), ``entrance`` (model/off: the model's entrance rule, a door on the most
door-like street ground-floor face of a building that got none, or not), ``pieceattrib``
(the string or integer attribute, on the polygons or on the voxel points, saying which
building each belongs to, default ``name``: each piece is labelled as a building of its
own, row houses that touch too, and the output quads carry it; absent or empty: the
buildings are the masses standing apart), and, used only by
style-aware models, ``streetside`` (+x/-x/+y/-y in proc-ml's z-up
frame), ``windowperiod`` (1-3), ``shopfront`` and ``balconies`` (toggles).

The loaded model stays in proc-ml's one model cache (``proc_ml.runtime.session.cached``),
so later cooks, of this node or any other using the same file, reuse it until the model
file, the device or the thread count changes.
"""

import hou

from proc_ml.dcc import houdini as hgeo
from proc_ml.dcc.fixes import FixedFaces, apply_part_fix
from proc_ml.dcc.geometry import piece_numbers, standing_axis
from proc_ml.dcc.predict import (entrance_choice, open_session, predict_cell_points,
                                predict_polygons, style_vector, symmetry_choice)
from proc_ml.encoding import parse_street
from proc_ml.errors import ProcMLError

INPUT_TYPES = ("auto", "points", "polygons")


def _session(node):
    model = hgeo.parm_string(node, "model", "")
    device = hgeo.parm_string(node, "device", "auto")
    threads = int(hgeo.parm_value(node, "threads", 0))
    return open_session(model, device, threads)


def _style(node, session):
    if not session.with_style:
        return None
    return style_vector(hgeo.parm_string(node, "streetside", "+x"), hgeo.parm_value(node, "windowperiod", 1),
                        bool(hgeo.parm_value(node, "shopfront", 0)), bool(hgeo.parm_value(node, "balconies", 0)))


def _input_type(node, geo):
    wanted = hgeo.parm_string(node, "inputtype", "auto")
    if wanted not in INPUT_TYPES:
        raise ProcMLError(f"input type must be one of {', '.join(INPUT_TYPES)}, got '{wanted}'")
    if hgeo.point_count(geo) == 0:
        return "empty"
    if wanted == "auto":
        return "points" if hgeo.prim_count(geo) == 0 else "polygons"
    return wanted


def _fixes(geo, points, counts, indices, session, up):
    """The input polygons' ``part_fix`` (None when the input has none); integer values
    index the input's ``part_names`` (else the model's parts)."""
    values = hgeo.prim_attrib_values(geo, hgeo.PART_FIX_ATTRIB)
    if values is None:
        return None
    parts = (hgeo.detail_string(geo, hgeo.PART_NAMES_DETAIL) or "").split() or session.parts
    return FixedFaces(points, counts, indices, values, tuple(parts), up)


def _side_note(points, counts, indices, up):
    """A line when the massing lies on its side (a Z-up OBJ read by a File SOP stands along
    Houdini's Z), else None: it is labelled as it lies; the note says how to stand it up."""
    found = standing_axis(points, counts, indices, up)
    if found is None:
        return None
    return (f"it lies on its side (its walls and roofs stand along Houdini's {found.upper()} axis, "
            f"as when a {found.upper()}-up file is read in) but Up Axis is {up}: stand it up "
            f"(Transform SOP, rotate 90 degrees about X) or set Up Axis to {found}, then cook again")


def _pieces(geo, attrib, element):
    """``(numbers per element, value of each number)`` of the Piece Attribute, or Nones."""
    values = hgeo.piece_values(geo, attrib, element)
    return (None, None) if values is None else piece_numbers(values)


def cook(node):
    geo = node.geometry()
    fix_report = side = None
    names = None
    piece_attrib = hgeo.parm_string(node, "pieceattrib", "name").strip()
    scale = hgeo.unit_length()      # metres per Houdini unit: proc-ml works in metres
    try:
        session = _session(node)
        kind = _input_type(node, geo)
        street = parse_street(hgeo.parm_string(node, "street", ""), "street sides")
        frame = {"up": hgeo.parm_string(node, "upaxis", "y"), "clockwise": True, "street": street,
                 "symmetry": symmetry_choice(hgeo.parm_string(node, "symmetry", "model")),
                 "entrance": entrance_choice(hgeo.parm_string(node, "entrance", "model"))}
        cell_size = hgeo.length_parm(node, "cellsize", 0.0, scale)
        if kind == "points":
            pieces, names = _pieces(geo, piece_attrib, "point")
            prims = predict_cell_points(session, hgeo.point_positions(geo, scale), cell_size,
                                        _style(node, session), pieces=pieces, **frame)
        elif kind == "polygons":
            points, counts, indices = hgeo.polygons(geo, scale)
            pieces, names = _pieces(geo, piece_attrib, "prim")
            side = _side_note(points, counts, indices, frame["up"])
            prims = predict_polygons(session, points, counts, indices, cell_size,
                                     _style(node, session), pieces=pieces, **frame)
            fixes = _fixes(geo, points, counts, indices, session, frame["up"])
            if fixes is not None:
                prims, fix_report = apply_part_fix(prims, fixes, session.colours)
        else:
            prims = None
    except ProcMLError as exc:
        geo.clear()
        message = str(exc)
        if "cell" in message.lower():       # a Cell Size meant in metres, in a centimetre scene?
            hint = hgeo.unit_note(scale, hgeo.parm_value(node, "cellsize", 0.0))
            message += f"; {hint}" if hint else ""
        raise hou.NodeError(message) from None
    if prims is None:
        geo.clear()
        raise hou.NodeWarning("input has no geometry: nothing to label")
    stored = hgeo.write_labelled_prims(geo, prims, scale)
    if names is not None and prims.piece is not None and len(prims):
        hgeo.write_pieces(geo, piece_attrib, names[prims.piece])
    hgeo.set_detail_string(geo, hgeo.STREET_DETAIL, " ".join(street))
    if len(prims) == 0:
        raise hou.NodeWarning("the input fills no cells at this cell size: nothing to label")
    sizes = list(prims.grid.notes) if prims.grid is not None else []     # a massing's size, in metres
    if sizes:
        sizes.append(hgeo.unit_note(scale, hgeo.parm_value(node, "cellsize", 0.0)))
    notes = [side, stored, session.predictor.street_note(street), fix_report and fix_report.warning(),
             *sizes]
    if any(notes):
        raise hou.NodeWarning("; ".join(n for n in notes if n))


cook(hou.pwd())
