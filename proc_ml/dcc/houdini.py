"""Houdini adapter: hou.Geometry <-> numpy arrays, and nothing else.

Attribute data moves in bulk (``pointFloatAttribValuesAsString``,
``setPrimFloatAttribValuesFromString``, ``setPrimIntAttribValues``,
``setPrimStringAttribValues``, ``createPoints``/``createPolygons`` with whole lists).
HOM has no bulk accessor for polygon topology, so :func:`polygons` reads each
primitive's point numbers in one comprehension; massing inputs have few primitives.

Frames: Houdini is y-up and its polygons face the side their vertices run clockwise on;
the SOP scripts pass ``up="y", clockwise=True`` to the shared numpy functions. Units:
proc-ml works in metres; the hip file's Unit Length (:func:`unit_length`, metres per
Houdini unit: 1 by default, 0.01 in a centimetre scene) converts positions to metres on the
way in (:func:`point_positions`, :func:`polygons`), lengths given as parameters (in scene
units, as Houdini's parameters are: :func:`length_parm`) likewise, and the quads back to
scene units on the way out (:func:`write_labelled_prims`), as the Blender adapter does with
the scene's Unit Scale (``proc_ml.dcc.blender.unit_scale``).

Precision: positions are read as 64-bit floats (exact whatever P's storage is). Houdini
stores P as 32-bit floats unless a node casts it to 64-bit (Attribute Cast SOP), and 32-bit
floats keep only half metres 5,000 km from the origin (UTM northings): quads written there
land off the cell grid. :func:`write_labelled_prims` checks what was stored and
:func:`precision_note` says what to do.
"""

from __future__ import annotations

import math
import os

import numpy as np

import hou

from .faces import LATTICE_TOLERANCE
from .fixes import FIX_COUNT_ATTRIB, NO_FIX_NAME, PART_FIX_ATTRIB
from .geometry import GeometryError

#: Attribute names the prediction SOP writes (documented in docs/houdini.md).
PART_ATTRIB = "part"
PART_NAME_ATTRIB = "part_name"
PART_PROB_ATTRIB = "part_prob"
COLOUR_ATTRIB = "Cd"
PART_NAMES_DETAIL = "part_names"
#: The street sides a prediction used ("+x -y", proc-ml's z-up frame): the export SOP
#: writes them into the building's grid, so a street-aware model fine-tunes on them.
STREET_DETAIL = "street_sides"
#: The artist's correction: a string prim attribute, a part name ("" = not corrected), and
#: the detail int the prediction SOP writes with the number of faces it kept corrected.
PART_FIX_DETAIL = FIX_COUNT_ATTRIB


def unit_length() -> float:
    """Metres per Houdini unit: the hip file's Unit Length (*Edit > Preferences > Hip File
    Options*, HScript ``unitlength``), as ``hou.scaleToMKS("m1")`` gives it: 1 in Houdini's
    default scene, 0.01 in a centimetre one. 1 if Houdini answers no length > 0."""
    value = float(hou.scaleToMKS("m1"))
    return value if math.isfinite(value) and value > 0 else 1.0


def length_parm(node, name: str, default: float, scale: float = 1.0) -> float:
    """A length parameter, given in scene units, in metres (``scale``: :func:`unit_length`);
    0 stays 0 ("not given"). Rounded to 12 significant digits, so 300 cm is 3 m exactly,
    not 3.0000000000000004 (a dataset compares cell sizes)."""
    value = float(parm_value(node, name, default))
    return value if scale == 1.0 else float(f"{value * scale:.12g}")


def unit_note(scale: float, cell_size_parm: float = 0.0) -> str | None:
    """For messages about cells in a scene whose Unit Length is not 1 m: Cell Size is in
    scene units and proc-ml's own messages count metres. None at 1 m per unit."""
    if scale == 1.0:
        return None
    value = float(cell_size_parm)
    example = f": a {value:g} m cell is {value / scale:g}" if value > 0 else ""
    return (f"Cell Size is in scene units (Unit Length {scale:g} m){example}; sizes in this "
            f"message are in metres")


def parm_value(node, name: str, default):
    """A node parameter's value, or ``default`` when the node has no such parameter
    (a bare Python SOP before its HDA interface is built)."""
    parm = node.parm(name)
    return default if parm is None else parm.eval()


def parm_string(node, name: str, default: str) -> str:
    """A string parameter with variables and expressions expanded (``evalAsString``)."""
    parm = node.parm(name)
    return default if parm is None else parm.evalAsString()


def output_path(node, name: str) -> str:
    """The file or folder a string parameter names for writing ("" when empty), refused
    when Houdini would write it somewhere the artist did not choose: a relative path (it
    would land in the folder Houdini was started from) or ``$HIP`` in a scene never saved
    (``$HIP`` is then that folder too)."""
    parm = node.parm(name)
    if parm is None:
        return ""
    value = parm.evalAsString().strip()
    if not value:
        return ""
    raw = parm.unexpandedString()
    if ("$HIP" in raw or "${HIP}" in raw) and hou.hipFile.isNewFile():
        raise GeometryError(f"'{name}' uses $HIP but the scene has never been saved, so $HIP is "
                            f"the folder Houdini was started from ({os.path.dirname(hou.hipFile.path())}): "
                            f"save the scene first, or use an absolute path")
    if not os.path.isabs(value):
        raise GeometryError(f"'{name}' is a relative path ({value}); Houdini would write it into "
                            f"the folder it was started from ({os.getcwd()}): use $HIP/{value} "
                            f"or an absolute path")
    return value


