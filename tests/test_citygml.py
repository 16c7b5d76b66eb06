"""CityGML / CityJSON import: readers, CRS checks, rotation, layers, occupancy, face labels.

The synthetic building used throughout is a 9 x 6 x 6 m box (3 x 2 x 2 cells of 3 m) with
a door and a window in its -y wall, a small window on its +x wall split between two cells,
a double door in its +y wall and a roof window; it is written as CityJSON, CityGML 2.0 and CityGML 3.0 by the helpers
below, and its labels are worked out by hand in ``_expected_box_labels``. The real fixture
is one LoD3 building of the Ingolstadt road-space models (tests/data/citygml/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from proc_ml.citygml import (ImportedBuilding, TooSmall, import_city_files, read_city_file,
                             voxelize_building)
from proc_ml.citygml.crs import crs_problem, parse_epsg
from proc_ml.citygml.geometry import newell
from proc_ml.errors import DatasetError
from proc_ml.grid import exterior_faces
from proc_ml.procedural.parts import DEFAULT_PARTS

DATA = Path(__file__).parent / "data" / "citygml"
WALL, WINDOW, DOOR, ROOF, GROUND = (DEFAULT_PARTS.index(p) for p in
                                    ("wall", "window", "door", "roof", "ground"))
ORIGIN = np.array([500000.0, 5400000.0, 100.0])     # EPSG:25832-like metres


# -- a box building, described once, written three ways -------------------------------------
def _facing(ring, normal):
    """The ring, turned so that its right-hand normal points along ``normal``."""
    ring = np.asarray(ring, dtype=float)
    return ring if newell(ring) @ np.asarray(normal, float) > 0 else ring[::-1].copy()


def _rect_y(y, x0, x1, z0, z1):
    return [(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)]


def _rect_x(x, y0, y1, z0, z1):
    return [(x, y0, z0), (x, y1, z0), (x, y1, z1), (x, y0, z1)]


def box_surfaces(size=(9.0, 6.0, 6.0), openings=True, missing=()):
    """[(kind, exterior, interiors, parent)] in local metres; ``missing``: wall names left out."""
    X, Y, Z = size
    door = _rect_y(0.0, 0.5, 1.5, 0.0, 2.2)
    window = _rect_y(0.0, 3.75, 6.75, 3.5, 5.0)
    side_window = _rect_x(X, 2.6, 3.7, 1.0, 1.75)
    roof_window = [(6.5, 2.0, Z), (7.5, 2.0, Z), (7.5, 3.0, Z), (6.5, 3.0, Z)]
    out = []
    if openings:   # the -y wall goes round the door and has a hole for the window
        south = [(0, 0, 0), (0.5, 0, 0), (0.5, 0, 2.2), (1.5, 0, 2.2), (1.5, 0, 0), (X, 0, 0),
                 (X, 0, Z), (0, 0, Z)]
        out.append(("WallSurface", _facing(south, (0, -1, 0)), [_facing(window, (0, 1, 0))], None))
    else:
        out.append(("WallSurface", _facing(_rect_y(0, 0, X, 0, Z), (0, -1, 0)), [], None))
    north = ([(0, Y, 0), (1.8, Y, 0), (1.8, Y, 2.4), (4.2, Y, 2.4), (4.2, Y, 0), (X, Y, 0),
              (X, Y, Z), (0, Y, Z)] if openings else _rect_y(Y, 0, X, 0, Z))
    walls = {"+y": _facing(north, (0, 1, 0)),
             "-x": _facing(_rect_x(0, 0, Y, 0, Z), (-1, 0, 0)),
             "+x": _facing(_rect_x(X, 0, Y, 0, Z), (1, 0, 0))}
    for name, ring in walls.items():
        if name not in missing:
            holes = [_facing(side_window, (-1, 0, 0))] if name == "+x" and openings else []
            out.append(("WallSurface", ring, holes, None))
    out.append(("RoofSurface", _facing([(0, 0, Z), (X, 0, Z), (X, Y, Z), (0, Y, Z)], (0, 0, 1)),
                [_facing(roof_window, (0, 0, -1))] if openings else [], None))
    out.append(("GroundSurface", _facing([(0, 0, 0), (X, 0, 0), (X, Y, 0), (0, Y, 0)], (0, 0, -1)),
                [], None))
    if openings:
        out.append(("Door", _facing(door, (0, -1, 0)), [], 0))
        out.append(("Window", _facing(window, (0, -1, 0)), [], 0))
        plus_x = next(i for i, s in enumerate(out) if s[0] == "WallSurface"
                      and np.allclose(s[1][:, 0], X))
        out.append(("Window", _facing(side_window, (1, 0, 0)), [], plus_x))
        plus_y = next(i for i, s in enumerate(out) if s[0] == "WallSurface"
                      and np.allclose(s[1][:, 1], Y))
        out.append(("Door", _facing(_rect_y(Y, 1.8, 4.2, 0.0, 2.4), (0, 1, 0)), [], plus_y))
        roof = next(i for i, s in enumerate(out) if s[0] == "RoofSurface")
        out.append(("Window", _facing(roof_window, (0, 0, 1)), [], roof))
    return out


def _place(points, rotation_deg=0.0, origin=ORIGIN):
    c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    return np.asarray(points, float) @ rot.T + origin


def write_cityjson(path, surfaces, rotation_deg=0.0, version="2.0", crs="EPSG:25832",
                   extra_buildings=None, origin=ORIGIN, scale=(0.001, 0.001, 0.001)):
    scale = np.asarray(scale, float)
    translate = np.asarray(origin, float).tolist()
    vertices, boundaries, values = [], [], []
    sem = []
    for kind, ext, holes, parent in surfaces:
        rings = []
        for ring in [ext] + list(holes):
            idx = []
            for p in _place(ring, rotation_deg, origin):
                idx.append(len(vertices))
                vertices.append([int(round(v)) for v in (p - origin) / scale])
            rings.append(idx)
        boundaries.append(rings)
        entry = {"type": kind}
        if parent is not None:
            entry["parent"] = parent
        sem.append(entry)
        values.append(len(sem) - 1)
    city_objects = {"B1": {"type": "Building", "attributes": {"function": "test"},
                           "geometry": [{"type": "MultiSurface", "lod": "3.0" if version != "1.0" else 3,
                                         "boundaries": boundaries,
                                         "semantics": {"surfaces": sem, "values": values}}]}}
    city_objects.update(extra_buildings or {})
    doc = {"type": "CityJSON", "version": version,
           "transform": {"scale": scale.tolist(), "translate": translate},
           "metadata": {"referenceSystem": crs, "title": "box",
                        "+license": "CC0-1.0, test data written by tests/test_citygml.py"},
           "CityObjects": city_objects, "vertices": vertices}
    Path(path).write_text(json.dumps(doc))
    return path


def _poslist(ring, rotation_deg, use_pos=False):
    pts = _place(np.vstack([ring, ring[:1]]), rotation_deg)
    if use_pos:
        return "".join(f"<gml:pos>{x:.3f} {y:.3f} {z:.3f}</gml:pos>" for x, y, z in pts)
    return ('<gml:posList srsDimension="3">' + " ".join(f"{v:.3f}" for v in pts.ravel())
            + "</gml:posList>")


def _polygon(pid, ext, holes, rotation_deg, use_pos=False):
    inner = "".join(f"<gml:interior><gml:LinearRing>{_poslist(h, rotation_deg, use_pos)}"
                    f"</gml:LinearRing></gml:interior>" for h in holes)
    return (f'<gml:Polygon gml:id="{pid}"><gml:exterior><gml:LinearRing>'
            f"{_poslist(ext, rotation_deg, use_pos)}</gml:LinearRing></gml:exterior>{inner}"
            f"</gml:Polygon>")


GML2_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" '
             'xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
             'xmlns:gen="http://www.opengis.net/citygml/generics/2.0" '
             'xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">')


def gml2_building(bid, surfaces, rotation_deg=0.0, lod=3, srs="EPSG:25832"):
    """A CityGML 2.0 Building: semantic surfaces with inline polygons (``gml:pos`` for the
    walls, ``posList`` elsewhere) and a building-level solid that refers to them by xlink."""
    parts, ids = [], []
    children = {}
    for i, (kind, ext, holes, parent) in enumerate(surfaces):
        if parent is not None:
            children.setdefault(parent, []).append(i)
    for i, (kind, ext, holes, parent) in enumerate(surfaces):
        if parent is not None:
            continue
        pid = f"{bid}_p{i}"
        ids.append(pid)
        poly = _polygon(pid, ext, holes, rotation_deg, use_pos=kind == "WallSurface")
        openings = ""
        for j in children.get(i, []):
            okind, oext, oholes, _ = surfaces[j]
            openings += (f'<bldg:opening><bldg:{okind} gml:id="{bid}_o{j}"><bldg:lod{lod}MultiSurface>'
                         f"<gml:MultiSurface><gml:surfaceMember>"
                         f"{_polygon(f'{bid}_p{j}', oext, oholes, rotation_deg)}"
                         f"</gml:surfaceMember></gml:MultiSurface></bldg:lod{lod}MultiSurface>"
                         f"</bldg:{okind}></bldg:opening>")
        parts.append(f'<bldg:boundedBy><bldg:{kind} gml:id="{bid}_s{i}"><bldg:lod{lod}MultiSurface>'
                     f"<gml:MultiSurface><gml:surfaceMember>{poly}</gml:surfaceMember>"
                     f"</gml:MultiSurface></bldg:lod{lod}MultiSurface>{openings}"
                     f"</bldg:{kind}></bldg:boundedBy>")
    solid = ("<gml:Solid><gml:exterior><gml:CompositeSurface>"
             + "".join(f'<gml:surfaceMember xlink:href="#{pid}"/>' for pid in ids)
             + "</gml:CompositeSurface></gml:exterior></gml:Solid>")
    return (f'<core:cityObjectMember><bldg:Building gml:id="{bid}">'
            f'<bldg:measuredHeight uom="m">6</bldg:measuredHeight>'
            f"<bldg:lod{lod}Solid>{solid}</bldg:lod{lod}Solid>{''.join(parts)}"
            f"</bldg:Building></core:cityObjectMember>")


def write_gml2(path, buildings_xml, srs="EPSG:25832", extra=""):
    env = (f'<gml:boundedBy><gml:Envelope srsName="{srs}" srsDimension="3">'
           f"<gml:lowerCorner>0 0 0</gml:lowerCorner><gml:upperCorner>1 1 1</gml:upperCorner>"
           f"</gml:Envelope></gml:boundedBy>") if srs else ""
    Path(path).write_text(GML2_HEAD + env + extra + "".join(buildings_xml) + "</core:CityModel>")
    return path


def write_gml3(path, surfaces, rotation_deg=0.0):
    """CityGML 3.0: con:WallSurface / con:fillingSurface / con:WindowSurface, GML 3.2; the roof
    polygon lives in the building's lod3Solid and the RoofSurface refers to it by xlink, and
    the GroundSurface is a separate city object the building's boundary refers to."""
    body, flat = [], []
    children = {}
    for i, (_, _, _, parent) in enumerate(surfaces):
        if parent is not None:
            children.setdefault(parent, []).append(i)
    solid_members = []
    for i, (kind, ext, holes, parent) in enumerate(surfaces):
        if parent is not None:
            continue
        poly = _polygon(f"p{i}", ext, holes, rotation_deg)
        if kind == "RoofSurface":
            solid_members.append(f"<gml:surfaceMember>{poly}</gml:surfaceMember>")
            member = f'<gml:surfaceMember xlink:href="#p{i}"/>'
        else:
            solid_members.append(f'<gml:surfaceMember xlink:href="#p{i}"/>')
            member = f"<gml:surfaceMember>{poly}</gml:surfaceMember>"
        fillings = ""
        for j in children.get(i, []):
            okind, oext, oholes, _ = surfaces[j]
            fillings += (f'<con:fillingSurface><con:{okind}Surface gml:id="o{j}">'
                         f"<core:lod3MultiSurface><gml:MultiSurface><gml:surfaceMember>"
                         f"{_polygon(f'p{j}', oext, oholes, rotation_deg)}</gml:surfaceMember>"
                         f"</gml:MultiSurface></core:lod3MultiSurface></con:{okind}Surface>"
                         f"</con:fillingSurface>")
        feature = (f'<con:{kind} gml:id="s{i}"><core:lod3MultiSurface>'
                   f"<gml:MultiSurface>{member}</gml:MultiSurface></core:lod3MultiSurface>"
                   f"{fillings}</con:{kind}>")
        if kind == "GroundSurface":
            body.append(f'<core:boundary xlink:href="#s{i}"/>')
            flat.append(f"<core:cityObjectMember>{feature}</core:cityObjectMember>")
        else:
            body.append(f"<core:boundary>{feature}</core:boundary>")
    solid = ('<core:lod3Solid><gml:Solid><gml:exterior><gml:Shell>' + "".join(solid_members)
             + "</gml:Shell></gml:exterior></gml:Solid></core:lod3Solid>")
    doc = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<core:CityModel xmlns:core="http://www.opengis.net/citygml/3.0" '
           'xmlns:bldg="http://www.opengis.net/citygml/building/3.0" '
           'xmlns:con="http://www.opengis.net/citygml/construction/3.0" '
           'xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<gml:boundedBy><gml:Envelope srsName="urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::7837" '
           'srsDimension="3"><gml:lowerCorner>0 0 0</gml:lowerCorner><gml:upperCorner>1 1 1'
           '</gml:upperCorner></gml:Envelope></gml:boundedBy>'
           '<core:cityObjectMember><bldg:Building gml:id="B3">' + solid + "".join(body)
           + "</bldg:Building></core:cityObjectMember>" + "".join(flat) + "</core:CityModel>")
    Path(path).write_text(doc)
    return path


