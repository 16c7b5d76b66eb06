"""CityJSON 1.0 / 1.1 / 2.0 buildings (and CityJSON text sequences, ``.city.jsonl``) with the
standard library's ``json``.

Why not cjio or cityjson-lib: CityJSON is plain JSON with a small, fully specified
structure (an object of CityObjects, a shared vertex list, ``transform``, ``semantics``);
decoding it takes ~150 lines here, works the same for every version from 1.0 to 2.0, and
adds no dependency (cjio would bring click and its own object model, and reads 2.0 only,
older files need ``cjio upgrade`` first).

Per top-level ``Building`` (or a ``BuildingPart`` whose Building is not in the file, as in
an extract of one part, or that names no parent at all; its ``BuildingPart`` children --
listed in its ``children`` or naming it in their ``parents`` -- merged in,
``BuildingInstallation`` children kept apart; rooms, storeys, units and furniture skipped):
``MultiSurface`` / ``CompositeSurface`` / ``Solid`` / ``MultiSolid`` / ``CompositeSolid``
geometries of the highest LoD (a part with geometry only at a lower LoD, or a wall / roof /
ground kind missing there, is taken from its lower LoD as in CityGML, with a note), with
their ``semantics`` (``WallSurface``, ``RoofSurface``,
``GroundSurface``, ``OuterCeilingSurface``, ``OuterFloorSurface``, ``ClosureSurface``,
``Window``, ``Door``; surfaces without semantics -- no ``semantics``, or a null in
``values`` for the geometry, a solid, a shell or a surface -- are ``Unclassified``, interior
ones are skipped). Vertices are decoded with ``transform`` (``scale`` and ``translate``)
when the file has one; a UTF-8 byte-order mark is allowed. A building whose geometry is
malformed (bad vertex index, wrong nesting, semantic ``values`` that do not match the
boundaries) fails alone with one line; the other buildings of the file are still read.
Polygons that copy another polygon of the shell (within 1 cm) are dropped with a note.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .crs import parse_epsg
from .geometry import closes_holes, drop_duplicate_polygons, share_inside
from .gml import FILL_KINDS, PART_OVERLAP, clean_ring
from .model import (OPENING_KINDS, SHELL_KINDS, CityBuilding, CityFile, Polygon, Surface,
                    keep_surfaces, short)

SUPPORTED_VERSIONS = ("1.0", "1.1", "2.0")
_KIND = {k: k for k in SHELL_KINDS + OPENING_KINDS}
_INTERIOR = {"InteriorWallSurface", "CeilingSurface", "FloorSurface"}
_SKIP_CHILDREN = {"BuildingRoom", "BuildingStorey", "BuildingUnit", "BuildingFurniture",
                  "BuildingConstructiveElement"}
_DEPTH = {"MultiSurface": 1, "CompositeSurface": 1, "Solid": 2, "MultiSolid": 3,
          "CompositeSolid": 3}
_LICENCE_WORDS = re.compile(r"licen[cs]e|copyright|attribution|rights", re.I)


def read_cityjson(path: str | Path, crs: str | None = None) -> CityFile:
    """Read every building of a CityJSON file (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig") as fh:   # a BOM is allowed
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not a CityJSON file (line {exc.lineno}: invalid JSON, "
                           f"{short(exc.msg)})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a CityJSON file (not UTF-8 text)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if isinstance(doc, dict) and doc.get("type") == "CityJSONFeature":
        raise DatasetError(f"{path}: a single CityJSONFeature, without the CityJSON header that "
                           f"gives its transform and CRS; import the whole CityJSONL sequence "
                           f"(.city.jsonl)")
    version = _check_header(doc, path)
    city = _read_document(doc, path, crs, version)
    if not city.buildings and not city.errors:
        city.errors.append(f"{path}: no Building in the file")
    return city


def read_cityjson_seq(path: str | Path, crs: str | None = None) -> CityFile:
    """Read every building of a CityJSON Text Sequence (``.city.jsonl``, CityJSON 1.1 / 2.0:
    a ``CityJSON`` header line with the ``transform``, CRS and metadata, then one
    ``CityJSONFeature`` per line with its own ``vertices``; 3D BAG's downloads and API
    give this). A bad line fails alone, like a bad building."""
    path = Path(path)
    buildings, errors, header, version, city = [], [], None, "", None
    try:
        with open(path, encoding="utf-8-sig") as fh:   # a BOM is allowed
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    if header is None:
                        raise DatasetError(f"{path}: not a CityJSON text sequence (line "
                                           f"{lineno}: {short(exc.msg)}; one JSON object per "
                                           f"line)") from None
                    errors.append(f"{path}: line {lineno}: invalid JSON ({short(exc.msg)})")
                    continue
                if header is None:
                    version = _check_header(item, path, sequence=True)
                    header = item
                    continue
                if not isinstance(item, dict) or item.get("type") != "CityJSONFeature":
                    errors.append(f"{path}: line {lineno}: not a CityJSONFeature")
                    continue
                doc = dict(header, CityObjects=item.get("CityObjects"),
                           vertices=item.get("vertices", []))
                try:
                    city = _read_document(doc, path, crs, version)
                except DatasetError as exc:
                    errors.append(f"{path}: line {lineno}: {str(exc).removeprefix(f'{path}: ')}")
                    continue
                buildings += city.buildings
                errors += city.errors
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a CityJSON text sequence (not UTF-8 text)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if header is None:
        raise DatasetError(f"{path}: empty file")
    if not buildings and not errors:
        errors.append(f"{path}: no Building in the file")
    file_crs = crs or _reference_system(header.get("metadata") or {})
    metadata = city.metadata if city else _metadata(header, version)
    return CityFile(str(path), f"CityJSONSeq {version}", buildings, errors, file_crs, metadata)


def _check_header(doc, path: Path, sequence: bool = False) -> str:
    """The version of a CityJSON object (a file, or a sequence's first line); else one line."""
    what = "the first line of a CityJSON text sequence" if sequence else "a CityJSON file"
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise DatasetError(f"{path}: not {what} (no \"type\": \"CityJSON\" at top level)")
    version = str(doc.get("version", ""))
    if not any(version == v or version.startswith(v + ".") for v in SUPPORTED_VERSIONS):
        raise DatasetError(f"{path}: CityJSON version '{short(version, 20)}' is not supported "
                           f"(expected "
                           f"{', '.join(SUPPORTED_VERSIONS)})")
    return version


def _metadata(doc: dict, version: str) -> dict:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    metadata = {"cityjson_version": version}
    if meta:
        metadata["cityjson_metadata"] = meta
    licence = {}
    _find_licence(doc, licence, depth=0)
    if licence:
        metadata["licence"] = licence
    return metadata


def _read_document(doc: dict, path: Path, crs: str | None, version: str) -> CityFile:
    """The buildings of one CityJSON object (a file, or one feature of a sequence)."""
    objects = doc.get("CityObjects")
    if not isinstance(objects, dict):
        raise DatasetError(f"{path}: field 'CityObjects' " + (
            "is missing" if objects is None else f"must be an object (id -> city object), got "
                                                 f"{type(objects).__name__}"))
    try:
        vertices = _vertices(doc)
    except (TypeError, ValueError, KeyError) as exc:
        raise DatasetError(f"{path}: malformed 'vertices' or 'transform' ({short(exc)})") from None
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    file_crs = crs or _reference_system(meta)

    buildings, errors = [], []
    kids = _children(objects)
    parents_of: dict[str, list[str]] = {}
    for parent, children in kids.items():
        for child in children:
            parents_of.setdefault(child, []).append(parent)
    tops = [(oid, obj) for oid, obj in objects.items() if isinstance(obj, dict)
            and obj.get("type") == "Building"
            and not _has_building_parent(oid, parents_of, objects)]
    notes = {}
    for parent, children in _orphan_parts(objects, parents_of).items():
        if children == [parent]:          # a BuildingPart that names no parent: on its own
            tops.append((parent, objects[parent]))
            notes[parent] = "a BuildingPart with no parent Building: imported as a building"
        else:
            tops.append((parent, {"type": "Building", "children": children}))
            notes[parent] = (("a BuildingPart" if len(children) == 1 else
                              f"{len(children)} BuildingParts") +
                             " whose Building is not in the file: imported as a building")
    for oid, obj in tops:
        try:
            building = _read_building(oid, obj, objects, kids, vertices, path, file_crs)
            if oid in notes:
                building.notes.append(notes[oid])
            buildings.append(building)
        except DatasetError as exc:
            errors.append(f"{path}: building {short(oid, 60)}: {exc}")
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            errors.append(f"{path}: building {short(oid, 60)}: malformed geometry "
                          f"({type(exc).__name__}: {short(exc)})")
    return CityFile(str(path), f"CityJSON {version}", buildings, errors, file_crs,
                    _metadata(doc, version))


def _vertices(doc: dict) -> np.ndarray:
    raw = doc.get("vertices", [])
    verts = np.asarray(raw, dtype=np.float64).reshape(-1, 3) if len(raw) else np.zeros((0, 3))
    transform = doc.get("transform")
    if transform is not None:
        scale = np.asarray(transform["scale"], dtype=np.float64).reshape(3)
        translate = np.asarray(transform["translate"], dtype=np.float64).reshape(3)
        verts = verts * scale + translate
    if not np.all(np.isfinite(verts)):
        raise ValueError("non-finite coordinates")
    return verts


def _reference_system(meta: dict) -> str | None:
    value = meta.get("referenceSystem")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, (int, float)):
        return f"EPSG:{int(value)}"
    return None


def _find_licence(node, out: dict, depth: int) -> None:
    """Licence-like keys anywhere in the metadata / extension properties (not CityObjects)."""
    if depth > 6 or not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("CityObjects", "vertices", "appearance", "geometry-templates"):
            continue
        if _LICENCE_WORDS.search(key) and isinstance(value, (str, int, float)):
            out.setdefault(key, value)
        elif isinstance(value, dict):
            _find_licence(value, out, depth + 1)


def _children(objects: dict) -> dict[str, list[str]]:
    """The child ids of every object: its ``children`` and the objects that name it in their
    ``parents`` (files write both, or only one of them), each child once."""
    kids: dict[str, list[str]] = {}

    def add(parent, child):
        if isinstance(parent, str) and isinstance(child, str) and parent != child and \
                isinstance(objects.get(parent), dict) and isinstance(objects.get(child), dict) \
                and child not in kids.setdefault(parent, []):
            kids[parent].append(child)

    for oid, obj in objects.items():
        if not isinstance(obj, dict):
            continue
        for child in _id_list(obj.get("children")):
            add(oid, child)
        for parent in _id_list(obj.get("parents")):
            add(parent, oid)
    return kids


def _id_list(value) -> list:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _has_building_parent(oid: str, parents_of: dict, objects: dict) -> bool:
    return any(objects[p].get("type") in ("Building", "BuildingPart")
               for p in parents_of.get(oid, []))


def _orphan_parts(objects: dict, parents_of: dict) -> dict[str, list[str]]:
    """BuildingParts that no Building / BuildingPart in the file holds (an extract of one
    part), grouped by their missing parent's id; a part that names no missing parent is a
    group of its own, under its own id."""
    groups: dict[str, list[str]] = {}
    for oid, obj in objects.items():
        if (isinstance(obj, dict) and obj.get("type") == "BuildingPart"
                and not _has_building_parent(oid, parents_of, objects)):
            missing = [p for p in _id_list(obj.get("parents")) if p not in objects]
            groups.setdefault(missing[0] if missing else oid, []).append(oid)
    return groups


def _lod_value(geom: dict) -> float:
    lod = geom.get("lod")
    try:
        return float(lod)
    except (TypeError, ValueError):
        raise DatasetError(f"geometry without a valid 'lod' ({short(repr(lod), 40)})") from None


def _read_building(oid, obj, objects, kids, vertices, path, crs) -> CityBuilding:
    # the building and its descendants: (object id, kind-for-unsemantic, object)
    members, part_ids, stack, seen = [], [], [(oid, obj)], {oid}
    while stack:
        cid, cobj = stack.pop(0)
        ctype = cobj.get("type")
        if ctype in _SKIP_CHILDREN:
            continue
        members.append((cid, "BuildingInstallation" if ctype == "BuildingInstallation"
                        else "Unclassified", cobj))
        if ctype == "BuildingPart":
            part_ids.append(cid)
        for child in kids.get(cid) or _id_list(cobj.get("children")):
            if child not in seen and isinstance(objects.get(child), dict):
                seen.add(child)
                stack.append((child, objects[child]))
    geoms = [(cid, base, g) for cid, base, cobj in members
             for g in (cobj.get("geometry") or []) if isinstance(g, dict)
             and g.get("type") in _DEPTH]
    shell_geoms = [(cid, base, g) for cid, base, g in geoms if base != "BuildingInstallation"]
    if not shell_geoms:
        other = {g.get("type") for _, _, cobj in members for g in (cobj.get("geometry") or [])
                 if isinstance(g, dict)}
        what = f" (only {short(', '.join(sorted(map(str, other))))})" if other else ""
        raise DatasetError(f"no surfaces or solids{what}")
    best = max(_lod_value(g) for _, _, g in shell_geoms)
    if best < 1:
        raise DatasetError(f"only LoD{best:g} geometry (footprints have no height)")
    surfaces, n_dropped, notes, used, owners = _choose_geometry(geoms, shell_geoms, best, vertices,
                                                                objects)
    if n_dropped:
        notes.insert(0, f"{n_dropped} degenerate polygon{'s' if n_dropped > 1 else ''} dropped")
    other: dict[float, int] = {}
    for _, _, g in geoms:
        left = _count_surfaces(g) - used.get(id(g), 0)
        if left > 0:
            other[_lod_value(g)] = other.get(_lod_value(g), 0) + left
    if other:
        parts = [f"LoD {v:g} ({n} polygon{'s' if n != 1 else ''})"
                 for v, n in sorted(other.items())]
        notes.insert(0, f"LoD{best:g} used; also has {' and '.join(parts)}, not imported")
    surfaces, duplicates = drop_duplicate_polygons(surfaces, owners=owners)
    if duplicates:
        notes.append(duplicates)
    attrs = obj.get("attributes") if isinstance(obj.get("attributes"), dict) else {}
    return CityBuilding(oid, str(path), int(best), surfaces, crs, parse_epsg(crs),
                        tuple(part_ids), dict(attrs), notes)


def _choose_geometry(geoms, shell_geoms, best, vertices, objects):
    """``(surfaces, degenerate polygons dropped, notes, {id(geometry): surfaces used},
    the city object of each surface)``:
    the rule of :func:`proc_ml.citygml.gml._choose_geometry`, per city object (the Building
    and each BuildingPart): everything at ``best``; an object whose shell geometry is only
    at lower LoDs (>= 1) at its highest one, when at most ``PART_OVERLAP`` of it lies inside
    what is kept; then a wall / roof / ground kind its semantic surfaces lack at the LoD
    used, from its highest lower LoD that has it (with the openings in those surfaces)."""
    surfaces: list[Surface] = []
    owner_of: list[str] = []            # the city object of each surface
    used: dict[int, int] = {}
    notes: list[str] = []
    dropped = 0
    shell_kinds = SHELL_KINDS + ("Unclassified",)

    def build(cid, base, geom):
        return _geometry_surfaces(cid, base, geom, vertices, int(_lod_value(geom)), 0)

    def append(cid, made, n_degenerate, geom, n_used=None):
        nonlocal dropped
        offset = len(surfaces)
        for s in made:
            if s.parent is not None:
                s.parent += offset
        surfaces.extend(made)
        owner_of.extend([cid] * len(made))
        dropped += n_degenerate
        used[id(geom)] = used.get(id(geom), 0) + (_count_surfaces(geom) if n_used is None
                                                  else n_used)

    def name(cid):
        obj = objects.get(cid) if isinstance(objects.get(cid), dict) else {}
        return (f"BuildingPart {short(cid, 60)}" if obj.get("type") == "BuildingPart"
                else "the Building's own geometry")

    owners = list(dict.fromkeys(cid for cid, _, _ in shell_geoms))
    lods = {o: {_lod_value(g) for cid, _, g in shell_geoms if cid == o} for o in owners}
    chosen = {o: best for o in owners if best in lods[o]}
    for cid, base, geom in geoms:
        if _lod_value(geom) == best:
            append(cid, *build(cid, base, geom), geom)
    for o in owners:
        low = max((v for v in lods[o] if v >= 1), default=None)
        if o in chosen or low is None:
            continue
        mine = [m for m in shell_geoms if m[0] == o and _lod_value(m[2]) == low]
        try:
            built = [(build(*m), m[2]) for m in mine]
        except DatasetError as exc:
            notes.append(f"{name(o)} only in LoD{low:g}, which could not be read ({exc}): "
                         f"not included")
            continue
        polys = [p for (made, _), _ in built for s in made if s.kind in shell_kinds
                 for p in s.polygons]
        kept = [p for s in surfaces if s.kind in shell_kinds + OPENING_KINDS for p in s.polygons]
        inside = share_inside(kept, polys)
        if inside <= PART_OVERLAP:
            chosen[o] = low
            for (made, n), geom in built:
                append(o, made, n, geom)
            notes.append(f"{name(o)} only in LoD{low:g}: included at LoD{low:g} "
                         f"({len(polys)} polygons)")
        elif name(o).startswith("BuildingPart"):
            notes.append(f"{name(o)} only in LoD{low:g}, {inside:.0%} of it inside the "
                         f"LoD{best:g} geometry: not included")
    for o, u in chosen.items():
        mine = [s for s, w in zip(surfaces, owner_of) if w == o]
        if any(s.kind == "Unclassified" for s in mine) or not any(s.kind in SHELL_KINDS
                                                                   for s in mine):
            continue
        for kind in FILL_KINDS:
            if any(s.kind == kind for s in mine):
                continue
            for low in sorted((v for v in lods[o] if 1 <= v < u), reverse=True):
                try:
                    built = [(build(*m)[0], m[2]) for m in shell_geoms
                             if m[0] == o and _lod_value(m[2]) == low]
                except DatasetError:
                    continue
                taken = []
                for made, geom in built:
                    keep = [s.kind == kind for s in made]
                    keep = [k or (s.kind in OPENING_KINDS and s.parent is not None
                                  and keep[s.parent]) for k, s in zip(keep, made)]
                    taken.append((keep_surfaces(made, keep), geom))
                n = sum(len(s.polygons) for t, _ in taken for s in t)
                if not n:
                    continue
                where = f" of {name(o)}" if name(o).startswith("BuildingPart") else ""
                have = [p for s, w in zip(surfaces, owner_of) if w == o
                        and s.kind in shell_kinds + OPENING_KINDS for p in s.polygons]
                if closes_holes(have, [p for t, _ in taken for s in t for p in s.polygons]):
                    for t, geom in taken:
                        append(o, t, 0, geom, sum(len(s.polygons) for s in t))
                    notes.append(f"no {kind}{where} in LoD{u:g}: taken from LoD{low:g} ({n} "
                                 f"polygon{'s' if n > 1 else ''})")
                else:
                    notes.append(f"no {kind}{where} in LoD{u:g}; the LoD{low:g} one would not "
                                 f"close the shell: not included")
                break
    return surfaces, dropped, notes, used, owner_of


def _count_surfaces(geom: dict) -> int:
    """How many surfaces a geometry's boundaries hold (0 when they are malformed)."""
    try:
        return len(_flatten(geom.get("boundaries"), _DEPTH[geom["type"]]))
    except (DatasetError, TypeError, KeyError):
        return 0


def _geometry_surfaces(cid, base, geom, vertices, lod, offset) -> tuple[list[Surface], int]:
    """Surfaces of one geometry, one per semantic object (plus one for no semantics)."""
    depth = _DEPTH[geom["type"]]
    boundaries = geom.get("boundaries")
    if not isinstance(boundaries, list):
        raise DatasetError(f"{geom['type']} " + ("without 'boundaries'" if boundaries is None else
                                                f"'boundaries' must be an array, got "
                                                f"{type(boundaries).__name__}"))
    polys = _flatten(boundaries, depth)                      # list of [ring, ring...]
    semantics = geom.get("semantics") if isinstance(geom.get("semantics"), dict) else None
    values = [None] * len(polys)
    sem_surfaces = []
    if semantics is not None:
        sem_surfaces = semantics.get("surfaces") or []
        if not isinstance(sem_surfaces, list):
            raise DatasetError(f"semantics 'surfaces' must be an array, got "
                               f"{type(sem_surfaces).__name__}")
        values = _semantic_values(semantics.get("values"), boundaries, depth, len(sem_surfaces))
    groups: dict = {}
    dropped = 0
    for rings, value in zip(polys, values):
        kind, key = base, None
        if value is not None and base != "BuildingInstallation":
            sem = sem_surfaces[value]
            stype = sem.get("type", "") if isinstance(sem, dict) else ""
            if stype in _INTERIOR:
                continue
            kind, key = _KIND.get(stype, "Unclassified"), value
        poly = _polygon(rings, vertices)
        if poly is None:
            dropped += 1
            continue
        groups.setdefault((kind, key), []).append(poly)
    out, index = [], {}
    for (kind, key), plist in groups.items():
        index[key] = offset + len(out)
        out.append(Surface(kind, plist, lod, f"{cid}" if key is None else f"{cid}/{key}"))
    for s, ((kind, key), _) in zip(out, groups.items()):      # openings -> their wall / roof
        if kind in OPENING_KINDS and key is not None:
            sem = sem_surfaces[key]
            parent = sem.get("parent") if isinstance(sem, dict) else None
            if _is_index(parent) and int(parent) in index:
                s.parent = index[int(parent)]
    return out, dropped


def _flatten(boundaries, depth: int) -> list:
    """The surfaces (lists of rings) of a boundary array nested ``depth`` levels."""
    items = [boundaries]
    for _ in range(depth):
        items = [x for item in items for x in item]
    for surface in items:
        if not isinstance(surface, list) or not surface or not all(isinstance(r, list) for r in surface):
            raise DatasetError("boundaries are not nested as the geometry type says")
    return items


_VALUE_UNITS = ("surfaces", "shells", "solids")


def _is_index(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and float(value).is_integer())


def _semantic_values(values, boundaries, depth: int, n_surfaces: int) -> list:
    """One semantic surface index (or None: no semantics) per surface of ``boundaries``, in
    :func:`_flatten`'s order. ``values`` is nested like the boundaries, one level less; a
    null (CityJSON allows it for the whole geometry, a solid, a shell or a surface) means
    no semantics for everything below it. A ``values`` array that does not match the
    boundaries, or an entry that is not an index into ``surfaces``, is one line."""
    out: list = []

    def walk(vals, bounds, level, where):
        if vals is None:
            out.extend([None] * len(_flatten(bounds, level + 1)))
            return
        name = f"semantics 'values{where}'"
        if not isinstance(vals, list):
            raise DatasetError(f"{name} must be an array or null, got {type(vals).__name__}")
        if len(vals) != len(bounds):
            unit = _VALUE_UNITS[level][:-1] if len(bounds) == 1 else _VALUE_UNITS[level]
            raise DatasetError(f"{name} has {len(vals)} entries for {len(bounds)} {unit} in the "
                               f"boundaries")
        for i, (v, b) in enumerate(zip(vals, bounds)):
            if level > 0:
                walk(v, b, level - 1, f"{where}[{i}]")
            elif v is None:
                out.append(None)
            elif _is_index(v) and 0 <= int(v) < n_surfaces:
                out.append(int(v))
            else:
                raise DatasetError(f"semantics 'values{where}[{i}]' is "
                                   f"{short(json.dumps(v), 40)}, not an "
                                   f"index into the {n_surfaces} semantic surfaces")

    walk(values, boundaries, depth - 1, "")
    return out


def _polygon(rings, vertices) -> Polygon | None:
    out = []
    for ring in rings:
        idx = np.asarray(ring, dtype=np.int64)
        if idx.ndim != 1:
            raise DatasetError("a ring is not a list of vertex indices")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(vertices)):
            bad = int(idx.max() if idx.max() >= len(vertices) else idx.min())
            raise DatasetError(f"vertex index {bad} out of range (the file has {len(vertices)} "
                               f"vertices)")
        out.append(clean_ring(vertices[idx]))
    if not out or out[0] is None:
        return None
    return Polygon(out[0], tuple(r for r in out[1:] if r is not None))