def point_count(geo) -> int:
    return int(geo.intrinsicValue("pointcount"))


def prim_count(geo) -> int:
    return int(geo.intrinsicValue("primitivecount"))


def point_positions(geo, scale: float = 1.0) -> np.ndarray:
    """``float64[N, 3]`` point positions (Houdini frame) times ``scale`` (:func:`unit_length`:
    metres), read as 64-bit floats so 64-bit P (georeferenced geometry cast with Attribute
    Cast) keeps its precision."""
    raw = geo.pointFloatAttribValuesAsString("P", hou.numericData.Float64)
    points = np.frombuffer(raw, dtype=np.float64).reshape(-1, 3)
    return points if scale == 1.0 else points * float(scale)


def polygons(geo, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points float64[N, 3], vertex counts int64[F], point indices int64[sum])``; points
    times ``scale`` (:func:`unit_length`: metres)."""
    per_prim = [[pt.number() for pt in prim.points()] for prim in geo.prims()]
    counts = np.fromiter((len(p) for p in per_prim), dtype=np.int64, count=len(per_prim))
    indices = np.fromiter((n for p in per_prim for n in p), dtype=np.int64,
                          count=int(counts.sum()))
    return point_positions(geo, scale), counts, indices


def prim_attrib_values(geo, name: str) -> np.ndarray | None:
    """A prim attribute as ``int64[F]``, ``float64[F, size]`` or ``str[F]``; None if absent.
    The name on another class (point, vertex, detail) is a :class:`GeometryError`: read as
    absent its values would be dropped in silence."""
    attrib = geo.findPrimAttrib(name)
    if attrib is None:
        for kind, find in (("point", geo.findPointAttrib), ("vertex", geo.findVertexAttrib),
                           ("detail", geo.findGlobalAttrib)):
            if find(name) is not None:
                raise GeometryError(f"'{name}' is a {kind} attribute; proc-ml reads it per "
                                    f"primitive: promote it to Primitive (Attribute Promote) "
                                    f"or rename it")
        return None
    kind = attrib.dataType()
    if kind == hou.attribData.String:
        return np.asarray(geo.primStringAttribValues(name), dtype=object)
    if kind == hou.attribData.Int:
        values = np.asarray(geo.primIntAttribValues(name), dtype=np.int64)
    else:
        values = np.asarray(geo.primFloatAttribValues(name), dtype=np.float64)
    size = attrib.size()
    return values if size == 1 else values.reshape(-1, size)


def piece_values(geo, name: str, element: str) -> np.ndarray | None:
    """The piece attribute ``name`` (Houdini's ``name``, ``class``, ...: which building each
    element belongs to) per ``element`` (``"prim"`` or ``"point"``) as ``str[N]`` or
    ``int64[N]``; None when ``name`` is empty or the input has no such attribute on that
    class. A float or array attribute, or one of the names the output writes, is a
    :class:`GeometryError`."""
    if not name:
        return None
    if name in (PART_ATTRIB, PART_NAME_ATTRIB, PART_PROB_ATTRIB, COLOUR_ATTRIB, PART_FIX_ATTRIB):
        raise GeometryError(f"Piece Attribute '{name}' is an attribute the output writes; "
                            f"use another (name, class)")
    attrib = (geo.findPrimAttrib if element == "prim" else geo.findPointAttrib)(name)
    if attrib is None:
        return None
    if attrib.size() != 1 or attrib.dataType() not in (hou.attribData.String, hou.attribData.Int):
        raise GeometryError(f"Piece Attribute '{name}' must be a string or integer {element} "
                            f"attribute of one value (as name or class are)")
    if attrib.dataType() == hou.attribData.String:
        read = geo.primStringAttribValues if element == "prim" else geo.pointStringAttribValues
        return np.asarray(read(name), dtype=object)
    read = geo.primIntAttribValues if element == "prim" else geo.pointIntAttribValues
    return np.asarray(read(name), dtype=np.int64)


def write_pieces(geo, name: str, values: np.ndarray) -> None:
    """The piece attribute ``name`` on the output quads (one value each, the input's type)."""
    if values.dtype == object:
        fresh_attrib(geo, hou.attribType.Prim, name, "")
        geo.setPrimStringAttribValues(name, [str(v) for v in values])
    else:
        fresh_attrib(geo, hou.attribType.Prim, name, 0)
        geo.setPrimIntAttribValues(name, [int(v) for v in values])


def detail_string(geo, name: str) -> str | None:
    attrib = geo.findGlobalAttrib(name)
    if attrib is None or attrib.dataType() != hou.attribData.String:
        return None
    return geo.attribValue(name)


def set_detail_string(geo, name: str, value: str) -> None:
    """Write the string detail attribute ``name`` (added, or replaced if of another type)."""
    fresh_attrib(geo, hou.attribType.Global, name, "")
    geo.setGlobalAttribValue(name, value)


def fresh_attrib(geo, attrib_type, name: str, default) -> None:
    """Add ``name``; an existing one of another type or size is replaced."""
    finder = {hou.attribType.Prim: geo.findPrimAttrib, hou.attribType.Point: geo.findPointAttrib,
              hou.attribType.Global: geo.findGlobalAttrib}[attrib_type]
    existing = finder(name)
    size = len(default) if isinstance(default, tuple) else 1
    if existing is not None:
        if existing.size() == size and isinstance(default, str) == (
                existing.dataType() == hou.attribData.String):
            return
        existing.destroy()
    geo.addAttrib(attrib_type, name, default)


def write_labelled_prims(geo, prims, scale: float = 1.0) -> str | None:
    """Replace ``geo`` with the labelled quads of a ``proc_ml.dcc.prims.LabelledPrims``
    (positions in metres, written in scene units: divided by ``scale``, :func:`unit_length`)
    and, when ``prims.fix`` is set, the string prim attribute ``part_fix`` and the detail
    int ``part_fix_count``. Returns :func:`precision_note` when P's storage moved the
    quads off the cell grid (32-bit P far from the origin), else None."""
    geo.clear()
    k = len(prims.parts)
    fresh_attrib(geo, hou.attribType.Global, PART_NAMES_DETAIL, "")
    geo.setGlobalAttribValue(PART_NAMES_DETAIL, " ".join(prims.parts))
    fresh_attrib(geo, hou.attribType.Prim, PART_ATTRIB, -1)
    fresh_attrib(geo, hou.attribType.Prim, PART_NAME_ATTRIB, "")
    fresh_attrib(geo, hou.attribType.Prim, PART_PROB_ATTRIB, (0.0,) * k)
    fresh_attrib(geo, hou.attribType.Prim, COLOUR_ATTRIB, (1.0, 1.0, 1.0))
    if prims.fix is not None:
        fresh_attrib(geo, hou.attribType.Prim, PART_FIX_ATTRIB, NO_FIX_NAME)
        fresh_attrib(geo, hou.attribType.Global, PART_FIX_DETAIL, 0)
        geo.setGlobalAttribValue(PART_FIX_DETAIL, int((prims.fix >= 0).sum()))
    if len(prims) == 0:
        return
    geo.createPoints((prims.points if scale == 1.0 else prims.points / float(scale)).tolist())
    geo.createPolygons(prims.polygons.tolist())
    geo.setPrimIntAttribValues(PART_ATTRIB, prims.part.tolist())
    geo.setPrimStringAttribValues(PART_NAME_ATTRIB, prims.part_name.tolist())
    if prims.fix is not None:
        geo.setPrimStringAttribValues(PART_FIX_ATTRIB, prims.fix_name.tolist())
    geo.setPrimFloatAttribValuesFromString(PART_PROB_ATTRIB,
                                           np.ascontiguousarray(prims.probs, np.float32).tobytes(),
                                           hou.numericData.Float32)
    geo.setPrimFloatAttribValuesFromString(COLOUR_ATTRIB,
                                           np.ascontiguousarray(prims.colour, np.float32).tobytes(),
                                           hou.numericData.Float32)
    cell = float(prims.grid.cell_size) if prims.grid is not None else 0.0
    off = float(np.abs(point_positions(geo, scale) - prims.points).max())       # metres
    return precision_note(geo, off, scale=scale) if cell and off > LATTICE_TOLERANCE * cell else None


def precision_note(geo, off: float | None = None, cell_size: float = 0.0,
                   scale: float = 1.0) -> str | None:
    """A line when ``geo``'s P is stored as 32-bit floats far enough from the origin to
    lose the cell grid (``off``: how far stored positions moved, when known; else whether
    32-bit steps there exceed the lattice tolerance at ``cell_size``), else None. ``off``,
    ``cell_size`` and the line are in metres (``scale``: :func:`unit_length`)."""
    attrib = geo.findPointAttrib("P")
    storage = attrib.numericDataType() if attrib is not None else None
    if storage != hou.numericData.Float32 or point_count(geo) == 0:
        return None
    far_units = float(np.abs(point_positions(geo)).max())
    far = far_units * float(scale)
    step = float(np.spacing(np.float32(far_units))) * float(scale)      # metres per 32-bit step
    if off is None and step / 2 <= LATTICE_TOLERANCE * float(cell_size):
        return None
    moved = f"moved the quads up to {off:.3g} m off the cell grid" if off else "lose the cell grid"
    return (f"the building is {far / 1000:.0f} km from the origin, where Houdini's 32-bit P keeps "
            f"only {step:g} m steps: stored positions {moved}, so Export Training Data and "
            f"part_fix corrections cannot use them; cast P to 64-bit before proc-ml (Attribute "
            f"Cast SOP: Class Point, Attributes P, Precision 64-bit) or move the building near "
            f"the origin")