def _expected_box_labels():
    """Worked out by hand for box_surfaces() at 3 m cells: grid 3 x 2 x 2, all occupied.

    * the door (x 0.5-1.5, z 0-2.2) covers 2.2 / 9 = 0.24 of face (0, 0, 0) -y  -> door;
    * the window (x 3.75-6.75, z 3.5-5) covers 3.375 / 9 = 0.375 of (1, 0, 1) -y and
      1.125 / 9 = 0.125 of (2, 0, 1) -y: both over 8 %                        -> window, window;
    * the +x window (y 2.6-3.7, z 1-1.75) puts 0.3 m^2 on (2, 0, 0) and 0.525 m^2 on
      (2, 1, 0): both under 8 %, but (2, 1, 0) holds most of it -> window (main face);
    * the double door in the +y wall (x 1.8-4.2, z 0-2.4) covers 2.88 / 9 = 0.32 of both
      (0, 1, 0) +y and (1, 1, 0) +y                                               -> door, door;
    * the roof window faces up: no side face; top faces stay roof;
    * bottom faces on layer 0 are ground, everything else wall.
    """
    occ = np.ones((3, 2, 2), dtype=bool)
    labels = np.where(exterior_faces(occ), WALL, -1).astype(np.int8)
    labels[..., 4] = np.where(exterior_faces(occ)[..., 4], ROOF, -1)
    labels[..., 5] = np.where(exterior_faces(occ)[..., 5], GROUND, -1)
    labels[0, 0, 0, 3] = DOOR
    labels[1, 0, 1, 3] = labels[2, 0, 1, 3] = WINDOW
    labels[2, 1, 0, 0] = WINDOW
    labels[0, 1, 0, 2] = labels[1, 1, 0, 2] = DOOR
    return labels


def _check_contract(imp: ImportedBuilding):
    """What proc-ml's grid files require: dtypes, shapes, labels exactly on exterior faces."""
    assert imp.occupancy.dtype == np.uint8 and imp.occupancy.ndim == 3
    ext = exterior_faces(imp.occupancy)
    if imp.labels is not None:
        assert imp.labels.dtype == np.int8 and imp.labels.shape == imp.occupancy.shape + (6,)
        assert np.array_equal(imp.labels >= 0, ext)
        assert imp.labels.max() < len(imp.parts)
        assert imp.label_known.shape == imp.labels.shape and not np.any(imp.label_known & ~ext)


# -- the real fixture -----------------------------------------------------------------------
def test_real_lod3_fixture_imports_with_doors_on_the_ground_layer():
    city = read_city_file(DATA / "4018265.xml")
    assert city.format == "CityGML 2.0" and city.errors == [] and city.crs == "EPSG:32632"
    (b,) = city.buildings
    assert (b.building_id, b.lod, b.epsg) == ("4018265", 3, 32632)
    assert b.count("Door") == 2 and b.count("Window") == 1 and b.count("WallSurface") == 24
    imp = voxelize_building(b)
    _check_contract(imp)
    assert imp.occupancy.shape == (3, 6, 4)
    assert abs(imp.rotation_deg - (-0.9)) < 0.5
    labels = imp.labels
    door_cells = np.argwhere(labels == DOOR)
    assert len(door_cells) == 2 and set(door_cells[:, 2]) == {0}          # layer 0 only
    assert not np.isin(labels[..., 4:], [WINDOW, DOOR]).any()               # not on top/bottom
    assert set(door_cells[:, 3]) == {3}                                     # both face -y
    assert np.count_nonzero(labels == WINDOW) == 1
    assert imp.street_sides == ("-y",)
    assert imp.stats["openings_per_layer"]["Door"] == [2, 0, 0, 0]
    assert imp.stats["faces_per_part"]["roof"] == int(exterior_faces(imp.occupancy)[..., 4].sum())
    # the grid sits on the building: layer 0 starts at its lowest point, cells cover it
    shell = np.concatenate([p.exterior for s in b.surfaces if s.kind != "BuildingInstallation"
                            for p in s.polygons])
    g = imp.world_to_grid(shell)
    np.testing.assert_allclose(g.min(axis=0), 0.0, atol=1e-6)
    assert np.all(g.max(axis=0) <= np.array(imp.occupancy.shape) * 3.0 + 1e-6)
    assert imp.origin[2] == pytest.approx(shell[:, 2].min())
    assert imp.stats["watertight"] is False and imp.stats["time_s"] < 5


def test_real_lod3_without_openings_gives_occupancy_only():
    (b,) = read_city_file(DATA / "4018142.xml").buildings
    imp = voxelize_building(b)
    assert b.lod == 3 and not b.has_openings
    assert imp.labels is None and imp.label_known is None and imp.street_sides == ()
    assert imp.occupancy.shape == (4, 9, 5) and imp.stats["watertight"] is True
    # the volume on the grid is within a cell column or so of the shell's own volume
    assert abs(imp.stats["grid_volume_m3"] - imp.stats["shell_volume_m3"]) < 3 * 27
    assert any("LoD3 without any opening" in n for n in imp.notes)


# -- the box, three encodings ---------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.0", "1.1", "2.0"])
def test_cityjson_box_labels_match_the_hand_computed_ones(tmp_path, version):
    path = write_cityjson(tmp_path / "box.city.json", box_surfaces(), version=version)
    city = read_city_file(path)
    assert city.format == f"CityJSON {version}" and city.errors == []
    assert city.metadata["licence"]["+license"].startswith("CC0")
    (b,) = city.buildings
    assert b.lod == 3 and b.count("Window") == 3 and b.count("Door") == 2
    assert {b.surfaces[s.parent].kind for s in b.surfaces if s.kind in ("Window", "Door")} \
        == {"WallSurface", "RoofSurface"}
    imp = voxelize_building(b)
    _check_contract(imp)
    assert imp.rotation_deg == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(imp.origin, ORIGIN, atol=1e-6)
    assert imp.occupancy.all() and imp.occupancy.shape == (3, 2, 2)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    cover = imp.opening_cover          # window / door share of each face, 0.25 m bins
    assert cover.shape == (3, 2, 2, 6, 2) and not cover[..., 4:, :].any()
    assert cover[1, 0, 1, 3, 0] == pytest.approx(0.375) and cover[2, 0, 1, 3, 0] == pytest.approx(0.125)
    assert cover[0, 0, 0, 3, 1] == pytest.approx(36 / 144)     # door 1.0 x 2.2 m in 0.25 m bins
    assert cover[0, 1, 0, 2, 1] == cover[1, 1, 0, 2, 1] == pytest.approx(50 / 144)   # 1.2 m -> 5 bins
    assert imp.street_sides == ("+x", "+y", "-y")
    assert imp.stats["openings"] == {"Window": 3, "Door": 2, "not_facing_a_side": 1,
                                     "turned_round": 0}
    assert imp.stats["openings_per_layer"] == {"Window": [1, 2], "Door": [2, 0]}
    assert imp.stats["watertight"] is True
    # known labels: top, bottom, and the three street sides only
    known = [0, 2, 3, 4, 5]
    assert imp.label_known[..., known].sum() == (imp.labels[..., known] >= 0).sum()
    assert not imp.label_known[..., 1].any()


