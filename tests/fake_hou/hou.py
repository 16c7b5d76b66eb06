"""A small in-repo fake of Houdini's ``hou`` module: only the calls proc-ml's SOP scripts use.

Names and signatures follow the HOM documentation (hou.Geometry, hou.Node, hou.Parm,
hou.attribType, hou.NodeError ...). Behaviour that matters for correctness is enforced
as Houdini does: a SOP's input geometry is read-only, bulk setters need exactly one value
per element (x attribute size), ``*FromString`` setters take ``bytes``, ``addAttrib``
refuses an existing name, and a Python SOP's geometry starts as a copy of input 0.

Tests build nodes with :func:`make_sop_node` and cook them with :func:`cook`, which runs a
script's source with this module as ``hou`` and ``hou.pwd()`` set to the node.
"""

from __future__ import annotations

import contextlib
import copy
import re
import sys
from types import SimpleNamespace

import numpy as np


# -- errors -------------------------------------------------------------------------------
class Error(Exception):
    """Base class of HOM exceptions."""

    def instanceMessage(self) -> str:
        return str(self)


class NodeError(Error):
    """Raised from a Python SOP to give the node an error with this message."""


class NodeWarning(Error):
    """Raised from a Python SOP to give the node a warning with this message."""


class OperationFailed(Error):
    pass


class InvalidSize(Error):
    pass


class GeometryPermissionError(Error):
    pass


class InvalidInput(Error):
    pass


# -- enums --------------------------------------------------------------------------------
class _EnumValue:
    def __init__(self, enum: str, name: str):
        self._enum, self._name = enum, name

    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"{self._enum}.{self._name}"

    def __copy__(self):
        return self     # enum values are singletons, also inside copied geometry

    def __deepcopy__(self, memo):
        return self


def _enum(name: str, values) -> SimpleNamespace:
    return SimpleNamespace(**{v: _EnumValue(name, v) for v in values})


attribType = _enum("attribType", ("Point", "Prim", "Vertex", "Global"))
attribData = _enum("attribData", ("Int", "Float", "String", "Dict"))
numericData = _enum("numericData", ("Int8", "Int16", "Int32", "Int64", "Float16", "Float32",
                                     "Float64"))
_NUMPY_TYPES = {numericData.Float32: np.float32, numericData.Float64: np.float64,
                numericData.Float16: np.float16, numericData.Int8: np.int8,
                numericData.Int16: np.int16, numericData.Int32: np.int32,
                numericData.Int64: np.int64}


# -- geometry -----------------------------------------------------------------------------
#: Storage of a new numeric attribute: Houdini stores float attributes, P included, as
#: 32-bit floats and int attributes as 32-bit ints unless a node casts them (Attribute
#: Cast SOP: real16/real32/real64, int8..int64; https://www.sidefx.com/docs/houdini/nodes/sop/attribcast.html);
#: hou.Attrib.numericDataType() reports it (HDK HOM_Attrib: numericDataType()). Values are
#: rounded to it when stored, as Houdini does: a position 5,400 km from the origin keeps
#: only half metres in 32-bit P.
_DEFAULT_STORAGE = {"Float": "Float32", "Int": "Int32"}


class Attrib:
    def __init__(self, geometry: "Geometry", attrib_type, name: str, data_type, size: int,
                 default):
        self._geometry, self._type, self._name = geometry, attrib_type, name
        self._data_type, self._size, self._default = data_type, size, default
        storage = _DEFAULT_STORAGE.get(data_type.name())
        self._numeric = getattr(numericData, storage) if storage else None

    def numericDataType(self):
        """The storage type (hou.numericData), None for strings and dicts."""
        return self._numeric

    def _store(self, values: np.ndarray) -> np.ndarray:
        """``values`` as this attribute's storage holds them (rounded to float32 ...)."""
        if self._numeric is None:
            return values
        return values.astype(_NUMPY_TYPES[self._numeric]).astype(values.dtype)

    def name(self) -> str:
        return self._name

    def type(self):
        return self._type

    def dataType(self):
        return self._data_type

    def size(self) -> int:
        return self._size

    def defaultValue(self):
        return self._default

    def destroy(self) -> None:
        self._geometry._check_writable()
        if self._type is attribType.Vertex:
            self._geometry._vertex_attribs.pop(self._name, None)
            return
        self._geometry._attribs[self._type].pop(self._name, None)
        self._geometry._values[self._type].pop(self._name, None)


