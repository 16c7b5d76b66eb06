"""CityGML 1.0 / 2.0 / 3.0 buildings with lxml (namespace-aware, no network, no entities).

What is read, per top-level ``Building`` (its ``BuildingPart`` s merged in):

* boundary surfaces -- ``WallSurface``, ``RoofSurface``, ``GroundSurface``,
  ``OuterCeilingSurface``, ``OuterFloorSurface``, ``ClosureSurface`` -- reached through
  ``bldg:boundedBy`` (2.0) or ``core:boundary`` (3.0), with their ``lodNMultiSurface`` /
  ``lodNSolid`` / ``lodNGeometry`` geometry;
* openings: ``bldg:opening/bldg:Window|Door`` (2.0) and ``con:fillingSurface/
  con:WindowSurface|DoorSurface`` (3.0), attached to the surface they sit in;
* geometry of the building itself with no semantic surface (LoD1 / LoD2 solids or
  multi-surfaces) as ``Unclassified``; a building-level solid whose polygons are
  ``xlink:href`` references to the boundary surfaces' polygons (the usual CityGML way) is
  not counted twice;
* ``BuildingInstallation`` geometry (``lodNGeometry``), kept apart from the shell.

Geometry: ``gml:Polygon`` / ``PolygonPatch`` / ``Triangle`` / ``Rectangle`` with
``gml:posList`` (``srsDimension`` from the element or an ancestor, default 3), ``gml:pos``
or ``gml:coordinates``, inside any ``MultiSurface`` / ``CompositeSurface`` / ``Surface`` /
``Solid`` / ``MultiGeometry`` / ``OrientableSurface`` (``orientation="-"`` reverses), and
``xlink:href="#id"`` references to any of these or to a whole semantic surface.
Interior rooms, furniture, appearances, implicit geometry and curves are skipped.

The highest LoD with shell geometry is kept (openings only exist in LoD3/4). Degenerate
polygons (fewer than 3 distinct vertices) are dropped with a note; coordinates that are
not numbers, or a ``posList`` whose length is not a multiple of its dimension, make the
building fail with one line, and the other buildings of the file are still read.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .crs import parse_epsg
from .model import SHELL_KINDS, CityBuilding, CityFile, Polygon, Surface

GML_NAMESPACES = ("http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2")
CITYGML_PREFIX = "http://www.opengis.net/citygml/"
#: Namespaces of the drafts before CityGML 1.0 (e.g. 0.4: http://www.citygml.org/citygml/1/0/0).
PRESTANDARD_PREFIX = "http://www.citygml.org/citygml/"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_GML_IDS = tuple(f"{{{ns}}}id" for ns in GML_NAMESPACES)

# Semantic classes -> the kind names of proc_ml.citygml.model.
_SEMANTIC = {k: k for k in SHELL_KINDS}
_SEMANTIC.update({"Window": "Window", "WindowSurface": "Window", "Door": "Door",
                  "DoorSurface": "Door", "BuildingInstallation": "BuildingInstallation"})
# Subtrees that never hold the building's exterior geometry.
_SKIP = frozenset({
    "appearance", "appearanceMember", "Appearance", "interiorRoom", "Room", "buildingRoom",
    "BuildingRoom", "interiorBuildingInstallation", "IntBuildingInstallation",
    "interiorFurniture", "BuildingFurniture", "buildingFurniture", "address", "Address",
    "externalReference", "generalizesTo", "relativeToTerrain", "Envelope", "buildingSubdivision",
    "BuildingUnit", "Storey", "BuildingStorey", "InteriorWallSurface", "CeilingSurface",
    "FloorSurface", "lod0FootPrint", "lod0RoofEdge",
})
_LOD_GEOMETRY = re.compile(r"^lod([0-4])(MultiSurface|Solid|Geometry|CompositeSurface|Surface)$")
_POLYGON_TAGS = frozenset({"Polygon", "PolygonPatch", "Triangle", "Rectangle"})
_CURVE_TAGS = frozenset({"LineString", "Curve", "MultiCurve", "CompositeCurve", "Point",
                         "MultiPoint", "OrientableCurve"})
_LICENCE_WORDS = re.compile(r"licen[cs]e|copyright|attribution|rights|urheber|lizenz", re.I)


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _namespace(tag) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _is_citygml(tag) -> bool:
    ns = _namespace(tag)
    return ns.startswith(CITYGML_PREFIX) or ns in GML_NAMESPACES


def _gml_id(elem) -> str | None:
    for key in _GML_IDS:
        value = elem.get(key)
        if value:
            return value
    return None


def citygml_version(root) -> str | None:
    """'1.0', '2.0' or '3.0' for a CityModel root in a CityGML namespace, else None."""
    if _local(root.tag) != "CityModel":
        return None
    m = re.match(re.escape(CITYGML_PREFIX) + r"(?:base/)?(\d\.\d)$", _namespace(root.tag))
    return m.group(1) if m else None


def read_citygml(path: str | Path, crs: str | None = None) -> CityFile:
    """Read every building of a CityGML file (see the module docstring)."""
    from lxml import etree

    path = Path(path)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True,
                             remove_blank_text=False)
    try:
        tree = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        raise DatasetError(f"{path}: not a CityGML file (not well-formed XML: {exc.msg})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    root = tree.getroot()
    version = citygml_version(root)
    if version is None and _local(root.tag) == "CityModel" and \
            _namespace(root.tag).startswith(PRESTANDARD_PREFIX):
        raise DatasetError(f"{path}: pre-standard CityGML ('{_namespace(root.tag)}') is not "
                           f"supported; convert it to CityGML 1.0, 2.0 or 3.0 first")
    if version is None:
        raise DatasetError(f"{path}: not a CityGML file (root element <{_local(root.tag)}> in "
                           f"namespace '{_namespace(root.tag) or 'none'}', expected a CityGML "
                           f"CityModel)")
    file_crs = crs or _file_crs(root)
    metadata = _file_metadata(tree, root, version)
    index = _IdIndex(root)
    buildings, errors = [], []
    tops = [b for b in root.iter("{*}Building") if _namespace(b.tag).startswith(CITYGML_PREFIX)
            and not any(_local(a.tag) == "Building" for a in b.iterancestors())]
    for n, elem in enumerate(tops):
        bid = _gml_id(elem) or f"#{n}"
        try:
            buildings.append(_read_building(elem, bid, path, index, crs, file_crs))
        except DatasetError as exc:
            errors.append(f"{path}: building {bid}: {exc}")
    if not tops:
        errors.append(f"{path}: no Building in the file")
    return CityFile(str(path), f"CityGML {version}", buildings, errors, file_crs, metadata)


# -- file level ---------------------------------------------------------------------------
def _file_crs(root) -> str | None:
    for child in root:
        if _local(child.tag) == "boundedBy":
            for env in child.iter("{*}Envelope"):
                if env.get("srsName"):
                    return env.get("srsName")
    return _geometry_srs(root)


def _file_metadata(tree, root, version: str) -> dict:
    """Producer comments, the model's name/description, licence-like attributes."""
    meta: dict = {"citygml_version": version}
    comments = [c.text.strip() for c in tree.xpath("/comment()") if c.text and c.text.strip()]
    comments += [c.text.strip() for c in root.iterchildren() if not isinstance(c.tag, str)
                 and c.text and c.text.strip()]
    if comments:
        meta["comments"] = comments
    for child in root:
        ln = _local(child.tag)
        if ln in ("name", "description") and child.text and child.text.strip():
            meta[ln] = child.text.strip()
        elif ln == "metaDataProperty":
            text = " ".join(t.strip() for t in child.itertext() if t.strip())
            if text:
                meta["metaDataProperty"] = text
    licence = OrderedDict()
    for elem in root.iter("{*}stringAttribute", "{*}StringAttribute", "{*}uriAttribute",
                          "{*}UriAttribute"):
        name = elem.get("name") or "".join(
            c.text or "" for c in elem if _local(c.tag) == "name")
        if name and _LICENCE_WORDS.search(name):
            value = "".join(c.text or "" for c in elem if _local(c.tag) == "value").strip()
            if value:
                licence.setdefault(name, value)
    for text in meta.get("comments", []) + [meta.get("description", "")]:
        if _LICENCE_WORDS.search(text):
            licence.setdefault("text", text)
    if licence:
        meta["licence"] = dict(licence)
    return meta