def test_openings_modelled_inside_out_are_turned_round(tmp_path):
    """Several dev files have windows whose normals point into the building: the door and
    the -y window are written reversed here and must still land on the -y faces."""
    surfaces = [(k, e[::-1].copy() if k in ("Door", "Window") and p == 0 else e, hs, p)
                for k, e, hs, p in box_surfaces()]
    (b,) = read_city_file(write_cityjson(tmp_path / "flip.json", surfaces)).buildings
    imp = voxelize_building(b)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    assert imp.stats["openings"]["turned_round"] == 2 and imp.street_sides == ("+x", "+y", "-y")


def test_citygml_2_and_3_read_the_same_box(tmp_path):
    expected = _expected_box_labels()
    gml2 = write_gml2(tmp_path / "box2.gml", [gml2_building("B2", box_surfaces())])
    gml3 = write_gml3(tmp_path / "box3.gml", box_surfaces())
    for path, fmt in ((gml2, "CityGML 2.0"), (gml3, "CityGML 3.0")):
        city = read_city_file(path)
        assert city.format == fmt and city.errors == []
        (b,) = city.buildings
        kinds = sorted(s.kind for s in b.surfaces)
        # the building-level solid refers to the semantic polygons: nothing is counted twice
        assert kinds == sorted(["WallSurface"] * 4 + ["RoofSurface", "GroundSurface"]
                               + ["Door"] * 2 + ["Window"] * 3), (fmt, kinds)
        assert b.epsg == 25832
        imp = voxelize_building(b)
        _check_contract(imp)
        np.testing.assert_array_equal(imp.labels, expected)
        assert imp.stats["watertight"] is True
    (b3,) = read_city_file(gml3).buildings
    wall = next(i for i, s in enumerate(b3.surfaces) if s.kind == "WallSurface"
                and any(o.parent == i and o.kind == "Door" for o in b3.surfaces))
    assert b3.surfaces[wall].surface_id == "s0"


def test_lod2_solid_without_semantics_gives_occupancy_only(tmp_path):
    """LoD2 solid (no semantic surfaces) next to an LoD1 solid: LoD2 is used, no labels."""
    solid = "".join(f"<gml:surfaceMember>{_polygon(f'q{i}', ext, [], 0.0)}</gml:surfaceMember>"
                    for i, (_, ext, _, _) in enumerate(box_surfaces(openings=False)))
    lod1 = "".join(f"<gml:surfaceMember>{_polygon(f'r{i}', ext, [], 0.0)}</gml:surfaceMember>"
                   for i, (_, ext, _, _) in enumerate(box_surfaces((9.0, 6.0, 3.0), openings=False)))
    building = ('<core:cityObjectMember><bldg:Building gml:id="L2">'
                f"<bldg:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{lod1}"
                "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod1Solid>"
                f"<bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{solid}"
                "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>"
                "</bldg:Building></core:cityObjectMember>")
    (b,) = read_city_file(write_gml2(tmp_path / "lod2.gml", [building])).buildings
    assert b.lod == 2 and [s.kind for s in b.surfaces] == ["Unclassified"]
    imp = voxelize_building(b)
    assert imp.labels is None and imp.street_sides == ()
    assert imp.occupancy.shape == (3, 2, 2) and imp.occupancy.all()
    assert imp.rotation_deg == pytest.approx(0.0, abs=1e-6)
    assert any("also has LoD 1" in n for n in b.notes)


@pytest.mark.parametrize("angle", [30.0, -20.0, 75.0])
def test_rotated_box_is_turned_back_onto_the_axes(tmp_path, angle):
    path = write_cityjson(tmp_path / "rot.json", box_surfaces(), rotation_deg=angle)
    (b,) = read_city_file(path).buildings
    imp = voxelize_building(b)
    _check_contract(imp)
    expected = (angle + 45.0) % 90.0 - 45.0          # walls only fix the angle modulo 90
    assert imp.rotation_deg == pytest.approx(expected, abs=0.05)
    # the box's corners land on the grid axes: axis-aligned, starting at 0
    corners = _place([(0, 0, 0), (9, 0, 0), (9, 6, 0), (0, 6, 6)], angle)
    g = imp.world_to_grid(corners)
    assert np.all(np.abs(g - np.round(g)) < 0.02)     # integral metres: axis-aligned
    np.testing.assert_allclose(imp.grid_to_world(g), corners, atol=1e-6)
    assert imp.occupancy.all() and imp.occupancy.sum() == 12
    if angle == 75.0:      # -15 degrees: the box's long side runs along grid y
        assert imp.occupancy.shape == (2, 3, 2)
    else:
        assert imp.occupancy.shape == (3, 2, 2)
        np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    m = imp.cell_to_world
    np.testing.assert_allclose(m[:3, 3], imp.origin)


def test_shell_with_a_missing_wall_still_fills(tmp_path):
    """15 x 12 x 9 m box with its +x wall left out: 24 m of open edges, and the vertical
    flux fill (default) and the winding number still give the full 5 x 4 x 3 block, while
    the surface + flood fill leaks through the gap and keeps only a hollow shell."""
    surfaces = box_surfaces((15.0, 12.0, 9.0), openings=False, missing=("+x",))
    (b,) = read_city_file(write_cityjson(tmp_path / "open.json", surfaces)).buildings
    flux = voxelize_building(b)
    assert flux.stats["watertight"] is False and flux.stats["open_edge_m"] == pytest.approx(42.0)
    assert flux.occupancy.shape == (5, 4, 3) and flux.occupancy.all()
    wind = voxelize_building(b, method="winding", check_watertight=False)
    assert wind.occupancy.all()
    flood = voxelize_building(b, method="flood", check_watertight=False)
    assert flood.occupancy.sum() < 60 and not flood.occupancy[1:4, 1:3, 1].any()


def test_building_parts_are_merged_and_fill_by_layer(tmp_path):
    """A 9 m tall and a 3 m tall BuildingPart side by side, in CityJSON (children / parents)
    and in CityGML 2.0 (consistsOfBuildingPart): one grid, exact per layer."""
    tall = box_surfaces((6.0, 6.0, 9.0), openings=False)
    low = [(k, e + np.array([6.0, 0, 0]), [h + np.array([6.0, 0, 0]) for h in hs], p)
           for k, e, hs, p in box_surfaces((6.0, 6.0, 3.0), openings=False)]
    path = write_cityjson(tmp_path / "t.json", tall + low)
    doc = json.loads(Path(path).read_text())
    geom = doc["CityObjects"].pop("B1")["geometry"][0]
    n = len(tall)
    doc["CityObjects"]["T"] = {"type": "Building", "children": ["T-1", "T-2"]}
    for pid, sl in (("T-1", slice(0, n)), ("T-2", slice(n, None))):
        part = dict(geom, boundaries=geom["boundaries"][sl],
                    semantics={"surfaces": geom["semantics"]["surfaces"],
                               "values": geom["semantics"]["values"][sl]})
        doc["CityObjects"][pid] = {"type": "BuildingPart", "parents": ["T"], "geometry": [part]}
    Path(path).write_text(json.dumps(doc))

    def as_part(xml, pid):
        inner = xml.split(f'<bldg:Building gml:id="{pid}">', 1)[1].rsplit("</bldg:Building>", 1)[0]
        return (f'<bldg:consistsOfBuildingPart><bldg:BuildingPart gml:id="{pid}">{inner}'
                f"</bldg:BuildingPart></bldg:consistsOfBuildingPart>")
    gml = ('<core:cityObjectMember><bldg:Building gml:id="T">'
           + as_part(gml2_building("T-1", tall), "T-1") + as_part(gml2_building("T-2", low), "T-2")
           + "</bldg:Building></core:cityObjectMember>")
    gml_path = write_gml2(tmp_path / "t.gml", [gml])
    expected = np.zeros((4, 2, 3), bool)
    expected[:2] = True
    expected[2:, :, 0] = True
    for p in (path, gml_path):
        city = read_city_file(p)
        (b,) = city.buildings
        assert city.errors == [] and b.building_id == "T" and b.part_ids == ("T-1", "T-2")
        imp = voxelize_building(b, check_watertight=False)
        np.testing.assert_array_equal(imp.occupancy.astype(bool), expected)


# -- errors -----------------------------------------------------------------------------------
def _one_line(msg: str, *must):
    assert "\n" not in msg and "Traceback" not in msg
    for m in must:
        assert m in msg, (m, msg)


