"""CityJSON 1.0 / 1.1 / 2.0 buildings with the standard library's ``json``.

Why not cjio or cityjson-lib: CityJSON is plain JSON with a small, fully specified
structure (an object of CityObjects, a shared vertex list, ``transform``, ``semantics``);
decoding it takes ~150 lines here, works the same for every version from 1.0 to 2.0, and
adds no dependency (cjio would bring click and its own object model, and reads 2.0 only,
older files need ``cjio upgrade`` first).

Per top-level ``Building`` (its ``BuildingPart`` children merged in, ``BuildingInstallation``
children kept apart; rooms, storeys, units and furniture skipped): ``MultiSurface`` /
``CompositeSurface`` / ``Solid`` / ``MultiSolid`` / ``CompositeSolid`` geometries of the
highest LoD, with their ``semantics`` (``WallSurface``, ``RoofSurface``, ``GroundSurface``,
``OuterCeilingSurface``, ``OuterFloorSurface``, ``ClosureSurface``, ``Window``, ``Door``;
surfaces without semantics are ``Unclassified``, interior ones are skipped). Vertices are
decoded with ``transform`` (``scale`` and ``translate``) when the file has one.
A building whose geometry is malformed (bad vertex index, wrong nesting) fails alone with
one line; the other buildings of the file are still read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .crs import parse_epsg
from .gml import clean_ring
from .model import OPENING_KINDS, SHELL_KINDS, CityBuilding, CityFile, Polygon, Surface

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
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not a CityJSON file (line {exc.lineno}: invalid JSON, "
                           f"{exc.msg})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a CityJSON file (not UTF-8 text)") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise DatasetError(f"{path}: not a CityJSON file (no \"type\": \"CityJSON\" at top level)")
    version = str(doc.get("version", ""))
    if not any(version == v or version.startswith(v + ".") for v in SUPPORTED_VERSIONS):
        raise DatasetError(f"{path}: CityJSON version '{version}' is not supported (expected "
                           f"{', '.join(SUPPORTED_VERSIONS)})")
    objects = doc.get("CityObjects")
    if not isinstance(objects, dict):
        raise DatasetError(f"{path}: field 'CityObjects' " + (
            "is missing" if objects is None else f"must be an object (id -> city object), got "
                                                 f"{type(objects).__name__}"))
    try:
        vertices = _vertices(doc)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: malformed 'vertices' or 'transform' ({exc})") from None
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    file_crs = crs or _reference_system(meta)
    metadata = {"cityjson_version": version}
    if meta:
        metadata["cityjson_metadata"] = meta
    licence = {}
    _find_licence(doc, licence, depth=0)
    if licence:
        metadata["licence"] = licence

    buildings, errors = [], []
    tops = [(oid, obj) for oid, obj in objects.items() if isinstance(obj, dict)
            and obj.get("type") == "Building" and not _has_building_parent(obj, objects)]
    for oid, obj in tops:
        try:
            buildings.append(_read_building(oid, obj, objects, vertices, path, file_crs))
        except DatasetError as exc:
            errors.append(f"{path}: building {oid}: {exc}")
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
            errors.append(f"{path}: building {oid}: malformed geometry "
                          f"({type(exc).__name__}: {exc})")
    if not tops:
        errors.append(f"{path}: no Building in the file")
    return CityFile(str(path), f"CityJSON {version}", buildings, errors, file_crs, metadata)


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


def _has_building_parent(obj: dict, objects: dict) -> bool:
    parents = obj.get("parents") or []
    return any(isinstance(objects.get(p), dict) and objects[p].get("type") in
               ("Building", "BuildingPart") for p in parents)


def _lod_value(geom: dict) -> float:
    lod = geom.get("lod")
    try:
        return float(lod)
    except (TypeError, ValueError):
        raise DatasetError(f"geometry without a valid 'lod' ({lod!r})") from None


def _read_building(oid, obj, objects, vertices, path, crs) -> CityBuilding:
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
        for child in cobj.get("children") or []:
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
        what = f" (only {', '.join(sorted(map(str, other)))})" if other else ""
        raise DatasetError(f"no surfaces or solids{what}")
    best = max(_lod_value(g) for _, _, g in shell_geoms)
    if best < 1:
        raise DatasetError(f"only LoD{best:g} geometry (footprints have no height)")
    notes = []
    lods = sorted({_lod_value(g) for _, _, g in geoms})
    if len(lods) > 1:
        notes.append(f"LoD{best:g} used; also has LoD {', '.join(f'{v:g}' for v in lods if v != best)}")
    surfaces: list[Surface] = []
    dropped = 0
    for cid, base, geom in geoms:
        if _lod_value(geom) != best:
            continue
        made, n_dropped = _geometry_surfaces(cid, base, geom, vertices, int(best),
                                             len(surfaces))
        surfaces += made
        dropped += n_dropped
    if dropped:
        notes.append(f"{dropped} degenerate polygons dropped")
    attrs = obj.get("attributes") if isinstance(obj.get("attributes"), dict) else {}
    return CityBuilding(oid, str(path), int(best), surfaces, crs, parse_epsg(crs),
                        tuple(part_ids), dict(attrs), notes)


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
        raw = semantics.get("values")
        values = _flatten_values(raw, depth - 1) if raw is not None else values
        if len(values) != len(polys):
            raise DatasetError(f"semantics 'values' has {len(values)} entries for "
                               f"{len(polys)} surfaces")
    groups: dict = {}
    dropped = 0
    for rings, value in zip(polys, values):
        kind, key = base, None
        if value is not None and base != "BuildingInstallation":
            sem = sem_surfaces[int(value)]
            stype = sem.get("type", "") if isinstance(sem, dict) else ""
            if stype in _INTERIOR:
                continue
            kind, key = _KIND.get(stype, "Unclassified"), int(value)
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
            parent = sem_surfaces[key].get("parent")
            if parent is not None and int(parent) in index:
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


def _flatten_values(values, depth: int) -> list:
    """Semantic values nested ``depth`` levels (0 for a MultiSurface) as a flat list."""
    items = values
    for _ in range(depth):
        items = [x for item in items for x in item]
    return list(items)


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
