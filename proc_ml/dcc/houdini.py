"""Houdini adapter: hou.Geometry <-> numpy arrays, and nothing else.

Attribute data moves in bulk (``pointFloatAttribValuesAsString``,
``setPrimFloatAttribValuesFromString``, ``setPrimIntAttribValues``,
``setPrimStringAttribValues``, ``createPoints``/``createPolygons`` with whole lists).
HOM has no bulk accessor for polygon topology, so :func:`polygons` reads each
primitive's point numbers in one comprehension; massing inputs have few primitives.

Frames: Houdini is y-up and its polygons face the side their vertices run clockwise on;
the SOP scripts pass ``up="y", clockwise=True`` to the shared numpy functions.
"""

from __future__ import annotations

import numpy as np

import hou

from .fixes import FIX_COUNT_ATTRIB, NO_FIX_NAME, PART_FIX_ATTRIB

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


def parm_value(node, name: str, default):
    """A node parameter's value, or ``default`` when the node has no such parameter
    (a bare Python SOP before its HDA interface is built)."""
    parm = node.parm(name)
    return default if parm is None else parm.eval()


def parm_string(node, name: str, default: str) -> str:
    """A string parameter with variables and expressions expanded (``evalAsString``)."""
    parm = node.parm(name)
    return default if parm is None else parm.evalAsString()


def point_count(geo) -> int:
    return int(geo.intrinsicValue("pointcount"))


def prim_count(geo) -> int:
    return int(geo.intrinsicValue("primitivecount"))


def point_positions(geo) -> np.ndarray:
    """``float32[N, 3]`` point positions (Houdini frame)."""
    raw = geo.pointFloatAttribValuesAsString("P", hou.numericData.Float32)
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, 3)


def polygons(geo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(points float32[N, 3], vertex counts int64[F], point indices int64[sum])``."""
    per_prim = [[pt.number() for pt in prim.points()] for prim in geo.prims()]
    counts = np.fromiter((len(p) for p in per_prim), dtype=np.int64, count=len(per_prim))
    indices = np.fromiter((n for p in per_prim for n in p), dtype=np.int64,
                          count=int(counts.sum()))
    return point_positions(geo), counts, indices


def prim_attrib_values(geo, name: str) -> np.ndarray | None:
    """A prim attribute as ``int64[F]``, ``float64[F, size]`` or ``str[F]``; None if absent."""
    attrib = geo.findPrimAttrib(name)
    if attrib is None:
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


def detail_string(geo, name: str) -> str | None:
    attrib = geo.findGlobalAttrib(name)
    if attrib is None or attrib.dataType() != hou.attribData.String:
        return None
    return geo.attribValue(name)


def set_detail_string(geo, name: str, value: str) -> None:
    """Write the string detail attribute ``name`` (added, or replaced if of another type)."""
    _fresh_attrib(geo, hou.attribType.Global, name, "")
    geo.setGlobalAttribValue(name, value)


def _fresh_attrib(geo, attrib_type, name: str, default) -> None:
    """Add ``name``; an existing one of another type or size is replaced."""
    finder = {hou.attribType.Prim: geo.findPrimAttrib,
              hou.attribType.Global: geo.findGlobalAttrib}[attrib_type]
    existing = finder(name)
    size = len(default) if isinstance(default, tuple) else 1
    if existing is not None:
        if existing.size() == size and isinstance(default, str) == (
                existing.dataType() == hou.attribData.String):
            return
        existing.destroy()
    geo.addAttrib(attrib_type, name, default)


def write_labelled_prims(geo, prims) -> None:
    """Replace ``geo`` with the labelled quads of a ``proc_ml.dcc.prims.LabelledPrims``
    (and, when ``prims.fix`` is set, the string prim attribute ``part_fix`` and the detail
    int ``part_fix_count``)."""
    geo.clear()
    k = len(prims.parts)
    _fresh_attrib(geo, hou.attribType.Global, PART_NAMES_DETAIL, "")
    geo.setGlobalAttribValue(PART_NAMES_DETAIL, " ".join(prims.parts))
    _fresh_attrib(geo, hou.attribType.Prim, PART_ATTRIB, -1)
    _fresh_attrib(geo, hou.attribType.Prim, PART_NAME_ATTRIB, "")
    _fresh_attrib(geo, hou.attribType.Prim, PART_PROB_ATTRIB, (0.0,) * k)
    _fresh_attrib(geo, hou.attribType.Prim, COLOUR_ATTRIB, (1.0, 1.0, 1.0))
    if prims.fix is not None:
        _fresh_attrib(geo, hou.attribType.Prim, PART_FIX_ATTRIB, NO_FIX_NAME)
        _fresh_attrib(geo, hou.attribType.Global, PART_FIX_DETAIL, 0)
        geo.setGlobalAttribValue(PART_FIX_DETAIL, int((prims.fix >= 0).sum()))
    if len(prims) == 0:
        return
    geo.createPoints(prims.points.tolist())
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