def test_broken_building_is_one_line_and_the_others_import(tmp_path):
    good = gml2_building("GOOD", box_surfaces())
    bad_numbers = gml2_building("BADNUM", box_surfaces()).replace(
        '<gml:posList srsDimension="3">', '<gml:posList srsDimension="3">x ', 1)
    bad_count = gml2_building("BADCOUNT", box_surfaces()).replace(
        '<gml:posList srsDimension="3">', '<gml:posList srsDimension="3">1.0 ', 1)
    # every polygon of this one is a reference to an id that is not in the file
    bad_href = ('<core:cityObjectMember><bldg:Building gml:id="BADREF"><bldg:lod2Solid><gml:Solid>'
                '<gml:exterior><gml:CompositeSurface><gml:surfaceMember xlink:href="#nowhere"/>'
                '</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod2Solid>'
                '</bldg:Building></core:cityObjectMember>')
    empty = '<core:cityObjectMember><bldg:Building gml:id="EMPTY"/></core:cityObjectMember>'
    path = write_gml2(tmp_path / "mixed.gml", [bad_numbers, good, bad_count, bad_href, empty])
    city = read_city_file(path)
    assert [b.building_id for b in city.buildings] == ["GOOD"]
    assert len(city.errors) == 4
    for err, bid, what in zip(city.errors, ("BADNUM", "BADCOUNT", "BADREF", "EMPTY"),
                              ("not numbers ('x')", "does not split into 3-D",
                               ("no surfaces or solids in LoD1-4 (1 xlink:href reference to ids "
                                "not in the file: '#nowhere')"), "no surfaces or solids")):
        _one_line(err, str(path), f"building {bid}", what)
    result = import_city_files([path])
    assert [i.building_id for i in result.buildings] == ["GOOD"] and result.errors == city.errors


def test_broken_cityjson_building_and_bad_files(tmp_path):
    bad = {"BAD": {"type": "Building", "geometry": [
        {"type": "Solid", "lod": "2", "boundaries": [[[[0, 1, 99999]]]]}]},
           "NOGEOM": {"type": "Building"}}
    cj = write_cityjson(tmp_path / "b.json", box_surfaces(), extra_buildings=bad)
    city = read_city_file(cj)
    assert [b.building_id for b in city.buildings] == ["B1"]
    assert len(city.errors) == 2
    _one_line(city.errors[0], "building BAD", "vertex index 99999 out of range")
    _one_line(city.errors[1], "building NOGEOM", "no surfaces or solids")

    not_city = tmp_path / "notes.xml"
    not_city.write_text('<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"/>')
    garbage = tmp_path / "garbage.gml"
    garbage.write_text("<core:CityModel xmlns:core='http://www.opengis.net/citygml/2.0'><oops")
    bad_json = tmp_path / "x.city.json"
    bad_json.write_text('{"type": "CityJSON", "version": "2.0", ')
    feature = tmp_path / "f.json"
    feature.write_text('{"type": "FeatureCollection", "features": []}')
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    for path, what in ((not_city, "not a CityGML file (root element <kml>"),
                       (garbage, "not well-formed XML"), (bad_json, "invalid JSON"),
                       (feature, "not a CityJSON file"), (image, "not a CityGML or CityJSON"),
                       (tmp_path / "missing.gml", "file not found")):
        with pytest.raises(DatasetError) as info:
            read_city_file(path)
        _one_line(str(info.value), str(path), what)
    result = import_city_files([not_city, cj, garbage, image])
    assert [i.building_id for i in result.buildings] == ["B1"] and len(result.errors) == 5


def test_geographic_and_unknown_crs_are_refused_with_one_line(tmp_path):
    geo = write_gml2(tmp_path / "wgs84.gml", [gml2_building("G", box_surfaces())],
                     srs="urn:ogc:def:crs:EPSG::4979")
    (b,) = read_city_file(geo).buildings
    with pytest.raises(DatasetError) as info:
        voxelize_building(b)
    _one_line(str(info.value), str(geo), "building G", "geographic")

    # degrees under a projected name: the coordinates give it away
    deg = [(k, e * [1e-5, 1e-5, 1.0], [h * [1e-5, 1e-5, 1.0] for h in hs], p)
           for k, e, hs, p in box_surfaces(openings=False)]
    doc = write_cityjson(tmp_path / "deg.json", deg, origin=(11.4, 48.7, 400.0),
                         scale=(1e-9, 1e-9, 0.001))
    (b,) = read_city_file(doc).buildings
    with pytest.raises(DatasetError) as info:
        voxelize_building(b)
    _one_line(str(info.value), "building B1", "look like degrees")

    unknown = write_gml2(tmp_path / "nocrs.gml", [gml2_building("U", box_surfaces())], srs=None)
    result = import_city_files([unknown, geo])
    assert result.buildings == [] and len(result.errors) == 2
    _one_line(result.errors[0], str(unknown), "building U", "no CRS")
    _one_line(result.errors[1], "building G", "geographic")
    # a caller who knows the CRS can say so
    result = import_city_files([unknown], crs="EPSG:25832")
    assert result.errors == [] and result.buildings[0].crs == "EPSG:25832"
    local = write_gml2(tmp_path / "local.gml", [gml2_building("L", box_surfaces())], srs="Local")
    _one_line(import_city_files([local]).errors[0], "unknown CRS 'Local'")


def test_grid_size_limit_and_empty_grid(tmp_path):
    (b,) = read_city_file(write_cityjson(tmp_path / "b.json", box_surfaces())).buildings
    with pytest.raises(DatasetError) as info:
        voxelize_building(b, cell_size=0.02)
    _one_line(str(info.value), "building B1", "at most 256 per axis")
    with pytest.raises(TooSmall) as info:        # 9 x 6 x 6 m fills at most 13 % of a 20 m cell
        voxelize_building(b, cell_size=20.0)
    _one_line(str(info.value), "building B1", "smaller than half a 20 m cell", "9.0 x 6.0 x 6.0 m")
    # big enough, but the shell is open (no +x wall) and inside out: nothing is inside it
    # (a closed inside-out shell is turned round: test_closed_inside_out_shell_is_flipped...)
    inverted = [(k, e[::-1].copy(), [h[::-1].copy() for h in hs], p)
                for k, e, hs, p in box_surfaces(openings=False, missing=("+x",))]
    (b,) = read_city_file(write_cityjson(tmp_path / "inv.json", inverted)).buildings
    with pytest.raises(DatasetError) as info:
        voxelize_building(b)
    assert not isinstance(info.value, TooSmall)
    _one_line(str(info.value), "empty building", "faces seem to be wound inward",
              "too open to turn round (holes 14% of its area)")


def test_crs_names():
    assert parse_epsg("EPSG:32632") == 32632
    assert parse_epsg("urn:ogc:def:crs:EPSG::25832") == 25832
    assert parse_epsg("urn:ogc:def:crs:EPSG:6.12:31467") == 31467
    assert parse_epsg("urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783") == 25832
    assert parse_epsg("https://www.opengis.net/def/crs/EPSG/0/7415") == 7415
    assert parse_epsg("EPSG:25832+5783") == 25832
    assert parse_epsg("urn:adv:crs:ETRS89_UTM32*DE_DHHN2016_NH") == 25832
    assert parse_epsg("urn:adv:crs:DE_DHDN_3GK3*DE_DHHN92_NH") == 31467
    assert parse_epsg("Local") is None and parse_epsg(None) is None
    assert crs_problem("EPSG:32632", 32632) is None
    assert "geographic" in crs_problem("EPSG:6697", 6697)          # PLATEAU's JGD2011
    assert "geographic" in crs_problem("urn:ogc:def:crs:OGC:1.3:CRS84", None)
    assert "no CRS" in crs_problem(None, None)


def test_licence_metadata_and_determinism(tmp_path):
    extra = ('<gen:stringAttribute name="license"><gen:value>CC BY 4.0, City of X'
             "</gen:value></gen:stringAttribute>")
    path = write_gml2(tmp_path / "lic.gml", [gml2_building("B", box_surfaces())], extra=extra)
    city = read_city_file(path)
    assert city.metadata["licence"] == {"license": "CC BY 4.0, City of X"}
    a, b = (voxelize_building(city.buildings[0]) for _ in range(2))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.occupancy, b.occupancy)
    assert a.rotation_deg == b.rotation_deg


# -- what other cities' files do (3D BAG / PLATEAU / extracts / sequences) ----------------------
def _cityjson_doc(tmp_path, surfaces=None, **kw) -> dict:
    path = write_cityjson(tmp_path / "src.city.json", box_surfaces() if surfaces is None else surfaces,
                          **kw)
    return json.loads(path.read_text())


def test_one_semantic_object_for_many_windows_is_one_opening_per_piece(tmp_path):
    """3D BAG-style CityJSON: every window polygon of the building points at one ``Window``
    semantic object (and every door at one ``Door``); each pane is still its own opening, on
    its own side, and the labels are the hand-worked ones."""
    doc = _cityjson_doc(tmp_path)
    geom = doc["CityObjects"]["B1"]["geometry"][0]
    sem = geom["semantics"]
    shared = {}
    for i, entry in enumerate(sem["surfaces"]):
        if entry["type"] in ("Window", "Door"):
            shared.setdefault(entry["type"], i)
    sem["values"] = [shared.get(sem["surfaces"][v]["type"], v) for v in sem["values"]]
    for entry in sem["surfaces"]:
        entry.pop("parent", None)
    path = tmp_path / "shared.city.json"
    path.write_text(json.dumps(doc))
    (b,) = read_city_file(path).buildings
    assert b.count("Window") == 1 and b.count("Door") == 1     # one object each in the file
    imp = voxelize_building(b)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    assert imp.street_sides == ("+x", "+y", "-y")
    assert imp.stats["openings"] == {"Window": 3, "Door": 2, "not_facing_a_side": 1,
                                     "turned_round": 0}


def test_opening_pieces_join_a_pane_to_its_frame_but_not_to_the_next_window():
    from proc_ml.citygml.voxelize import opening_pieces

    def rect(x0, x1, y=0.0, z0=1.0, z1=2.0):
        return np.array(_rect_y(y, x0, x1, z0, z1), float)

    frame, pane = rect(0.0, 1.2), rect(0.1, 1.1, y=0.1)      # pane set 10 cm in, no reveal
    reveal = np.array(_rect_x(0.1, 0.0, 0.1, 1.0, 2.0), float)
    other = rect(2.0, 3.2)                                      # the next window, 0.8 m away
    assert opening_pieces([frame, other, pane]) == [[0, 2], [1]]
    assert opening_pieces([frame, other, reveal, pane]) == [[0, 2, 3], [1]]
    assert opening_pieces([frame, rect(1.5, 2.0)]) == [[0], [1]]   # 30 cm apart: two windows
    assert opening_pieces([frame]) == [[0]]


