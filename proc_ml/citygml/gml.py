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
``xlink:href="#id"`` references to any of these or to a whole semantic surface; a
reference to an id that is not in the file skips only that piece, with a note naming it
(the building fails only when nothing is left). Interior rooms, furniture, appearances,
implicit geometry and curves are skipped. A top-level ``BuildingPart`` with no Building
around it (and that no Building refers to) is read as a building of its own, with a note.

The highest LoD with shell geometry is used (openings only exist in LoD3/4); a
BuildingPart with shell geometry only in a lower LoD is added at its own LoD unless it lies
inside what is kept, and a wall / roof / ground kind missing at the LoD used is taken from
a lower one (:func:`_choose_geometry`); notes say what was added and what was not imported.
Degenerate polygons (fewer than 3 distinct vertices) and copies of another polygon of the
shell (within 1 cm, :func:`proc_ml.citygml.geometry.drop_duplicate_polygons`) are dropped
with a note; coordinates that are not numbers, or a ``posList`` whose length is not a
multiple of its dimension, make the building fail with one line, and the other buildings
of the file are still read.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .crs import parse_epsg
from .geometry import closes_holes, drop_duplicate_polygons, share_inside
from .model import OPENING_KINDS, SHELL_KINDS, CityBuilding, CityFile, Polygon, Surface, short

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
    "FloorSurface", "lod0FootPrint", "lod0RoofEdge", "relatedTo", "dynamizer",
})
_LOD_GEOMETRY = re.compile(r"^lod([0-4])(MultiSurface|Solid|Geometry|CompositeSurface|Surface)$")
_POLYGON_TAGS = frozenset({"Polygon", "PolygonPatch", "Triangle", "Rectangle"})
_CURVE_TAGS = frozenset({"LineString", "Curve", "MultiCurve", "CompositeCurve", "Point",
                         "MultiPoint", "OrientableCurve"})