class _IdIndex:
    """gml:id -> element, built on the first xlink:href that needs it."""

    def __init__(self, root):
        self.root, self._ids = root, None

    def get(self, href: str):
        if self._ids is None:
            self._ids = {}
            for key in _GML_IDS:
                for elem in self.root.iterfind(f".//*[@{key}]"):
                    self._ids.setdefault(elem.get(key), elem)
        target = href.split("#", 1)[1] if "#" in href else href
        return self._ids.get(target)


# -- one building -------------------------------------------------------------------------
class _Collector:
    """Walks a building's subtree and gathers (kind, lod) surfaces and their polygons."""

    def __init__(self, index: _IdIndex, bid: str):
        self.index, self.bid = index, bid
        self.surfaces: OrderedDict = OrderedDict()   # (key, lod) -> dict
        self.dropped = 0
        self.skipped: set[str] = set()
        self.part_ids: list[str] = []
        # id() of lxml proxies is stable only while the proxy lives: keep them alive here.
        self._seen_features: dict[int, object] = {}

    # semantic walk
    def walk(self, elem, ctx):
        for child in elem:
            tag = child.tag
            if not isinstance(tag, str) or not _is_citygml(tag):
                continue
            ln = _local(tag)
            if ln in _SKIP:
                continue
            href = child.get(XLINK_HREF)
            target = child
            if href and len(child) == 0:
                target = self.index.get(href)
                if target is None:
                    raise DatasetError(f"<{ln}> refers to '{href}', which is not in the file")
            m = _LOD_GEOMETRY.match(ln)
            if m:
                lod = int(m.group(1))
                if lod == 0:
                    self.skipped.add(ln)
                    continue
                polys = list(self._geometry_node(target, False, 0) if target is not child
                             else self.polygons(child))
                if polys:
                    self._surface(ctx, lod)["polygons"].extend(polys)
                continue
            if ln.startswith("lod") and ln[3:4].isdigit():
                self.skipped.add(re.sub(r"^lod\d", "lodN", ln))   # curves, implicit geometry
                continue
            self._feature_or_children(target, ctx)

    def _feature_or_children(self, elem, ctx):
        ln = _local(elem.tag)
        if ln in _SKIP:
            return
        if ln in _SEMANTIC or ln == "BuildingPart":
            if id(elem) in self._seen_features:
                return
            self._seen_features[id(elem)] = elem
            if ln == "BuildingPart":
                self.part_ids.append(_gml_id(elem) or f"part{len(self.part_ids)}")
                ctx = {"kind": "Unclassified", "key": id(elem), "id": _gml_id(elem),
                       "parent_key": None}
            else:
                kind = _SEMANTIC[ln]
                parent_key = ctx["key"] if kind in ("Window", "Door") else None
                ctx = {"kind": kind, "key": id(elem), "id": _gml_id(elem), "parent_key": parent_key}
        self.walk(elem, ctx)

    def _surface(self, ctx, lod):
        key = (ctx["key"], lod)
        if key not in self.surfaces:
            self.surfaces[key] = {"kind": ctx["kind"], "id": ctx["id"], "lod": lod,
                                  "parent_key": ctx.get("parent_key"), "polygons": []}
        return self.surfaces[key]

    # geometry walk
    def polygons(self, elem, reverse=False, depth=0):
        if depth > 64:
            raise DatasetError("xlink:href references loop")
        for child in elem:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            ln = _local(tag)
            href = child.get(XLINK_HREF)
            if href and len(child) == 0:
                target = self.index.get(href)
                if target is None:
                    raise DatasetError(f"<{ln}> refers to '{href}', which is not in the file")
                yield from self._geometry_node(target, reverse, depth + 1)
                continue
            yield from self._geometry_node(child, reverse, depth)

    def _geometry_node(self, node, reverse, depth):
        ln = _local(node.tag)
        if ln in _POLYGON_TAGS:
            poly = self._polygon(node, reverse)
            if poly is None:
                self.dropped += 1
            else:
                yield poly
        elif ln == "OrientableSurface":
            flip = node.get("orientation", "+").strip() == "-"
            yield from self.polygons(node, reverse ^ flip, depth + 1)
        elif ln in _CURVE_TAGS:
            return
        else:
            yield from self.polygons(node, reverse, depth + 1)

    def _polygon(self, node, reverse) -> Polygon | None:
        pid = _gml_id(node)
        exterior, interiors = None, []
        for child in node:
            ln = _local(child.tag)
            if ln in ("exterior", "outerBoundaryIs"):
                exterior = _ring(child, pid)
            elif ln in ("interior", "innerBoundaryIs"):
                ring = _ring(child, pid)
                if ring is not None:
                    interiors.append(ring)
        if exterior is None:
            return None
        if reverse:
            exterior = exterior[::-1].copy()
            interiors = [r[::-1].copy() for r in interiors]
        return Polygon(exterior, tuple(interiors), pid)