def test_extract_of_a_building_part_and_openings_below_lod3(tmp_path):
    """A file that holds a BuildingPart without its Building (a 3D BAG extract), with windows
    in LoD 2.2 geometry: imported as a building, labelled, and both said in its notes."""
    doc = _cityjson_doc(tmp_path)
    part = doc["CityObjects"].pop("B1")
    part.update(type="BuildingPart", parents=["NL.PAND.1"])
    part["geometry"][0]["lod"] = "2.2"
    doc["CityObjects"]["NL.PAND.1-0"] = part
    path = tmp_path / "extract.city.json"
    path.write_text(json.dumps(doc))
    city = read_city_file(path)
    assert city.errors == []
    (b,) = city.buildings
    assert b.building_id == "NL.PAND.1" and b.part_ids == ("NL.PAND.1-0",) and b.lod == 2
    imp = voxelize_building(b)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    assert any("BuildingPart whose Building is not in the file" in n for n in imp.notes)
    assert any("windows / doors in LoD2 geometry" in n for n in imp.notes)


def test_cityjson_text_sequence_reads_each_feature_with_the_header_transform(tmp_path):
    doc = _cityjson_doc(tmp_path)
    header = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")}
    header.update(CityObjects={}, vertices=[])
    feature = {"type": "CityJSONFeature", "id": "B1", "CityObjects": doc["CityObjects"],
               "vertices": doc["vertices"]}
    second = dict(feature, id="B2", CityObjects={"B2": doc["CityObjects"]["B1"]})
    lines = [header, feature, "{broken", {"type": "Feature"}, second]
    path = tmp_path / "tile.city.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    city = read_city_file(path)
    assert city.format == "CityJSONSeq 2.0" and city.crs == "EPSG:25832"
    assert [b.building_id for b in city.buildings] == ["B1", "B2"]
    assert len(city.errors) == 2
    _one_line(city.errors[0], str(path), "line 3", "invalid JSON")
    _one_line(city.errors[1], "line 4", "not a CityJSONFeature")
    np.testing.assert_array_equal(voxelize_building(city.buildings[1]).labels,
                                  _expected_box_labels())
    lone = tmp_path / "feature.city.json"
    lone.write_text(json.dumps(feature))
    with pytest.raises(DatasetError) as info:
        read_city_file(lone)
    _one_line(str(info.value), "a single CityJSONFeature", ".city.jsonl")


def test_archives_latitude_first_degrees_and_pre_standard_citygml_are_named(tmp_path):
    import zipfile

    from proc_ml.citygml.crs import looks_geographic

    archive = tmp_path / "tile.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.gml", "<x/>")
    disguised = tmp_path / "tile.gml"
    disguised.write_bytes(archive.read_bytes())
    for path in (archive, disguised):
        with pytest.raises(DatasetError) as info:
            read_city_file(path)
        _one_line(str(info.value), str(path), "an archive", "unpack it")
    # PLATEAU writes JGD2011 latitude first: (35.6, 139.7), a 20 m tall building
    lat_first = np.array([[35.6001, 139.7001, 10.0], [35.6002, 139.7002, 30.0]])
    assert looks_geographic(lat_first) and looks_geographic(lat_first[:, [1, 0, 2]])
    assert not looks_geographic(np.array([[35.0, 139.0, 10.0], [65.0, 169.0, 30.0]]))
    old = tmp_path / "v04.xml"
    old.write_text('<CityModel xmlns="http://www.citygml.org/citygml/1/0/0"/>')
    with pytest.raises(DatasetError) as info:
        read_city_file(old)
    _one_line(str(info.value), "pre-standard CityGML", "convert it")


def test_buildings_smaller_than_half_a_cell_are_skipped_not_failed(tmp_path):
    shed = [(k, e * [0.2, 0.3, 0.3], [h * [0.2, 0.3, 0.3] for h in hs], p)
            for k, e, hs, p in box_surfaces(openings=False)]                # 1.8 x 1.8 x 1.8 m
    doc = _cityjson_doc(tmp_path)
    small = json.loads(write_cityjson(tmp_path / "shed.json", shed).read_text())
    result = import_city_files([tmp_path / "src.city.json", tmp_path / "shed.json"])
    assert [b.building_id for b in result.buildings] == ["B1"] and result.errors == []
    (line,) = result.skipped
    _one_line(line, "shed.json", "building B1", "smaller than half a 3 m cell", "1.8 x 1.8 x 1.8 m")
    assert doc and small


# -- input robustness: encodings, CRS names, semantics, parts, winding --------------------------
def test_cityjson_with_a_utf8_byte_order_mark_is_read(tmp_path):
    """Windows tools write a BOM before the JSON: the file and a sequence are still read."""
    doc = _cityjson_doc(tmp_path)
    plain = tmp_path / "bom.city.json"
    plain.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    header = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")}
    header.update(CityObjects={}, vertices=[])
    feature = {"type": "CityJSONFeature", "id": "B1", "CityObjects": doc["CityObjects"],
               "vertices": doc["vertices"]}
    seq = tmp_path / "bom.city.jsonl"
    seq.write_bytes(b"\xef\xbb\xbf" + (json.dumps(header) + "\n" + json.dumps(feature)).encode())
    for path in (plain, seq):
        city = read_city_file(path)
        assert city.errors == [] and [b.building_id for b in city.buildings] == ["B1"]
        np.testing.assert_array_equal(voxelize_building(city.buildings[0]).labels,
                                      _expected_box_labels())


def test_null_semantic_values_mean_no_semantic_surface(tmp_path):
    """CityJSON allows ``"values": null`` (no semantics for the whole geometry) and nulls
    inside ``values`` (for a solid, a shell or one surface): those faces are Unclassified."""
    doc = _cityjson_doc(tmp_path, box_surfaces(openings=False))
    geom = doc["CityObjects"]["B1"]["geometry"][0]
    n = len(geom["boundaries"])
    variants = {
        "multisurface_null": ("MultiSurface", geom["boundaries"], None, n),
        "multisurface_one_null": ("MultiSurface", geom["boundaries"],
                                  [None] + geom["semantics"]["values"][1:], 1),
        "solid_null_shell": ("Solid", [geom["boundaries"]], [None], n),
        "solid_null_surface": ("Solid", [geom["boundaries"]],
                               [geom["semantics"]["values"][:-1] + [None]], 1),
        "multisolid_null_solid": ("MultiSolid", [[geom["boundaries"]]], [None], n),
    }
    for name, (gtype, boundaries, values, n_unclassified) in variants.items():
        geom.update(type=gtype, boundaries=boundaries,
                    semantics={"surfaces": geom["semantics"]["surfaces"], "values": values})
        path = tmp_path / f"{name}.city.json"
        path.write_text(json.dumps(doc))
        city = read_city_file(path)
        assert city.errors == [], name
        (b,) = city.buildings
        assert sum(len(s.polygons) for s in b.surfaces if s.kind == "Unclassified") \
            == n_unclassified, name
        assert sum(len(s.polygons) for s in b.surfaces) == n, name
        imp = voxelize_building(b)
        assert imp.occupancy.shape == (3, 2, 2) and imp.occupancy.all(), name


def test_semantic_values_that_do_not_match_the_boundaries_are_one_line(tmp_path):
    """Too few values, a shell whose values are off by one (while the total matches), an
    index past ``surfaces``, a number where an array belongs: one line each, naming the
    file and the building, and the good building of the file still imports."""
    doc = _cityjson_doc(tmp_path, box_surfaces(openings=False))
    good = doc["CityObjects"]["B1"]
    geom = good["geometry"][0]
    b, v, sem = geom["boundaries"], geom["semantics"]["values"], geom["semantics"]["surfaces"]

    def building(gtype, boundaries, values):
        return {"type": "Building", "geometry": [{
            "type": gtype, "lod": "2", "boundaries": boundaries,
            "semantics": {"surfaces": sem, "values": values}}]}

    doc["CityObjects"].update({
        "SHORT": building("MultiSurface", b, v[:-2]),
        "SHELLS": building("Solid", [b[:3], b[3:]], [v[:2], v[2:]]),    # 3 + 3 vs 2 + 4
        "INDEX": building("MultiSurface", b, v[:-1] + [99]),
        "NOTLIST": building("Solid", [b], 3),
    })
    path = tmp_path / "values.city.json"
    path.write_text(json.dumps(doc))
    city = read_city_file(path)
    assert [x.building_id for x in city.buildings] == ["B1"]
    assert len(city.errors) == 4
    expected = {"SHORT": "semantics 'values' has 4 entries for 6 surfaces",
                "SHELLS": "semantics 'values[0]' has 2 entries for 3 surfaces",
                "INDEX": "semantics 'values[5]' is 99, not an index into the 6 semantic surfaces",
                "NOTLIST": "semantics 'values' must be an array or null, got int"}
    for err, (bid, what) in zip(city.errors, expected.items()):
        _one_line(err, str(path), f"building {bid}:", what)
        assert "Error" not in err           # not an internal IndexError / TypeError
    result = import_city_files([path])
    assert [x.building_id for x in result.buildings] == ["B1"] and result.errors == city.errors


def test_crs_name_forms_including_the_old_gml_srs_url():
    for name in ("http://www.opengis.net/gml/srs/epsg.xml#25832", "EPSG:25832",
                 "urn:ogc:def:crs:EPSG::25832", "urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::7837",
                 "http://www.opengis.net/def/crs/EPSG/0/25832",
                 "https://www.opengis.net/def/crs/EPSG/0/25832"):
        assert parse_epsg(name) == 25832, name
        assert crs_problem(name, parse_epsg(name)) is None, name
    assert "geographic" in crs_problem("http://www.opengis.net/gml/srs/epsg.xml#4326", 4326)