_LICENCE_WORDS = re.compile(r"licen[cs]e|copyright|attribution|rights|urheber|lizenz", re.I)
#: A BuildingPart (or the Building's own geometry) that has shell geometry only below the
#: LoD used is added at its own LoD when at most this share of it lies inside what is kept.
PART_OVERLAP = 0.1
#: Boundary surfaces taken from a lower LoD when the LoD used has none of that kind.
FILL_KINDS = ("WallSurface", "RoofSurface", "GroundSurface")
_SHELL_GEOMETRY = SHELL_KINDS + ("Unclassified",)


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
        raise DatasetError(f"{path}: not a CityGML file (not well-formed XML: "
                           f"{short(exc.msg, 120)})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    root = tree.getroot()
    version = citygml_version(root)
    if version is None and _local(root.tag) == "CityModel" and \
            _namespace(root.tag).startswith(PRESTANDARD_PREFIX):
        raise DatasetError(f"{path}: pre-standard CityGML ('{short(_namespace(root.tag))}') is not "
                           f"supported; convert it to CityGML 1.0, 2.0 or 3.0 first")
    if version is None:
        namespace = short(_namespace(root.tag) or "none", 60)
        raise DatasetError(f"{path}: not a CityGML file (root element "
                           f"<{short(_local(root.tag), 40)}> in namespace '{namespace}', "
                           f"expected a CityGML CityModel)")
    file_crs = crs or _file_crs(root)
    metadata = _file_metadata(tree, root, version)
    index = _IdIndex(root)
    buildings, errors = [], []
    tops = _top_buildings(root)
    for n, elem in enumerate(tops):
        bid = _gml_id(elem) or f"#{n}"
        try:
            buildings.append(_read_building(elem, bid, path, index, crs, file_crs))
        except DatasetError as exc:
            errors.append(f"{path}: building {short(bid, 60)}: {exc}")
    if not tops:
        errors.append(f"{path}: no Building in the file")
    return CityFile(str(path), f"CityGML {version}", buildings, errors, file_crs, metadata)


# -- file level ---------------------------------------------------------------------------
def _top_buildings(root) -> list:
    """The top-level ``Building`` s and, in document order among them, every
    ``BuildingPart`` with no Building / BuildingPart around it that no building refers to
    by ``xlink:href`` (an extract of one part): it is imported as a building of its own."""
    tops = [b for b in root.iter("{*}Building", "{*}BuildingPart")
            if _namespace(b.tag).startswith(CITYGML_PREFIX)
            and not any(_local(a.tag) in ("Building", "BuildingPart") for a in b.iterancestors())]
    referenced = {str(h).split("#", 1)[-1] for b in tops if _local(b.tag) == "Building"
                  for h in b.xpath(".//@*[local-name()='href']")}
    return [b for b in tops if _local(b.tag) == "Building" or _gml_id(b) not in referenced]


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
        self.missing: list[str] = []        # xlink:href targets not in the file (skipped)
        self.part_names: dict[int, str] = {}  # owner key of a BuildingPart -> its id
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
            m = _LOD_GEOMETRY.match(ln)
            if m and m.group(1) == "0":
                self.skipped.add(ln)
                continue
            if not m and ln.startswith("lod") and ln[3:4].isdigit():
                self.skipped.add(re.sub(r"^lod\d", "lodN", ln))   # curves, implicit geometry
                continue
            href = child.get(XLINK_HREF)
            target = child
            if href and len(child) == 0:
                target = self.index.get(href)
                if target is None:          # a dangling reference: skip only that piece
                    self.missing.append(href)
                    continue
            if m:
                polys = list(self._geometry_node(target, False, 0) if target is not child
                             else self.polygons(child))
                if polys:
                    self._surface(ctx, int(m.group(1)))["polygons"].extend(polys)
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
                self.part_names[id(elem)] = self.part_ids[-1]
                ctx = {"kind": "Unclassified", "key": id(elem), "id": _gml_id(elem),
                       "parent_key": None, "owner": id(elem)}
            else:
                kind = _SEMANTIC[ln]
                parent_key = ctx["key"] if kind in ("Window", "Door") else None
                ctx = {"kind": kind, "key": id(elem), "id": _gml_id(elem), "parent_key": parent_key,
                       "owner": ctx["owner"]}
        self.walk(elem, ctx)

    def _surface(self, ctx, lod):
        key = (ctx["key"], lod)
        if key not in self.surfaces:
            self.surfaces[key] = {"kind": ctx["kind"], "id": ctx["id"], "lod": lod, "key": key,
                                  "parent_key": ctx.get("parent_key"), "owner": ctx["owner"],
                                  "polygons": []}
        return self.surfaces[key]

    # geometry walk
    def polygons(self, elem, reverse=False, depth=0):
        if depth > 64:
            raise DatasetError("xlink:href references loop")
        for child in elem:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            href = child.get(XLINK_HREF)
            if href and len(child) == 0:
                target = self.index.get(href)
                if target is None:          # a dangling reference: skip only that polygon
                    self.missing.append(href)
                    continue
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
                raise DatasetError(f"srsDimension '{short(dim, 20)}' is not an integer") from None
    return 3


def _pid(pid) -> str:
    return short(pid, 40) if pid else "(no id)"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(text: str, pid) -> np.ndarray:
    try:
        values = np.array(text.replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        bad = next((v for v in text.replace(",", " ").split() if not _is_number(v)), "")
        raise DatasetError(f"polygon {_pid(pid)}: coordinates that are not numbers "
                           f"('{short(bad, 20)}')") from None
    if not np.all(np.isfinite(values)):
        raise DatasetError(f"polygon {_pid(pid)}: non-finite coordinates")
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
                raise DatasetError(f"polygon {_pid(pid)}: posList of {len(values)} numbers "
                                   f"does not split into {short(dim, 20)}-D points")
            chunks.append(values.reshape(-1, dim))
        elif ln == "pos":
            values = _numbers(elem.text or "", pid)
            chunks.append(values.reshape(1, -1))
        elif ln == "coordinates":
            values = _numbers(elem.text or "", pid)
            if len(values) % 3:
                raise DatasetError(f"polygon {_pid(pid)}: gml:coordinates is not 3-D")
            chunks.append(values.reshape(-1, 3))
    if not chunks:
        return None
    dims = {c.shape[1] for c in chunks}
    if dims != {3}:
        raise DatasetError(f"polygon {_pid(pid)}: {min(dims)}-D coordinates (need x y z)")
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
    root_key = id(elem)
    root_ctx = {"kind": "Unclassified", "key": root_key, "id": bid, "parent_key": None,
                "owner": root_key}
    collector._seen_features[root_key] = elem
    orphan = _local(elem.tag) == "BuildingPart"
    if orphan:                  # a BuildingPart with no Building around it
        collector.part_ids.append(bid)
        collector.part_names[root_key] = bid
    collector.walk(elem, root_ctx)
    _drop_solid_references(collector.surfaces.values())
    found = [s for s in collector.surfaces.values() if s["polygons"]]
    shell = [s for s in found if s["kind"] in _SHELL_GEOMETRY]
    if not shell:
        what = [f"only {', '.join(sorted(collector.skipped))}"] if collector.skipped else []
        if collector.missing:
            what.append(_missing_text(collector.missing))
        raise DatasetError("no surfaces or solids in LoD1-4" +
                           (f" ({'; '.join(what)})" if what else ""))
    lod = max(s["lod"] for s in shell)
    kept, lod_notes = _choose_geometry(found, shell, lod, collector.part_names)
    position = {s["key"]: i for i, s in enumerate(kept)}
    surfaces = [Surface(s["kind"], s["polygons"], s["lod"], s["id"],
                        position.get((s["parent_key"], s["lod"]))
                        if s["parent_key"] is not None else None)
                for s in kept]
    notes = []
    unclassified = sum(len(s["polygons"]) for s in kept if s["kind"] == "Unclassified"
                       and s["has_classified"])
    if unclassified:
        notes.append(f"{unclassified} polygons without a semantic surface kept as Unclassified")
    if collector.dropped:
        notes.append(f"{collector.dropped} degenerate polygon"
                     f"{'s' if collector.dropped > 1 else ''} dropped")
    notes += lod_notes
    if collector.skipped:
        notes.append("geometry without surfaces skipped (curves, implicit or LoD0 geometry): "
                     + ", ".join(sorted(collector.skipped)))
    notes += _other_lods(found, kept, lod)
    surfaces, duplicates = drop_duplicate_polygons(surfaces, owners=[s["owner"] for s in kept])
    if duplicates:
        notes.append(duplicates)
    if collector.missing:
        notes.append(f"{_missing_text(collector.missing)} skipped")
    if orphan:
        notes.append("a BuildingPart with no Building around it: imported as a building")
    crs = crs_override or _building_crs(elem) or file_crs
    return CityBuilding(bid, str(path), lod, surfaces, crs, parse_epsg(crs),
                        tuple(collector.part_ids), _attributes(elem), notes)


def _drop_solid_references(surfaces) -> None:
    """A building-level solid usually refers to the boundary surfaces' polygons: per LoD,
    an unclassified polygon is kept only when no semantic surface of that LoD has it
    already (same gml:id, else the same vertices at 1 mm). Marks every surface with
    ``has_classified`` (its LoD has semantic polygons)."""
    by_lod: dict[int, list] = {}
    for s in surfaces:
        by_lod.setdefault(s["lod"], []).append(s)
    for group in by_lod.values():
        classified = [p for s in group if s["kind"] != "Unclassified" for p in s["polygons"]]
        for s in group:
            s["has_classified"] = bool(classified)
        if not classified:
            continue
        known_ids = {p.polygon_id for p in classified if p.polygon_id}
        known_keys = {_fingerprint(p) for p in classified}
        for s in group:
            if s["kind"] == "Unclassified":
                s["polygons"] = [p for p in s["polygons"] if p.polygon_id not in known_ids
                                 and _fingerprint(p) not in known_keys]


def _choose_geometry(found, shell, lod, part_names) -> tuple[list, list[str]]:
    """The surfaces to import (in file order) and notes on what came from a lower LoD.

    Everything at ``lod`` (the highest LoD with shell geometry) is kept. A BuildingPart
    (or the Building's own geometry) with shell geometry only at lower LoDs is added at its
    highest one when at most ``PART_OVERLAP`` of it lies inside what is kept (a wing
    modelled in LoD2 beside a LoD3 main part); one inside it (a generalised copy) is not.
    Then, per BuildingPart / Building, a wall, roof or ground kind (``FILL_KINDS``) that
    its semantic surfaces lack at the LoD used is taken from its highest lower LoD that has
    it (a LoD3 facade model whose roof is only in LoD2), with the openings in those
    surfaces -- not when it has unclassified geometry there (nothing says what is missing).
    """
    owners = list(dict.fromkeys(s["owner"] for s in found))
    shell_lods = {o: {s["lod"] for s in shell if s["owner"] == o} for o in owners}
    used = {o: lod for o in owners if lod in shell_lods[o]}
    kept = {id(s) for s in found if used.get(s["owner"]) == s["lod"]}
    notes = []

    def kept_shell():
        return [p for s in found if id(s) in kept and s["kind"] in _SHELL_GEOMETRY + OPENING_KINDS
                for p in s["polygons"]]

    for o in owners:
        if o in used or not shell_lods[o]:
            continue
        low = max(shell_lods[o])
        mine = [s for s in found if s["owner"] == o and s["lod"] == low]
        polys = [p for s in mine if s["kind"] in _SHELL_GEOMETRY for p in s["polygons"]]
        name = (f"BuildingPart {short(part_names[o], 60)}" if o in part_names
                else "the Building's own geometry")
        inside = share_inside(kept_shell(), polys)
        if inside <= PART_OVERLAP:
            used[o] = low
            kept.update(id(s) for s in mine)
            notes.append(f"{name} only in LoD{low}: included at LoD{low} ({len(polys)} polygons)")
        elif o in part_names:
            notes.append(f"{name} only in LoD{low}, {inside:.0%} of it inside the LoD{lod} "
                         f"geometry: not included")
    for o, u in used.items():
        mine = [s for s in found if s["owner"] == o and s["lod"] == u]
        if any(s["kind"] == "Unclassified" for s in mine) or \
                not any(s["kind"] in SHELL_KINDS for s in mine):
            continue
        for kind in FILL_KINDS:
            if any(s["kind"] == kind for s in mine):
                continue
            lower = [s for s in found if s["owner"] == o and s["kind"] == kind and s["lod"] < u]
            if not lower:
                continue
            low = max(s["lod"] for s in lower)
            take = [s for s in lower if s["lod"] == low]
            keys = {s["key"][0] for s in take}
            take += [s for s in found if s["lod"] == low and s["parent_key"] in keys]
            n = sum(len(s["polygons"]) for s in take)
            where = f" of BuildingPart {short(part_names[o], 60)}" if o in part_names else ""
            have = [p for s in found if id(s) in kept and s["owner"] == o
                    and s["kind"] in _SHELL_GEOMETRY + OPENING_KINDS for p in s["polygons"]]
            if closes_holes(have, [p for s in take for p in s["polygons"]]):
                kept.update(id(s) for s in take)
                notes.append(f"no {kind}{where} in LoD{u}: taken from LoD{low} ({n} polygon"
                             f"{'s' if n > 1 else ''})")
            else:
                notes.append(f"no {kind}{where} in LoD{u}; the LoD{low} one would not close "
                             f"the shell: not included")
    return [s for s in found if id(s) in kept], notes


def _other_lods(found, kept, lod) -> list[str]:
    """One note naming the other LoDs and how many of their polygons were not imported."""
    kept_ids = {id(s) for s in kept}
    dropped: dict[int, int] = {}
    for s in found:
        if id(s) not in kept_ids:
            dropped[s["lod"]] = dropped.get(s["lod"], 0) + len(s["polygons"])
    if not dropped:
        return []
    parts = [f"LoD {k} ({n} polygon{'s' if n > 1 else ''})" for k, n in sorted(dropped.items())]
    return [f"LoD{lod} used; also has {' and '.join(parts)}, not imported"]


def _missing_text(missing: list[str]) -> str:
    """'2 xlink:href references to ids not in the file: '#a', '#b'' (at most 3 named)."""
    names = list(dict.fromkeys(missing))
    shown = ", ".join(f"'{short(h, 40)}'" for h in names[:3])
    more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
    n = len(missing)
    return (f"{n} xlink:href reference{'s' if n > 1 else ''} to ids not in the file: "
            f"{shown}{more}")


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