def _dimension(node) -> int:
    for elem in (node,) + tuple(node.iterancestors()):
        dim = elem.get("srsDimension")
        if dim:
            try:
                return int(dim)
            except ValueError:
                raise DatasetError(f"srsDimension '{dim}' is not an integer") from None
    return 3


def _numbers(text: str, pid) -> np.ndarray:
    try:
        values = np.array(text.replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        raise DatasetError(f"polygon {pid or '(no id)'}: coordinates that are not numbers") from None
    if not np.all(np.isfinite(values)):
        raise DatasetError(f"polygon {pid or '(no id)'}: non-finite coordinates")
    return values


def _ring(boundary, pid) -> np.ndarray | None:
    """Vertices float64[N, 3] of the ring inside an exterior / interior element (N >= 3),
    without the closing vertex and repeated vertices; None when degenerate."""
    chunks = []
    for elem in boundary.iter():
        ln = _local(elem.tag)
        if ln == "posList":
            dim = _dimension(elem)
            values = _numbers(elem.text or "", pid)
            if dim not in (2, 3) or len(values) % dim:
                raise DatasetError(f"polygon {pid or '(no id)'}: posList of {len(values)} numbers "
                                   f"does not split into {dim}-D points")
            chunks.append(values.reshape(-1, dim))
        elif ln == "pos":
            values = _numbers(elem.text or "", pid)
            chunks.append(values.reshape(1, -1))
        elif ln == "coordinates":
            values = _numbers(elem.text or "", pid)
            if len(values) % 3:
                raise DatasetError(f"polygon {pid or '(no id)'}: gml:coordinates is not 3-D")
            chunks.append(values.reshape(-1, 3))
    if not chunks:
        return None
    dims = {c.shape[1] for c in chunks}
    if dims != {3}:
        raise DatasetError(f"polygon {pid or '(no id)'}: {min(dims)}-D coordinates (need x y z)")
    pts = np.concatenate(chunks)
    return clean_ring(pts)


def clean_ring(pts: np.ndarray, tol: float = 1e-9) -> np.ndarray | None:
    """Drop repeated consecutive vertices and the closing one; None when under 3 remain."""
    if len(pts) == 0:
        return None
    keep = np.ones(len(pts), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > tol, axis=1)
    pts = pts[keep]
    if len(pts) > 1 and np.all(np.abs(pts[-1] - pts[0]) <= tol):
        pts = pts[:-1]
    return pts if len(pts) >= 3 else None


def _attributes(elem) -> dict:
    attrs = {}
    for child in elem:
        ln = _local(child.tag)
        if ln in ("measuredHeight", "function", "class", "usage", "roofType",
                  "storeysAboveGround", "yearOfConstruction", "name"):
            if child.text and child.text.strip():
                attrs[ln] = child.text.strip()
        elif ln.endswith("Attribute") and child.get("name"):      # CityGML 2.0 generics
            value = "".join(c.text or "" for c in child if _local(c.tag) == "value").strip()
            attrs[child.get("name")] = value
        elif ln == "genericAttribute":                              # CityGML 3.0 generics
            for attr in child:
                name = value = None
                for c in attr:
                    if _local(c.tag) == "name":
                        name = (c.text or "").strip()
                    elif _local(c.tag) == "value":
                        value = (c.text or "").strip()
                if name:
                    attrs[name] = value
    return attrs


def _read_building(elem, bid, path, index, crs_override, file_crs) -> CityBuilding:
    collector = _Collector(index, bid)
    root_ctx = {"kind": "Unclassified", "key": id(elem), "id": bid, "parent_key": None}
    collector._seen_features[id(elem)] = elem
    collector.walk(elem, root_ctx)
    found = [s for s in collector.surfaces.values() if s["polygons"]]
    shell = [s for s in found if s["kind"] in SHELL_KINDS + ("Unclassified",)]
    if not shell:
        what = (f" (only {', '.join(sorted(collector.skipped))})" if collector.skipped else "")
        raise DatasetError(f"no surfaces or solids in LoD1-4{what}")
    lod = max(s["lod"] for s in shell)
    chosen = [s for s in found if s["lod"] == lod]
    notes = []
    # A building-level solid usually references the boundary surfaces' polygons: keep an
    # unclassified polygon only when no semantic surface has it already.
    classified = [p for s in chosen if s["kind"] != "Unclassified" for p in s["polygons"]]
    if classified:
        known_ids = {p.polygon_id for p in classified if p.polygon_id}
        known_keys = {_fingerprint(p) for p in classified}
        for s in chosen:
            if s["kind"] == "Unclassified":
                s["polygons"] = [p for p in s["polygons"] if p.polygon_id not in known_ids
                                 and _fingerprint(p) not in known_keys]
        extra = sum(len(s["polygons"]) for s in chosen if s["kind"] == "Unclassified")
        if extra:
            notes.append(f"{extra} polygons without a semantic surface kept as Unclassified")
    keyed = [(k, s) for k, s in collector.surfaces.items() if s["lod"] == lod and s["polygons"]]
    chosen = [s for _, s in keyed]
    position = {k[0]: i for i, (k, _) in enumerate(keyed)}
    surfaces = [Surface(s["kind"], s["polygons"], lod, s["id"],
                        position.get(s["parent_key"]) if s["parent_key"] is not None else None)
                for s in chosen]
    if collector.dropped:
        notes.append(f"{collector.dropped} degenerate polygon"
                     f"{'s' if collector.dropped > 1 else ''} dropped")
    if collector.skipped:
        notes.append("geometry without surfaces skipped (curves, implicit or LoD0 geometry): "
                     + ", ".join(sorted(collector.skipped)))
    other = sorted({s["lod"] for s in found} - {lod})
    if other:
        notes.append(f"LoD{lod} used; also has LoD {', '.join(map(str, other))}")
    crs = crs_override or _building_crs(elem) or file_crs
    return CityBuilding(bid, str(path), lod, surfaces, crs, parse_epsg(crs),
                        tuple(collector.part_ids), _attributes(elem), notes)


def _building_crs(elem) -> str | None:
    """The CRS of the building's geometry (None: the file's): see :func:`_geometry_srs`."""
    return _geometry_srs(elem)


def _geometry_srs(top) -> str | None:
    """The first ``srsName`` under ``top`` on surface geometry (a solid, surface, polygon,
    ring or ``posList``), else the first on an ``Envelope`` under it, else None. An
    ``srsName`` in an address (the ``gml:Point`` of an ``Address`` / xAL location, often
    EPSG:4326), an appearance or a room, or on a point or curve, says nothing about the
    building's surfaces and is ignored."""
    envelope = None
    for node in top.iterfind(".//*[@srsName]"):
        chain = [node] + list(_ancestors_below(node, top))
        if any(_local(a.tag) in _CRS_IGNORED or "xal" in _namespace(a.tag).lower()
               for a in chain):
            continue
        if _local(node.tag) == "Envelope":
            envelope = envelope or node.get("srsName")
            continue
        return node.get("srsName")
    return envelope


# Where an srsName does not give the CRS of the building's surfaces.
_CRS_IGNORED = (_SKIP - {"Envelope"}) | _CURVE_TAGS | {"xalAddress", "AddressDetails"}


def _ancestors_below(node, top):
    """The ancestors of ``node`` up to, not including, ``top``."""
    for a in node.iterancestors():
        if a is top:
            return
        yield a


def _fingerprint(poly: Polygon) -> tuple:
    """Orientation- and start-independent key of a polygon's exterior (1 mm)."""
    pts = np.round(poly.exterior * 1000).astype(np.int64)
    return tuple(sorted(map(tuple, pts)))