def test_web_mercator_is_refused_with_a_hint_to_reproject(tmp_path):
    """EPSG:3857 is projected, but its metres are 1/cos(latitude) ground metres (~1.6 at
    50 N): a building in it would be voxelised too big."""
    for name in ("EPSG:3857", "urn:ogc:def:crs:EPSG::3857", "EPSG:900913", "EPSG:3785",
                 "EPSG:102100", "EPSG:102113", "ESRI:102100", "WGS 84 / Pseudo-Mercator",
                 "http://www.opengis.net/def/crs/EPSG/0/3857"):
        problem = crs_problem(name, parse_epsg(name))
        assert problem and "Web Mercator" in problem and "UTM" in problem, name
    path = write_cityjson(tmp_path / "merc.city.json", box_surfaces(), crs="EPSG:3857")
    result = import_city_files([path])
    assert result.buildings == [] and len(result.errors) == 1
    _one_line(result.errors[0], str(path), "building B1", "Web Mercator CRS 'EPSG:3857'",
              "not metres on the ground", "reproject to a projected metric CRS")


ADDRESS_4326 = ('<bldg:address><core:Address><core:multiPoint><gml:MultiPoint><gml:pointMember>'
                '<gml:Point srsName="EPSG:4326"><gml:pos>48.76 11.42 0</gml:pos></gml:Point>'
                "</gml:pointMember></gml:MultiPoint></core:multiPoint></core:Address>"
                "</bldg:address>")


def test_building_crs_comes_from_its_geometry_not_its_address_point(tmp_path):
    """An Address's gml:Point in EPSG:4326 comes before the geometry: the building's CRS is
    still its surfaces' (or its envelope's, or the file's)."""
    def with_address(bid, srs_on_geometry=None, envelope=None):
        xml = gml2_building(bid, box_surfaces())
        head = f'<bldg:Building gml:id="{bid}">'
        extra = ADDRESS_4326
        if envelope:
            extra = (f'<gml:boundedBy><gml:Envelope srsName="{envelope}" srsDimension="3">'
                     "<gml:lowerCorner>0 0 0</gml:lowerCorner><gml:upperCorner>1 1 1"
                     "</gml:upperCorner></gml:Envelope></gml:boundedBy>") + extra
        xml = xml.replace(head, head + extra)
        if srs_on_geometry:
            xml = xml.replace("<gml:Solid>", f'<gml:Solid srsName="{srs_on_geometry}">')
        return xml

    # the file's envelope gives the CRS; the building's only srsName is the address point
    in_file = write_gml2(tmp_path / "file.gml", [with_address("A")], srs="EPSG:25832")
    # no file envelope: the geometry's srsName (after the address in document order)
    on_geom = write_gml2(tmp_path / "geom.gml", [with_address("G", "EPSG:25832")], srs=None)
    # no file envelope, no srsName on the geometry: the building's envelope
    on_env = write_gml2(tmp_path / "env.gml", [with_address("E", envelope="EPSG:25832")], srs=None)
    for path in (in_file, on_geom, on_env):
        (b,) = read_city_file(path).buildings
        assert (b.crs, b.epsg) == ("EPSG:25832", 25832), path
        np.testing.assert_array_equal(voxelize_building(b).labels, _expected_box_labels())
    # only the address has an srsName: no CRS at all (not "geographic")
    nothing = write_gml2(tmp_path / "none.gml", [with_address("N")], srs=None)
    city = read_city_file(nothing)
    assert city.crs is None and city.buildings[0].crs is None
    (err,) = import_city_files([nothing]).errors
    _one_line(err, "building N", "no CRS")