class Point:
    def __init__(self, geometry: "Geometry", number: int):
        self._geometry, self._number = geometry, number

    def number(self) -> int:
        return self._number

    def position(self):
        return tuple(float(v) for v in self._geometry._values[attribType.Point]["P"][self._number])

    def geometry(self) -> "Geometry":
        return self._geometry


class Prim:
    def __init__(self, geometry: "Geometry", number: int):
        self._geometry, self._number = geometry, number

    def number(self) -> int:
        return self._number

    def points(self) -> tuple:
        return tuple(Point(self._geometry, n) for n in self._geometry._prims[self._number])

    def numVertices(self) -> int:
        return len(self._geometry._prims[self._number])

    def geometry(self) -> "Geometry":
        return self._geometry


class Polygon(Prim):
    pass


def _classify(default):
    """(data type, size) of an attribute from its default value, as addAttrib does."""
    values = default if isinstance(default, (tuple, list)) else (default,)
    if not values:
        raise OperationFailed("default value must not be empty")
    if all(isinstance(v, str) for v in values):
        return attribData.String, len(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return attribData.Int, len(values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return attribData.Float, len(values)
    raise OperationFailed(f"unsupported attribute default {default!r}")


class Geometry:
    """Points with attributes, polygons as point-number lists, prim and detail attributes."""

    def __init__(self):
        self._writable = True
        self._prims: list[tuple[int, ...]] = []
        self._attribs = {t: {} for t in (attribType.Point, attribType.Prim, attribType.Global)}
        self._values = {t: {} for t in self._attribs}
        self._n_points = 0
        self._vertex_attribs: dict = {}     # declared only (test_declare_vertex_attrib)
        self._add(attribType.Point, "P", attribData.Float, 3, (0.0, 0.0, 0.0))
        self.calls: list[str] = []      # bulk calls made, for tests that check the API use

    # - internals -
    def _check_writable(self) -> None:
        if not self._writable:
            raise GeometryPermissionError("geometry is read-only (it belongs to another node)")

    def _count(self, attrib_type) -> int:
        return {attribType.Point: self._n_points, attribType.Prim: len(self._prims),
                attribType.Global: 1}[attrib_type]

    def _add(self, attrib_type, name, data_type, size, default) -> Attrib:
        attrib = Attrib(self, attrib_type, name, data_type, size, default)
        self._attribs[attrib_type][name] = attrib
        n = self._count(attrib_type)
        if data_type is attribData.String:
            self._values[attrib_type][name] = np.full(n, default if isinstance(default, str)
                                                      else default[0], dtype=object)
        else:
            dtype = np.float64 if data_type is attribData.Float else np.int64
            fill = np.asarray(default if isinstance(default, (tuple, list)) else (default,), dtype)
            self._values[attrib_type][name] = attrib._store(np.tile(fill, (n, 1)))
        return attrib

    def _grow(self, attrib_type, count: int) -> None:
        for name, attrib in self._attribs[attrib_type].items():
            old = self._values[attrib_type][name]
            if attrib.dataType() is attribData.String:
                extra = np.full(count, attrib.defaultValue() if isinstance(attrib.defaultValue(), str)
                                else attrib.defaultValue()[0], dtype=object)
            else:
                default = attrib.defaultValue()
                fill = np.asarray(default if isinstance(default, (tuple, list)) else (default,),
                                  old.dtype)
                extra = np.tile(fill, (count, 1))
            self._values[attrib_type][name] = np.concatenate([old, extra])

    def _find(self, attrib_type, name) -> Attrib:
        attrib = self._attribs[attrib_type].get(name)
        if attrib is None:
            raise OperationFailed(f"no {attrib_type.name().lower()} attribute named '{name}'")
        return attrib

    def _set_values(self, attrib_type, name, values, data_type) -> None:
        self._check_writable()
        attrib = self._find(attrib_type, name)
        if attrib.dataType() is not data_type:
            raise OperationFailed(f"attribute '{name}' is {attrib.dataType().name()}, "
                                  f"not {data_type.name()}")
        n, size = self._count(attrib_type), attrib.size()
        if len(values) != n * size:
            raise InvalidSize(f"'{name}': expected {n * size} values ({n} elements x {size}), "
                              f"got {len(values)}")
        if data_type is attribData.String:
            self._values[attrib_type][name] = np.array(list(values), dtype=object)
        else:
            arr = np.asarray(values, dtype=np.float64 if data_type is attribData.Float else np.int64)
            self._values[attrib_type][name] = attrib._store(arr.reshape(n, size))

    def _values_of(self, attrib_type, name, data_type) -> np.ndarray:
        attrib = self._find(attrib_type, name)
        if attrib.dataType() is not data_type:
            raise OperationFailed(f"attribute '{name}' is {attrib.dataType().name()}, "
                                  f"not {data_type.name()}")
        return self._values[attrib_type][name]

    @staticmethod
    def _from_string(values, numeric_type):
        if not isinstance(values, (bytes, bytearray)):
            raise TypeError("values must be a binary string (bytes)")
        return np.frombuffer(values, dtype=_NUMPY_TYPES[numeric_type])

    # - documented HOM methods -
    def freeze(self, read_only: bool = False, clone_data_ids: bool = False) -> "Geometry":
        frozen = copy.deepcopy(self)
        frozen._writable = not read_only
        return frozen

    def clear(self) -> None:
        self._check_writable()
        self.calls.append("clear")
        self._prims, self._n_points = [], 0
        for attrib_type in self._attribs:
            for name in [n for n in self._attribs[attrib_type] if not (
                    attrib_type is attribType.Point and n == "P")]:
                self._attribs[attrib_type].pop(name)
                self._values[attrib_type].pop(name)
        self._values[attribType.Point]["P"] = np.zeros((0, 3))

    def intrinsicValue(self, intrinsic_name: str):
        values = {"pointcount": self._n_points, "primitivecount": len(self._prims),
                  "vertexcount": sum(len(p) for p in self._prims)}
        if intrinsic_name not in values:
            raise OperationFailed(f"no intrinsic named '{intrinsic_name}'")
        return values[intrinsic_name]

    def points(self) -> tuple:
        return tuple(Point(self, n) for n in range(self._n_points))

    def prims(self) -> tuple:
        return tuple(Polygon(self, n) for n in range(len(self._prims)))

    def iterPrims(self):
        return self.prims()

    def createPoint(self) -> Point:
        return self.createPoints([(0.0, 0.0, 0.0)])[0]

    def createPoints(self, point_positions) -> tuple:
        """Points at ``point_positions`` (hou.Vector3s or 3-float sequences)."""
        self._check_writable()
        self.calls.append("createPoints")
        try:        # 3-float sequences convert in one go; hou.Vector3-likes one by one
            positions = np.asarray(point_positions, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            positions = np.asarray([tuple(p) for p in point_positions],
                                   dtype=np.float64).reshape(-1, 3)
        first = self._n_points
        self._grow(attribType.Point, len(positions))
        self._values[attribType.Point]["P"][first:] = self._attribs[attribType.Point]["P"]._store(positions)
        self._n_points += len(positions)
        return tuple(Point(self, n) for n in range(first, self._n_points))

    def createPolygons(self, points, is_closed: bool = True) -> tuple:
        """Polygons, each from a sequence of hou.Point objects or point numbers."""
        self._check_writable()
        self.calls.append("createPolygons")
        first = len(self._prims)
        try:        # point numbers convert in one go; hou.Point objects one by one
            table = np.asarray(points, dtype=np.int64)
            polys = [tuple(row) for row in table.tolist()] if table.ndim == 2 else None
        except (TypeError, ValueError):
            polys = None
        if polys is None:
            polys = [tuple(p.number() if isinstance(p, Point) else int(p) for p in poly)
                     for poly in points]
            table = np.asarray([n for poly in polys for n in poly], dtype=np.int64)
        if table.size and (table.min() < 0 or table.max() >= self._n_points):
            raise InvalidInput("point number out of range")
        self._prims.extend(polys)
        self._grow(attribType.Prim, len(polys))
        return tuple(Polygon(self, n) for n in range(first, len(self._prims)))

    def addAttrib(self, type, name, default_value, transform_as_normal=False,
                  create_local_variable=True) -> Attrib:
        self._check_writable()
        if name in self._attribs[type]:
            raise OperationFailed(f"attribute '{name}' already exists")
        data_type, size = _classify(default_value)
        return self._add(type, name, data_type, size, default_value)

    def findPointAttrib(self, name):
        return self._attribs[attribType.Point].get(name)

    def findPrimAttrib(self, name):
        return self._attribs[attribType.Prim].get(name)

    def findGlobalAttrib(self, name):
        return self._attribs[attribType.Global].get(name)

    def findVertexAttrib(self, name):
        return self._vertex_attribs.get(name)

    def pointFloatAttribValues(self, name) -> tuple:
        return tuple(self._values_of(attribType.Point, name, attribData.Float).reshape(-1).tolist())

    def pointFloatAttribValuesAsString(self, name, float_type=numericData.Float32) -> bytes:
        self.calls.append("pointFloatAttribValuesAsString")
        values = self._values_of(attribType.Point, name, attribData.Float)
        return values.astype(_NUMPY_TYPES[float_type]).tobytes()

    def setPointFloatAttribValuesFromString(self, name, values, float_type=numericData.Float32):
        self.calls.append("setPointFloatAttribValuesFromString")
        self._set_values(attribType.Point, name, self._from_string(values, float_type),
                         attribData.Float)

    def pointIntAttribValues(self, name) -> tuple:
        return tuple(self._values_of(attribType.Point, name, attribData.Int).reshape(-1).tolist())

    def pointStringAttribValues(self, name) -> tuple:
        return tuple(self._values_of(attribType.Point, name, attribData.String).tolist())

    def primIntAttribValues(self, name) -> tuple:
        return tuple(self._values_of(attribType.Prim, name, attribData.Int).reshape(-1).tolist())

    def primIntAttribValuesAsString(self, name, int_type=numericData.Int32) -> bytes:
        self.calls.append("primIntAttribValuesAsString")
        values = self._values_of(attribType.Prim, name, attribData.Int)
        return values.astype(_NUMPY_TYPES[int_type]).tobytes()

    def primFloatAttribValues(self, name) -> tuple:
        return tuple(self._values_of(attribType.Prim, name, attribData.Float).reshape(-1).tolist())

    def primFloatAttribValuesAsString(self, name, float_type=numericData.Float32) -> bytes:
        values = self._values_of(attribType.Prim, name, attribData.Float)
        return values.astype(_NUMPY_TYPES[float_type]).tobytes()

    def primStringAttribValues(self, name) -> tuple:
        return tuple(self._values_of(attribType.Prim, name, attribData.String).tolist())

    def setPrimIntAttribValues(self, name, values) -> None:
        self.calls.append("setPrimIntAttribValues")
        self._set_values(attribType.Prim, name, values, attribData.Int)

    def setPrimIntAttribValuesFromString(self, name, values, int_type=numericData.Int32) -> None:
        self.calls.append("setPrimIntAttribValuesFromString")
        self._set_values(attribType.Prim, name, self._from_string(values, int_type),
                         attribData.Int)

    def setPrimFloatAttribValues(self, name, values) -> None:
        self.calls.append("setPrimFloatAttribValues")
        self._set_values(attribType.Prim, name, values, attribData.Float)

    def setPrimFloatAttribValuesFromString(self, name, values, float_type=numericData.Float32):
        self.calls.append("setPrimFloatAttribValuesFromString")
        self._set_values(attribType.Prim, name, self._from_string(values, float_type),
                         attribData.Float)

    def setPrimStringAttribValues(self, name, values) -> None:
        self.calls.append("setPrimStringAttribValues")
        self._set_values(attribType.Prim, name, tuple(values), attribData.String)

    def attribValue(self, name_or_attrib):
        name = name_or_attrib.name() if isinstance(name_or_attrib, Attrib) else name_or_attrib
        attrib = self._find(attribType.Global, name)
        value = self._values[attribType.Global][name][0]
        if attrib.dataType() is attribData.String:
            return str(value)
        items = value.tolist()
        return items[0] if attrib.size() == 1 else tuple(items)

    def setGlobalAttribValue(self, name_or_attrib, attrib_value) -> None:
        self._check_writable()
        name = name_or_attrib.name() if isinstance(name_or_attrib, Attrib) else name_or_attrib
        attrib = self._find(attribType.Global, name)
        values = attrib_value if isinstance(attrib_value, (tuple, list)) else (attrib_value,)
        self._set_values(attribType.Global, name, values, attrib.dataType())


# -- nodes and parameters -----------------------------------------------------------------
class Parm:
    def __init__(self, node: "SopNode", name: str, value):
        self._node, self._name, self._value = node, name, value

    def name(self) -> str:
        return self._name

    def eval(self):
        return self._value

    def evalAsString(self) -> str:
        """The value with variables expanded, as Houdini evaluates a string parameter
        (here only ``$HIP`` / ``${HIP}``: the folder of hou.hipFile.path())."""
        return _expand_hip(str(self._value))

    def unexpandedString(self) -> str:
        """The raw text of a string parameter, variables not expanded."""
        return str(self._value)

    def evalAsInt(self) -> int:
        return int(self._value)

    def evalAsFloat(self) -> float:
        return float(self._value)

    def set(self, value) -> None:
        self._value = value


class ParmTuple:
    def __init__(self, node, name: str, values):
        self._node, self._name, self._values = node, name, tuple(values)

    def name(self) -> str:
        return self._name

    def eval(self) -> tuple:
        return self._values

    def set(self, values) -> None:
        self._values = tuple(values)


class SopNode:
    """A Python SOP: parameters, one input, cached user data, an output geometry."""

    def __init__(self, path: str, parms: dict, input_node: "SopNode | None" = None):
        self._path = path
        self._parms = {k: Parm(self, k, v) for k, v in parms.items() if not isinstance(v, tuple)}
        self._parm_tuples = {k: ParmTuple(self, k, v) for k, v in parms.items()
                             if isinstance(v, tuple)}
        self._input = input_node
        self._cached: dict = {}
        self._geometry = Geometry()

    def path(self) -> str:
        return self._path

    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    def parm(self, parm_path: str):
        return self._parms.get(parm_path)

    def parmTuple(self, parm_path: str):
        return self._parm_tuples.get(parm_path)

    def evalParm(self, parm_path: str):
        return self._parms[parm_path].eval()

    def inputs(self) -> tuple:
        return (self._input,) if self._input is not None else ()

    def geometry(self, output_index: int = 0) -> Geometry:
        return self._geometry

    def cachedUserData(self, name: str):
        return self._cached.get(name)

    def setCachedUserData(self, name: str, value) -> None:
        self._cached[name] = value

    def destroyCachedUserData(self, name: str, must_exist: bool = True) -> None:
        if must_exist and name not in self._cached:
            raise OperationFailed(f"no cached user data named '{name}'")
        self._cached.pop(name, None)

    def cachedUserDataDict(self) -> dict:
        return dict(self._cached)


class InputNode(SopNode):
    """An upstream SOP whose (read-only) output geometry is given."""

    def __init__(self, path: str, geometry: Geometry):
        super().__init__(path, {})
        geometry._writable = False
        self._geometry = geometry


class _HipFile:
    """hou.hipFile: the scene file. A new scene is ``untitled.hip`` in the folder Houdini
    was started from, and $HIP is that folder until the scene is saved
    (hou.hipFile.path(), hou.hipFile.isNewFile())."""

    def __init__(self):
        import os
        self._path, self._new = os.path.join(os.getcwd(), "untitled.hip"), True
        # Hip File Options > Unit Length / Unit Mass: metres / kilograms per Houdini unit
        # (HScript unitlength / unitmass; a new scene has Houdini's defaults, 1 m and 1 kg)
        self._unit_length, self._unit_mass = 1.0, 1.0

    def path(self) -> str:
        return self._path

    def name(self) -> str:
        return self._path

    def basename(self) -> str:
        return self._path.replace("\\", "/").rsplit("/", 1)[-1]

    def isNewFile(self) -> bool:
        return self._new

    def save(self, file_name=None, save_to_recent_files=True) -> None:
        if file_name:
            self._path = str(file_name)
        self._new = False

    def clear(self, suppress_save_prompt=False) -> None:
        self.__init__()


hipFile = _HipFile()


def _expand_hip(text: str) -> str:
    import os
    folder = os.path.dirname(hipFile.path())
    return text.replace("${HIP}", folder).replace("$HIP", folder)


#: HOM's unit tokens: m (length), kg (mass), s (time), each followed by an exponent.
_MKS_TOKEN = re.compile(r"(kg|m|s)([-+]?(?:\d+\.?\d*|\.\d+))")


def scaleToMKS(dimensions: str) -> float:
    """The factor taking a value of ``dimensions`` from the session's Houdini units to MKS
    units: ``scaleToMKS("m1")`` is the hip file's Unit Length in metres (0.01 in a
    centimetre scene), ``"m2"`` an area, ``"kg1m-3"`` a density. The fake models the hip
    file's Unit Length and Unit Mass (HScript ``unitlength`` / ``unitmass``); ``s`` scales
    by 1. Malformed text is refused here (what Houdini does with it is not documented).
    (hou.scaleToMKS; its HOM page describes it in the same words as scaleFromMKS, so the
    direction is the one its name and the scaletomks expression function give: from
    Houdini units to MKS.)"""
    text = str(dimensions).replace(" ", "")
    if not text or _MKS_TOKEN.sub("", text):
        raise OperationFailed(f"invalid unit dimensions '{dimensions}' (tokens m, kg, s, "
                              f"each with an exponent: m1, m2, kg1m-3)")
    per_unit = {"m": hipFile._unit_length, "kg": hipFile._unit_mass, "s": 1.0}
    factor = 1.0
    for token, exponent in _MKS_TOKEN.findall(text):
        factor *= per_unit[token] ** float(exponent)
    return factor


def scaleFromMKS(dimensions: str) -> float:
    """The factor taking a value of ``dimensions`` from MKS units to the session's Houdini
    units: ``scaleFromMKS("m1")`` is 100 in a centimetre scene (hou.scaleFromMKS; the
    scalefrommks expression function: from MKS units to Houdini units)."""
    return 1.0 / scaleToMKS(dimensions)


_current: list = []


def pwd():
    """The node whose code is running (the cooking Python SOP)."""
    if not _current:
        raise OperationFailed("hou.pwd(): no node is cooking")
    return _current[-1]


# -- test helpers (not part of HOM) -------------------------------------------------------
def make_sop_node(parms: dict, input_geometry: Geometry | None = None,
                  path: str = "/obj/geo1/python1") -> SopNode:
    upstream = InputNode(path.rsplit("/", 1)[0] + "/input1", input_geometry) \
        if input_geometry is not None else None
    return SopNode(path, parms, upstream)


def set_unit_length(metres: float) -> None:
    """What Hip File Options > Unit Length (HScript ``unitlength <metres>``) sets: the
    length of one Houdini unit in metres (0.01: a centimetre scene). Houdini's default is 1."""
    value = float(metres)
    if not value > 0 or value == float("inf"):
        raise OperationFailed(f"unit length must be a length > 0 in metres, got {metres}")
    hipFile._unit_length = value


def cast_attrib(geometry: Geometry, attrib_type, name: str, numeric_type) -> None:
    """What an Attribute Cast SOP does upstream: store ``name`` as ``numeric_type``
    (e.g. P as hou.numericData.Float64, 64-bit positions)."""
    attrib = geometry._find(attrib_type, name)
    attrib._numeric = numeric_type
    geometry._values[attrib_type][name] = attrib._store(geometry._values[attrib_type][name])


def declare_vertex_attrib(geometry: Geometry, name: str, default) -> None:
    """Declare a vertex attribute (found by findVertexAttrib; its values are not kept)."""
    data_type, size = _classify(default)
    geometry._vertex_attribs[name] = Attrib(geometry, attribType.Vertex, name, data_type, size,
                                            default)


@contextlib.contextmanager
def cooking(node: SopNode):
    """Houdini's cook set-up: the node's geometry starts as a writable copy of input 0."""
    source = node.inputs()[0].geometry() if node.inputs() else Geometry()
    node._geometry = copy.deepcopy(source)
    node._geometry._writable = True
    node._geometry.calls = []
    _current.append(node)
    try:
        yield node
    finally:
        _current.pop()


def cook(node: SopNode, code) -> SopNode:
    """Run a Python SOP script (source text or code object) on ``node``, as Houdini does.

    ``hou`` is this module, both in ``sys.modules`` and in the script's globals; HOM
    exceptions propagate to the caller like Houdini turns them into node errors.
    """
    sys.modules["hou"] = sys.modules[__name__]
    with cooking(node):
        exec(code, {"__name__": "__main__", "hou": sys.modules[__name__]})
    return node