def test_a_folder_of_citygml_suffixed_files_is_imported(tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    write_gml2(folder / "box.citygml", [gml2_building("C", box_surfaces())])
    (folder / "readme.txt").write_text("not a city file")
    from proc_ml.citygml import expand_paths

    assert expand_paths([folder]) == [folder / "box.citygml"]
    assert read_city_file(folder / "box.citygml").format == "CityGML 2.0"
    result = import_city_files([folder])
    assert result.errors == [] and [b.building_id for b in result.buildings] == ["C"]


def test_closed_inside_out_shell_is_flipped_with_a_note(tmp_path):
    """Every face (openings too) wound inward: the closed shell's signed volume is negative,
    so it is turned round, noted, and imports exactly like the box."""
    inverted = [(k, e[::-1].copy(), [h[::-1].copy() for h in hs], p)
                for k, e, hs, p in box_surfaces()]
    (b,) = read_city_file(write_cityjson(tmp_path / "inv.city.json", inverted)).buildings
    imp = voxelize_building(b)
    _check_contract(imp)
    assert "faces were wound inside out; flipped" in imp.notes
    assert b.notes == []                                  # the read building is not changed
    assert imp.occupancy.all() and imp.stats["shell_volume_m3"] == pytest.approx(324.0)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    assert imp.stats["openings"]["turned_round"] == 0 and imp.stats["watertight"] is True
    # a box wound the right way is left alone
    (good,) = read_city_file(write_cityjson(tmp_path / "ok.city.json", box_surfaces())).buildings
    assert not any("inside out" in n for n in voxelize_building(good).notes)


def test_building_parts_without_parents_or_children_links(tmp_path):
    """A BuildingPart naming no parent imports as its own building (with a note); parts
    joined to their Building by ``parents`` only, or by ``children`` only, are merged and
    never make "failed" lines of their own."""
    tall = box_surfaces((6.0, 6.0, 9.0), openings=False)
    low = [(k, e + np.array([6.0, 0, 0]), [h + np.array([6.0, 0, 0]) for h in hs], p)
           for k, e, hs, p in box_surfaces((6.0, 6.0, 3.0), openings=False)]
    doc = _cityjson_doc(tmp_path, tall + low)
    geom = doc["CityObjects"].pop("B1")["geometry"][0]
    n = len(tall)

    def part(sl, **links):
        return dict(type="BuildingPart", geometry=[dict(
            geom, boundaries=geom["boundaries"][sl],
            semantics={"surfaces": geom["semantics"]["surfaces"],
                       "values": geom["semantics"]["values"][sl]})], **links)

    expected = np.zeros((4, 2, 3), bool)
    expected[:2] = True
    expected[2:, :, 0] = True
    layouts = {
        "parents_only": {"T": {"type": "Building"},
                         "T-1": part(slice(0, n), parents=["T"]),
                         "T-2": part(slice(n, None), parents=["T"])},
        "children_only": {"T": {"type": "Building", "children": ["T-1", "T-2"]},
                          "T-1": part(slice(0, n)), "T-2": part(slice(n, None))},
    }
    for name, objects in layouts.items():
        path = tmp_path / f"{name}.city.json"
        path.write_text(json.dumps(dict(doc, CityObjects=objects)))
        result = import_city_files([path], check_watertight=False)
        assert result.errors == [], name
        (imp,) = result.buildings
        assert imp.building_id == "T", name
        np.testing.assert_array_equal(imp.occupancy.astype(bool), expected)
        assert read_city_file(path).buildings[0].part_ids == ("T-1", "T-2")

    lone = tmp_path / "lone.city.json"
    lone.write_text(json.dumps(dict(doc, CityObjects={"P1": part(slice(0, n))})))
    city = read_city_file(lone)
    assert city.errors == []
    (b,) = city.buildings
    assert b.building_id == "P1" and b.part_ids == ("P1",)
    assert "a BuildingPart with no parent Building: imported as a building" in b.notes
    imp = voxelize_building(b)
    assert imp.occupancy.shape == (2, 2, 3) and imp.occupancy.all()
    assert any("no parent Building" in note for note in imp.notes)


# -- dangling references, copies, several LoDs, lone parts, open inside-out shells ------------
def _without_surface(xml: str, sid: str, replacement: str = "") -> str:
    """``xml`` with the ``bldg:boundedBy`` holding surface ``sid`` replaced."""
    head = xml.index(f'gml:id="{sid}"')
    start = xml.rindex("<bldg:boundedBy>", 0, head)
    end = xml.index("</bldg:boundedBy>", head) + len("</bldg:boundedBy>")
    return xml[:start] + replacement + xml[end:]


def test_dangling_xlink_references_skip_only_the_missing_pieces(tmp_path):
    """References to ids that are not in the file: the building imports without those
    pieces, with a note naming the missing ids (3 named, then a count)."""
    xml = gml2_building("R", box_surfaces(openings=False))
    for i in (0, 2, 3, 4):                  # the solid's references: the surfaces are there
        xml = xml.replace(f'xlink:href="#R_p{i}"', f'xlink:href="#gone{i}"')
    # a whole wall (the +x one) replaced by a reference to a surface that is not in the file
    xml = _without_surface(xml, "R_s3", '<bldg:boundedBy xlink:href="#gone_wall"/>')
    city = read_city_file(write_gml2(tmp_path / "dangling.gml", [xml]))
    assert city.errors == []
    (b,) = city.buildings
    assert sorted(s.kind for s in b.surfaces) == ["GroundSurface", "RoofSurface"] + \
        ["WallSurface"] * 3
    (note,) = [n for n in b.notes if "xlink" in n]
    assert note == ("5 xlink:href references to ids not in the file: '#gone0', '#gone2', "
                    "'#gone3' (+2 more) skipped")
    imp = voxelize_building(b)                       # the flux fill needs no walls
    assert imp.occupancy.shape == (3, 2, 2) and imp.occupancy.all() and note in imp.notes
    assert imp.stats["open_edge_m"] == pytest.approx(24.0)


def _doubled(surfaces, offset=0.002, reverse_every=0):
    """Every polygon twice: the copy ``offset`` m away (along x, y and z), every
    ``reverse_every``-th copy wound the other way."""
    out = []
    for i, (k, e, hs, p) in enumerate(surfaces):
        shift = np.array([offset, -offset, offset])
        copy = e + shift
        if reverse_every and i % reverse_every == 0:
            copy = copy[::-1].copy()
        out += [(k, e, hs, p), (k, copy, [h + shift for h in hs], None if p is None else 2 * p)]
    return out


def test_polygons_written_twice_are_dropped_with_a_note(tmp_path):
    """An exporter that writes every polygon twice (a copy 2 mm off, some wound the other
    way): the copies cancel or double the flux; one of each pair is kept, the building
    imports like the box, and a note counts the copies."""
    surfaces = _doubled(box_surfaces(), reverse_every=3)
    (b,) = read_city_file(write_cityjson(tmp_path / "twice.city.json", surfaces)).buildings
    n = len(box_surfaces())
    assert sum(len(s.polygons) for s in b.surfaces) == n
    assert f"{n} duplicate polygons dropped (a copy of another within 1 cm, 4 of them wound " \
           "the other way)" in b.notes
    imp = voxelize_building(b)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    assert imp.stats["shell_volume_m3"] == pytest.approx(324.0) and imp.stats["watertight"]
    # CityGML: the building's solid written with its own copies of the polygons (2 mm off)
    # instead of references to the boundary surfaces'
    solid = "".join(f"<gml:surfaceMember>{_polygon(f'c{i}', e + 0.002, hs, 0.0)}"
                    f"</gml:surfaceMember>"
                    for i, (_, e, hs, _) in enumerate(box_surfaces(openings=False)))
    xml = gml2_building("D", box_surfaces(openings=False), lod=2)
    xml = xml[:xml.index("<gml:CompositeSurface>") + len("<gml:CompositeSurface>")] + solid + \
        xml[xml.index("</gml:CompositeSurface>"):]
    (b,) = read_city_file(write_gml2(tmp_path / "copies.gml", [xml])).buildings
    assert [s.kind for s in b.surfaces].count("Unclassified") == 0
    assert "6 duplicate polygons dropped (a copy of another within 1 cm)" in b.notes
    assert voxelize_building(b).stats["shell_volume_m3"] == pytest.approx(324.0)


def test_polygons_that_share_edges_or_lie_apart_are_not_copies(tmp_path):
    """Walls split in two along a shared edge, a roof split along its diagonal, a pane 5 cm
    behind a frame of the same shape: nothing is dropped, no note; nor in the real files."""
    X, Z = 9.0, 6.0
    split = []
    for kind, e, hs, p in box_surfaces(openings=False):
        if kind == "RoofSurface":
            split += [(kind, e[[0, 1, 2]], [], None), (kind, e[[0, 2, 3]], [], None)]
        elif kind == "WallSurface" and np.allclose(e[:, 1], 0):     # the -y wall, in two
            n = newell(e)
            split += [(kind, _facing(_rect_y(0, 0, 4.5, 0, Z), n), [], None),
                      (kind, _facing(_rect_y(0, 4.5, X, 0, Z), n), [], None)]
        else:
            split.append((kind, e, hs, p))
    frame = _facing(_rect_x(X, 2.0, 3.0, 1.0, 2.0), (1, 0, 0))
    split += [("Window", frame, [], None), ("Window", frame - [0.05, 0, 0], [], None)]
    (b,) = read_city_file(write_cityjson(tmp_path / "shared.city.json", split)).buildings
    assert sum(len(s.polygons) for s in b.surfaces) == len(split)
    assert not any("duplicate" in n for n in b.notes)
    for name in ("4018265.xml", "4018142.xml"):
        (real,) = read_city_file(DATA / name).buildings
        assert not any("duplicate" in n for n in real.notes), name


def _gml_part(pid, surfaces, lod):
    inner = gml2_building(pid, surfaces, lod=lod).split(f'<bldg:Building gml:id="{pid}">', 1)[1]
    inner = inner.rsplit("</bldg:Building>", 1)[0]
    return (f'<bldg:consistsOfBuildingPart><bldg:BuildingPart gml:id="{pid}">{inner}'
            f"</bldg:BuildingPart></bldg:consistsOfBuildingPart>")


def test_a_wall_two_building_parts_share_is_kept_on_both_sides(tmp_path):
    """Two closed BuildingParts side by side: the wall they share is written once per part,
    wound the other way round. That is no copy: both sides are kept (no note), the shell
    stays watertight, and wound inside out it is still turned round (it used to lose one
    side, read as too open to turn, and fail as an empty building)."""
    a = box_surfaces((6.0, 6.0, 6.0), openings=False)
    b = [(k, e + np.array([6.0, 0, 0]), [], p) for k, e, _, p in a]
    for inside_out in (False, True):
        pa, pb = ([(k, e[::-1].copy(), [], p) for k, e, _, p in part] if inside_out else part
                  for part in (a, b))
        doc = _cityjson_doc(tmp_path, pa + pb)
        geom = doc["CityObjects"].pop("B1")["geometry"][0]
        n = len(pa)

        def part(sl):
            return {"type": "BuildingPart", "parents": ["T"], "geometry": [dict(
                geom, boundaries=geom["boundaries"][sl],
                semantics={"surfaces": geom["semantics"]["surfaces"],
                           "values": geom["semantics"]["values"][sl]})]}

        doc["CityObjects"] = {"T": {"type": "Building", "children": ["T-1", "T-2"]},
                              "T-1": part(slice(0, n)), "T-2": part(slice(n, None))}
        path = tmp_path / f"shared{int(inside_out)}.city.json"
        path.write_text(json.dumps(doc))
        xml = ('<core:cityObjectMember><bldg:Building gml:id="T">' + _gml_part("T-1", pa, 2)
               + _gml_part("T-2", pb, 2) + "</bldg:Building></core:cityObjectMember>")
        gml = write_gml2(tmp_path / f"shared{int(inside_out)}.gml", [xml])
        for source in (path, gml):
            (bld,) = read_city_file(source).buildings
            assert sum(len(s.polygons) for s in bld.surfaces) == 2 * n, source
            assert not any("duplicate" in x for x in bld.notes), (source, bld.notes)
            imp = voxelize_building(bld)
            assert imp.occupancy.shape == (4, 2, 2) and imp.occupancy.all(), source
            assert imp.stats["watertight"] is True, source
            assert ("faces were wound inside out; flipped" in imp.notes) == inside_out, source
    # copies of one polygon within a part, either winding, are still dropped
    (one,) = read_city_file(write_cityjson(tmp_path / "twice.city.json",
                                           _doubled(a, reverse_every=2))).buildings
    assert f"{n} duplicate polygons dropped (a copy of another within 1 cm, 3 of them wound " \
           "the other way)" in one.notes


def test_a_part_or_a_roof_only_in_a_lower_lod_is_included_with_a_note(tmp_path):
    """The highest LoD is used; a BuildingPart modelled only in LoD2 beside a LoD3 part is
    added at LoD2, and a roof that exists only in LoD2 closes a LoD3 facade model -- both
    said in the notes; a generalised LoD1 solid of the whole building is not added (it lies
    inside the LoD3 geometry), and the note counts what was not imported."""
    tall = box_surfaces((6.0, 6.0, 9.0), openings=False)
    low = [(k, e + np.array([6.0, 0, 0]), [h + np.array([6.0, 0, 0]) for h in hs], p)
           for k, e, hs, p in box_surfaces((6.0, 6.0, 3.0), openings=False)]
    lod1 = "".join(f"<gml:surfaceMember>{_polygon(f'g{i}', e, [], 0.0)}</gml:surfaceMember>"
                   for i, (_, e, _, _) in enumerate(box_surfaces((12.0, 6.0, 9.0), openings=False)))
    xml = ('<core:cityObjectMember><bldg:Building gml:id="T">'
           f"<bldg:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface>{lod1}"
           "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod1Solid>"
           + _gml_part("T-1", tall, 3) + _gml_part("T-2", low, 2)
           + "</bldg:Building></core:cityObjectMember>")
    expected = np.zeros((4, 2, 3), bool)
    expected[:2] = True
    expected[2:, :, 0] = True
    (b,) = read_city_file(write_gml2(tmp_path / "parts.gml", [xml])).buildings
    assert b.lod == 3 and sorted({s.lod for s in b.surfaces}) == [2, 3]
    assert "BuildingPart T-2 only in LoD2: included at LoD2 (6 polygons)" in b.notes
    assert "LoD3 used; also has LoD 1 (6 polygons), not imported" in b.notes
    imp = voxelize_building(b, check_watertight=False)
    np.testing.assert_array_equal(imp.occupancy.astype(bool), expected)

    # a LoD3 facade model whose roof is only in LoD2
    box = box_surfaces()
    roofless = [s if s[0] != "RoofSurface" else ("ClosureSurface", s[1], [], None)
                for s in box]                  # keeps the openings' parent indices
    xml = _without_surface(gml2_building("F", roofless), "F_s4").replace(
        '<gml:surfaceMember xlink:href="#F_p4"/>', "")
    roof = next(s for s in box if s[0] == "RoofSurface")
    lod2_roof = (f'<bldg:boundedBy><bldg:RoofSurface gml:id="F_roof2"><bldg:lod2MultiSurface>'
                 f"<gml:MultiSurface><gml:surfaceMember>{_polygon('F_r2', roof[1], [], 0.0)}"
                 f"</gml:surfaceMember></gml:MultiSurface></bldg:lod2MultiSurface>"
                 f"</bldg:RoofSurface></bldg:boundedBy>")
    xml = xml.replace("</bldg:Building>", lod2_roof + "</bldg:Building>")
    (b,) = read_city_file(write_gml2(tmp_path / "facade.gml", [xml])).buildings
    assert b.notes == ["no RoofSurface in LoD3: taken from LoD2 (1 polygon)"]
    assert [s.lod for s in b.surfaces if s.kind == "RoofSurface"] == [2]
    imp = voxelize_building(b)
    assert imp.occupancy.shape == (3, 2, 2) and imp.occupancy.all()
    expected = _expected_box_labels()
    np.testing.assert_array_equal(imp.labels, expected)   # the roof window was in the roof


def test_cityjson_parts_and_surfaces_in_lower_lods(tmp_path):
    """CityJSON: a BuildingPart with only LoD 2.2 beside a LoD3 part is added; one inside the
    LoD3 part is not (noted); a roof only in LoD2 fills in for a LoD3 model without one."""
    tall = box_surfaces((6.0, 6.0, 9.0), openings=False)
    low = [(k, e + np.array([6.0, 0, 0]), [h + np.array([6.0, 0, 0]) for h in hs], p)
           for k, e, hs, p in box_surfaces((6.0, 6.0, 3.0), openings=False)]
    inner = [(k, e * 0.5 + np.array([1.5, 1.5, 0]), [], p) for k, e, _, p in tall]
    doc = _cityjson_doc(tmp_path, tall + low + inner)
    geom = doc["CityObjects"].pop("B1")["geometry"][0]
    n = len(tall)

    def part(sl, lod, parent="T"):
        return {"type": "BuildingPart", "parents": [parent], "geometry": [dict(
            geom, lod=lod, boundaries=geom["boundaries"][sl],
            semantics={"surfaces": geom["semantics"]["surfaces"],
                       "values": geom["semantics"]["values"][sl]})]}

    doc["CityObjects"] = {"T": {"type": "Building", "children": ["T-1", "T-2", "T-3"]},
                          "T-1": part(slice(0, n), "3"), "T-2": part(slice(n, 2 * n), "2.2"),
                          "T-3": part(slice(2 * n, None), "1.2")}
    path = tmp_path / "parts.city.json"
    path.write_text(json.dumps(doc))
    (b,) = read_city_file(path).buildings
    assert "BuildingPart T-2 only in LoD2.2: included at LoD2.2 (6 polygons)" in b.notes
    assert any(x.startswith("BuildingPart T-3 only in LoD1.2, 100% of it inside the LoD3 "
                            "geometry: not included") for x in b.notes), b.notes
    assert "LoD3 used; also has LoD 1.2 (6 polygons), not imported" in b.notes
    imp = voxelize_building(b, check_watertight=False)
    expected = np.zeros((4, 2, 3), bool)
    expected[:2] = True
    expected[2:, :, 0] = True
    np.testing.assert_array_equal(imp.occupancy.astype(bool), expected)

    # one object: LoD3 walls and ground, its roof only in a LoD2 geometry
    doc = _cityjson_doc(tmp_path, box_surfaces(openings=False))
    obj = doc["CityObjects"]["B1"]
    g3 = obj["geometry"][0]
    roof = g3["semantics"]["values"].index(
        next(i for i, x in enumerate(g3["semantics"]["surfaces"]) if x["type"] == "RoofSurface"))
    keep = [i for i in range(len(g3["boundaries"])) if i != roof]
    g2 = dict(g3, lod="2", boundaries=g3["boundaries"],
              semantics=dict(g3["semantics"]))
    obj["geometry"] = [dict(g3, boundaries=[g3["boundaries"][i] for i in keep],
                            semantics={"surfaces": g3["semantics"]["surfaces"],
                                       "values": [g3["semantics"]["values"][i] for i in keep]}),
                       g2]
    path = tmp_path / "roof2.city.json"
    path.write_text(json.dumps(doc))
    (b,) = read_city_file(path).buildings
    assert "no RoofSurface in LoD3: taken from LoD2 (1 polygon)" in b.notes
    assert "LoD3 used; also has LoD 2 (5 polygons), not imported" in b.notes
    imp = voxelize_building(b)
    assert imp.occupancy.all() and imp.stats["watertight"]
    # a LoD3 bottom written as an OuterFloorSurface: the LoD2 ground would be a second one
    floor = [(("OuterFloorSurface" if k == "GroundSurface" else k), e, hs, p)
             for k, e, hs, p in box_surfaces(openings=False)]
    doc = _cityjson_doc(tmp_path, floor)
    obj = doc["CityObjects"]["B1"]
    lod2 = _cityjson_doc(tmp_path, box_surfaces(openings=False))["CityObjects"]["B1"]["geometry"][0]
    obj["geometry"].append(dict(lod2, lod="2"))
    path.write_text(json.dumps(doc))
    (b,) = read_city_file(path).buildings
    assert "no GroundSurface in LoD3; the LoD2 one would not close the shell: not included" \
        in b.notes
    assert "LoD3 used; also has LoD 2 (6 polygons), not imported" in b.notes
    assert voxelize_building(b).stats["shell_volume_m3"] == pytest.approx(324.0)


def test_a_citygml_building_part_without_a_building_is_imported_as_one(tmp_path):
    """A top-level BuildingPart (an extract of one part) imports as its own building with a
    note; a top-level part that a Building refers to by xlink is merged into it instead."""
    part = _gml_part("P1", box_surfaces(), 3)
    lone = part.replace("<bldg:consistsOfBuildingPart>", "<core:cityObjectMember>").replace(
        "</bldg:consistsOfBuildingPart>", "</core:cityObjectMember>")
    linked = _gml_part("P2", box_surfaces((6.0, 6.0, 6.0), openings=False), 2).replace(
        "<bldg:consistsOfBuildingPart>", "<core:cityObjectMember>").replace(
        "</bldg:consistsOfBuildingPart>", "</core:cityObjectMember>")
    holder = ('<core:cityObjectMember><bldg:Building gml:id="H">'
              '<bldg:consistsOfBuildingPart xlink:href="#P2"/></bldg:Building>'
              "</core:cityObjectMember>")
    city = read_city_file(write_gml2(tmp_path / "part.gml", [lone, holder, linked]))
    assert city.errors == []
    assert [(b.building_id, b.part_ids) for b in city.buildings] == [("P1", ("P1",)),
                                                                    ("H", ("P2",))]
    p1 = city.buildings[0]
    assert "a BuildingPart with no Building around it: imported as a building" in p1.notes
    imp = voxelize_building(p1)
    np.testing.assert_array_equal(imp.labels, _expected_box_labels())
    assert any("no Building around it" in n for n in imp.notes)
    assert voxelize_building(city.buildings[1]).occupancy.shape == (2, 2, 2)


def test_open_inside_out_shell_with_small_holes_is_flipped(tmp_path):
    """Inside out and open only where one small window polygon is missing (its hole in
    the wall stays open): turned round with the same note; a shell open by a whole wall
    stays refused (test_grid_size_limit_and_empty_grid), saying the faces seem inward."""
    box = box_surfaces()
    side_window = next(i for i, s in enumerate(box) if s[0] == "Window"
                       and np.allclose(s[1][:, 0], 9.0))
    inverted = [(k, e[::-1].copy(), [h[::-1].copy() for h in hs], p)
                for i, (k, e, hs, p) in enumerate(box) if i != side_window]
    (b,) = read_city_file(write_cityjson(tmp_path / "inv.city.json", inverted)).buildings
    imp = voxelize_building(b)
    _check_contract(imp)
    assert "faces were wound inside out; flipped" in imp.notes
    assert imp.stats["watertight"] is False and imp.stats["open_edge_m"] == pytest.approx(3.7)
    assert imp.occupancy.all() and imp.stats["shell_volume_m3"] == pytest.approx(324.0)
    expected = _expected_box_labels()
    expected[2, 1, 0, 0] = WALL                   # the missing +x window
    np.testing.assert_array_equal(imp.labels, expected)
    # a real LoD3 building (8.6 m of open edges) written inside out comes back as it was
    from dataclasses import replace

    from proc_ml.citygml import Polygon

    (real,) = read_city_file(DATA / "4018265.xml").buildings
    inv = replace(real, surfaces=[replace(s, polygons=[
        Polygon(p.exterior[::-1].copy(), tuple(r[::-1].copy() for r in p.interiors))
        for p in s.polygons]) for s in real.surfaces])
    a, c = (voxelize_building(x, check_watertight=False) for x in (real, inv))
    assert "faces were wound inside out; flipped" in c.notes
    np.testing.assert_array_equal(a.occupancy, c.occupancy)
    np.testing.assert_array_equal(a.labels, c.labels)


def test_error_lines_quote_at_most_a_short_piece_of_the_file(tmp_path):
    """Vertices written as coordinate strings, a posList with a word in it, a huge id, a
    CRS that is a WKT string, a semantic value that is a whole array: one short line each
    (the quoted part cut to ~80 characters), still naming the file and building."""
    long_list = " ".join(f"{500000 + i * 0.123:.3f}" for i in range(200))
    base = _cityjson_doc(tmp_path, box_surfaces(openings=False))
    docs = {
        "verts.city.json": dict(base, vertices=[[long_list, 1, 2]]),
        "crs.city.json": dict(base, metadata={"referenceSystem": "PROJCS[" + "x" * 500 + "]"}),
        "ids.city.json": dict(base, CityObjects={"B" * 500: dict(
            base["CityObjects"]["B1"],
            geometry=[dict(base["CityObjects"]["B1"]["geometry"][0], lod="x" * 300)])}),
    }
    values = dict(base["CityObjects"]["B1"]["geometry"][0])
    values["semantics"] = dict(values["semantics"], values=[list(range(300))] * 6)
    docs["values.city.json"] = dict(base, CityObjects={"V": dict(
        base["CityObjects"]["B1"], geometry=[values])})
    paths = []
    for name, doc in docs.items():
        (tmp_path / name).write_text(json.dumps(doc))
        paths.append(tmp_path / name)
    xml = gml2_building("G" * 300, box_surfaces(openings=False)).replace(
        '<gml:posList srsDimension="3">',
        f'<gml:posList srsDimension="3">{long_list} x{"y" * 300} ', 1)
    paths.append(write_gml2(tmp_path / "junk.gml", [xml]))
    result = import_city_files(paths)
    assert result.buildings == [] and len(result.errors) == len(paths)
    for err, path in zip(result.errors, paths):
        _one_line(err, str(path))
        assert len(err) - len(str(path)) <= 200, err
    assert "could not convert string to float" in result.errors[0]
    assert "unknown CRS 'PROJCS[xxx" in result.errors[1]
    _one_line(result.errors[2], "building BBBB", "...", "geometry without a valid 'lod' ('xxx")
    assert "semantics 'values[0][0]'" not in result.errors[3]
    _one_line(result.errors[4], "building GGG", "coordinates that are not numbers ('xyyy")
