"""The facade grammar (``rules: facade``, the default generator): lots, roofs, roles,
entrances, the opening-coverage labels it shares with the real-building import."""

import numpy as np
import pytest

from proc_ml.errors import ConfigError
from proc_ml.grid import DIRECTION_VECTORS, DOWN, NO_PART, UP, exterior_faces
from proc_ml.labelling import MAIN_FACE_MIN_AREA
from proc_ml.procedural import DEFAULT_PARTS, Vocabulary, generate_building, load_generator_config
from proc_ml.procedural.building import generate_legacy_building
from proc_ml.procedural.facades import DOOR, WINDOW, FacadeStyle, label_grid, layout_walls
from proc_ml.procedural.lots import Lot, Wing

P = {name: i for i, name in enumerate(DEFAULT_PARTS)}
VOCAB = Vocabulary(DEFAULT_PARTS)
CELL = 3.0


def config(*overrides):
    return load_generator_config(None, list(overrides))


def style(**changes) -> FacadeStyle:
    base = dict(ground="residential", entrance="centre", back="regular", side="blank",
                bay_width=3.0, window_width=1.2, window_height=1.5, sill=0.9, ground_sill=1.0,
                door_width=1.2, door_height=2.3, windowless_bay=False, attic_windows=False,
                back_door=False, noise=0.0)
    return FacadeStyle(**{**base, **changes})


def house(x0=0.0, width=12.0, depth=9.0, floors=3, roof="flat", **kw) -> Wing:
    eave = 3.5 + (floors - 1) * 3.0
    roles = kw.pop("roles", {"-y": "street", "+y": "back", "-x": "side", "+x": "side"})
    return Wing(x0, x0 + width, 0.0, depth, eave, roof, kw.pop("ridge_x", True),
                kw.pop("pitch", 40.0), kw.pop("max_rise", 6.0), 3.5, 3.0, floors, roles)


def labelled(lot: Lot, shape=(12, 12, 8), st=None, seed=0):
    st = st or style()
    occ = lot.occupancy(shape, CELL)
    layouts = layout_walls(lot, st, np.random.default_rng(seed))
    return occ, label_grid(occ, lot, layouts, st, CELL, VOCAB)


@pytest.fixture(scope="module")
def buildings():
    out = [generate_building(config(), 11, i) for i in range(80)]
    out += [generate_building(config("grid.size=[20,12,14]"), 12, i) for i in range(20)]
    return out


# ---------------------------------------------------------------- invariants
def test_labels_exactly_on_exterior_faces(buildings):
    for b in buildings:
        assert b.occupancy.any()
        np.testing.assert_array_equal(b.labels != NO_PART, exterior_faces(b.occupancy))


def test_roofs_on_top_ground_at_the_bottom(buildings):
    for b in buildings:
        tops = b.labels[..., UP]
        assert set(np.unique(tops[tops >= 0])) <= {P["roof"]}
        bottom = b.labels[:, :, 0, DOWN]
        assert set(np.unique(bottom[bottom >= 0])) <= {P["ground"]}
        sides = b.labels[..., :4]
        assert set(np.unique(sides[sides >= 0])) <= {P["wall"], P["window"], P["door"]}


def test_default_rules_are_the_grammar_and_legacy_stays_available():
    assert config()["rules"] == "facade"
    legacy = config("rules=legacy")
    a, b = generate_building(legacy, 9, 4), generate_legacy_building(legacy, 9, 4)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.archetype in config()["archetypes"]


def test_deterministic_per_building_and_independent_of_order():
    cfg = config()
    first = [generate_building(cfg, 5, i) for i in range(6)]
    again = [generate_building(cfg, 5, i) for i in reversed(range(6))][::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.extras["street"], b.extras["street"])
    assert not np.array_equal(first[0].occupancy, generate_building(cfg, 6, 0).occupancy)


def test_every_block_type_and_roof_occurs():
    cfg = config()
    kinds = {generate_building(cfg, 2, i).archetype for i in range(150)}
    assert {"row", "row_end", "corner", "detached", "island"} <= kinds
    assert kinds & set(cfg["archetypes"])          # legacy massings with grammar facades


def test_street_sides_recorded_and_entrances_on_their_ground_floor(buildings):
    with_street_door = 0
    for b in buildings:
        street = b.extras["street"]
        assert street.any()
        doors = np.argwhere(b.labels == P["door"])
        assert (doors[:, 2] == 0).all(), "doors only on the ground floor"
        on_street = [d for d in doors if street[d[3]]]
        with_street_door += bool(on_street)
    assert with_street_door >= 0.9 * len(buildings)


def test_party_walls_touching_neighbours_are_blank():
    cfg = config("facade.blocks={row: 1.0, row_end: 0.0, corner: 0.0, detached: 0.0, island: 0.0, archetype: 0.0}",
                 "facade.rotation_probability=0.0")
    checked = 0
    for i in range(30):
        b = generate_building(cfg, 3, i)
        nb = b.extras["neighbours"]
        assert nb.any() and not (nb & b.occupancy.astype(bool)).any()
        for d in range(4):
            step = DIRECTION_VECTORS[d]
            beside = np.zeros_like(nb)
            src = tuple(slice(max(0, -s), nb.shape[a] - max(0, s)) for a, s in enumerate(step))
            dst = tuple(slice(max(0, s), nb.shape[a] - max(0, -s)) for a, s in enumerate(step))
            beside[src] = nb[dst]                  # the cell next door is a neighbour's
            faces = b.labels[..., d][beside & (b.labels[..., d] >= 0)]
            checked += faces.size
            assert (faces == P["wall"]).all()
    assert checked > 100


def test_island_lots_face_streets_all_round_with_one_entrance_facade():
    cfg = config("facade.blocks={row: 0.0, row_end: 0.0, corner: 0.0, detached: 0.0, "
                 "island: 1.0, archetype: 0.0}", "facade.rotation_probability=0.0",
                 "facade.opening_noise=0.0", "facade.windowless_bay=0.0", "facade.back_door=0.0",
                 "facade.rear_wing=0.0", "facade.protrusions=0.0", "facade.floors=[3, 4]",
                 "grid.size=[12,12,10]")
    counts = set()
    for i in range(20):
        b = generate_building(cfg, 8, i)
        assert b.archetype == "island"
        street = b.extras["street"]
        counts.add(int(street.sum()))
        assert not b.extras["neighbours"].any()              # free-standing: no party wall
        for d in np.flatnonzero(street):
            faces = b.labels[:, :, 1, d]                     # the first upper floor
            faces = faces[faces >= 0]
            assert faces.size and (faces == P["window"]).mean() > 0.5, (i, d)
        door_sides = {int(d) for d in np.argwhere(b.labels == P["door"])[:, 3]}
        assert len(door_sides) == 1 and street[door_sides.pop()]   # the main street facade
    assert counts == {3, 4}


# ---------------------------------------------------------------- rules, on built lots
def test_same_massing_same_labels_wherever_it_stands():
    lot = Lot("detached", [house()], [], ("-y",))
    occ_a, lab_a = labelled(lot)
    lot.offset = (2 * CELL, 3 * CELL)
    occ_b, lab_b = labelled(lot)
    np.testing.assert_array_equal(occ_b[2:, 3:], occ_a[:-2, :-3])
    np.testing.assert_array_equal(lab_b[2:, 3:], lab_a[:-2, :-3])
    assert (lab_a == P["window"]).any() and (lab_a == P["door"]).any()


def test_bays_from_the_facade_start_one_window_per_bay_and_floor():
    lot = Lot("detached", [house(width=12.0, floors=3)], [], ("-y",))
    occ, lab = labelled(lot, st=style(bay_width=3.0, window_width=1.2))
    front = lab[:4, 0, :3, 3]                  # the -y facade: 4 cells wide, 3 layers
    # a 1.2 m window centred in each 3 m bay covers 1.2 x 1.5 m of its cell face: 20 %
    assert (front[:, 1:] == P["window"]).all()
    # ground floor: windows with the entrance in the middle bay (bays 1 or 2 of 4)
    row = front[:, 0]
    assert (row == P["door"]).sum() == 1 and row[1:3].tolist().count(P["door"]) == 1
    # the back wall is regular, the sides blank
    assert (lab[:4, 2, 1:3, 2] == P["window"]).all()
    assert (lab[0, :3, :3, 1] == P["wall"]).all() and (lab[3, :3, :3, 0] == P["wall"]).all()


def test_coverage_thresholds_and_main_face_match_the_import_rule():
    lot = Lot("detached", [house(width=6.0, floors=2)], [], ("-y",))
    # a window 0.5 m wide centred on a cell boundary: 0.25 m x 1.5 m per face = 4 % (< 8 %)
    # of each face, yet the opening is kept on its main face (>= MAIN_FACE_MIN_AREA m^2)
    st = style(bay_width=6.0, window_width=0.5, ground="plinth", entrance="end")
    occ, lab = labelled(lot, st=st)
    upper = lab[:2, 0, 1, 3]
    assert 0.25 * 1.5 >= MAIN_FACE_MIN_AREA
    assert sorted(upper.tolist()) == [P["wall"], P["window"]]
    # wide enough to cover 8 % of both faces: both are windows
    occ, lab = labelled(lot, st=style(bay_width=6.0, window_width=1.2, ground="plinth"))
    assert (lab[:2, 0, 1, 3] == P["window"]).all()


def test_gable_roof_steps_and_gable_ends():
    wing = house(width=9.0, depth=12.0, floors=2, roof="gable", ridge_x=False, pitch=45.0,
                 max_rise=4.5)
    lot = Lot("detached", [wing], [], ("-y",))
    occ, lab = labelled(lot, st=style(attic_windows=True, back="blank"))
    eave_layer = int(wing.eave // CELL)          # eaves at 6.5 m: layer 2 is under the roof
    width_per_layer = occ.any(axis=1).sum(axis=0)
    assert width_per_layer[eave_layer + 1] < width_per_layer[0]     # the roof narrows
    # ridge along y: the +-x walls are eaves walls; above the eaves their steps are wall
    steps = lab[..., 2:, 0:2]
    assert set(np.unique(steps[steps >= 0])) <= {P["wall"]}
    # the -y gable end carries an attic window above the eaves (attic_windows)
    gable = lab[:, 0, eave_layer:, 3]
    assert (gable == P["window"]).any()


def test_neighbour_in_front_blanks_the_wall_and_layouts_roles():
    main = house(width=9.0, roles={"-y": "street", "+y": "back", "-x": "party", "+x": "side"})
    neighbour = house(x0=-8.0, width=8.0, floors=4)
    lot = Lot("row_end", [main], [neighbour], ("-y",))
    layouts = layout_walls(lot, style(side="regular"), np.random.default_rng(0))
    roles = {lay.wall.side: lay.wall.role for lay in layouts}
    assert roles["-x"] == "party"
    party = next(lay for lay in layouts if lay.wall.side == "-x")
    assert not (party.kinds == WINDOW).any() and not (party.kinds == DOOR).any()
    side = next(lay for lay in layouts if lay.wall.side == "+x")
    assert (side.kinds == WINDOW).any()


def test_rotated_lots_still_label_their_walls():
    cfg = config("facade.rotation_probability=1.0", "facade.rotation_deg=20.0")
    windows = [int((generate_building(cfg, 4, i).labels == P["window"]).sum()) for i in range(10)]
    assert min(windows) >= 0 and sum(w > 0 for w in windows) >= 8


# ---------------------------------------------------------------- configuration
@pytest.mark.parametrize("override, key", [
    ("facade.roof={thatch: 1.0}", "facade.roof.thatch"),
    ("facade.blocks={row: -1.0}", "facade.blocks.row"),
    ("facade.bay_width=[4.0, 2.0]", "facade.bay_width"),
    ("facade.floors=[0, 3]", "facade.floors"),
    ("facade.opening_noise=1.5", "facade.opening_noise"),
    ("facade.shopfront_part=awning", "facade.shopfront_part"),
    ("rules=cga", "rules"),
])
def test_bad_facade_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config(override)


def test_shop_glazing_can_be_its_own_part():
    cfg = config("facade.ground_floor={shop: 1.0, residential: 0.0, plinth: 0.0}",
                 "facade.shopfront_part=shopfront")
    found = sum(int((generate_building(cfg, 1, i).labels == P["shopfront"]).sum()) for i in range(10))
    assert found > 0
    default = config("facade.ground_floor={shop: 1.0, residential: 0.0, plinth: 0.0}")
    assert not any((generate_building(default, 1, i).labels == P["shopfront"]).any() for i in range(10))


# ---------------------------------------------------------------- the mesh path
def test_sloped_meshes_are_closed_labelled_and_voxelise_like_the_height_field():
    from proc_ml.voxelize import is_closed, is_consistently_oriented

    cfg = config("facade.half_cell_offsets=0.0")
    mesh_cfg = config("facade.half_cell_offsets=0.0", "facade.voxelizer=mesh")
    overlaps, sloped = [], 0
    for i in range(12):
        b = generate_building(cfg, 0, i, mesh=True)
        m = b.mesh
        assert is_closed(m.vertices, m.triangles) and is_consistently_oriented(m.vertices, m.triangles)
        assert len(m.triangle_parts) == len(m.triangles)
        assert {P["roof"], P["ground"], P["wall"]} <= set(np.unique(m.triangle_parts).tolist())
        corners = m.vertices[m.triangles]
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        roof = m.triangle_parts == P["roof"]
        sloped += bool((np.abs(normal[roof, 2]) < 0.99).any())
        assert (normal[roof, 2] > 0).all() and (normal[m.triangle_parts == P["ground"], 2] < 0).all()
        via_mesh = generate_building(mesh_cfg, 0, i)
        np.testing.assert_array_equal(via_mesh.labels != NO_PART, exterior_faces(via_mesh.occupancy))
        a, c = b.occupancy.astype(bool), via_mesh.occupancy.astype(bool)
        overlaps.append((a & c).sum() / (a | c).sum())
    assert sloped >= 4                       # gable, hip and mansard roofs are real slopes
    # the import's half-volume rule and predict's centre-inside rule differ on a few roof cells
    assert np.mean(overlaps) > 0.9


def test_generated_meshes_and_points_come_from_the_sloped_mesh(tmp_path):
    import trimesh

    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.formats import point_cloud

    cfg = config("grid.size=[12,12,12]", "points.per_building=300",
                 "facade.roof={flat: 0.0, gable: 1.0, hip: 0.0, mansard: 0.0}",
                 "facade.blocks={row: 1.0, row_end: 0.0, corner: 0.0, detached: 0.0, island: 0.0, archetype: 0.0}")
    generate_dataset(cfg, 2, 4, tmp_path, ("grids", "meshes", "points"), workers=1, progress=False)
    mesh = trimesh.load(tmp_path / "meshes" / "b000000.ply", process=False)
    b = generate_building(cfg, 4, 0, mesh=True)
    assert len(mesh.faces) == len(b.mesh.triangles)
    sloped = ~np.isclose(np.abs(mesh.face_normals).max(axis=1), 1.0, atol=1e-6)
    assert sloped.any()                      # a gable roof, not voxel steps
    points, normals, parts = point_cloud.read(tmp_path / "points" / "b000000.npz")[:3]
    assert len(points) == 300
    assert (~np.isclose(np.abs(normals).max(axis=1), 1.0, atol=1e-4)).any()
    assert set(np.unique(parts).tolist()) <= set(range(len(DEFAULT_PARTS)))


# ---------------------------------------------------------------- configs written from the docs
def test_shopfront_part_labels_every_shop_face_shopfront_never_window():
    # the face holding most of a shop opening used to become "window" (main-face rule)
    cfg = config("facade.ground_floor={shop: 1.0, residential: 0.0, plinth: 0.0}",
                 "facade.shopfront_part=shopfront", "grid.size=[12,12,8]")
    shop = 0
    for i in range(6):
        b = generate_building(cfg, 1, i)
        for d, on in enumerate(b.extras["street"]):
            if on:          # street ground floor: shop glazing and doors only
                ground = b.labels[:, :, 0, d]
                assert not (ground == P["window"]).any(), i
                shop += int((ground == P["shopfront"]).sum())
    assert shop > 0


def test_floors_that_do_not_fit_give_fewer_full_storeys_not_one_squashed_storey():
    from proc_ml.procedural.lots import draw_storeys
    fc = dict(config()["facade"], floors=[6, 8], floor_height=[3.0, 3.0],
              ground_floor_height=[3.5, 3.5])
    n, g, f, eave = draw_storeys(np.random.default_rng(0), fc, 20.0, False)
    assert (n, g, f, eave) == (6, 3.5, 3.0, 18.5)
    # a rear wing stays under its house's eaves with real storeys, not one 13 m storey
    cfg = config("facade.blocks={row: 1, row_end: 0, corner: 0, detached: 0, island: 0, "
                 "archetype: 0}", "facade.floors=[4, 6]", "facade.rear_wing=1.0",
                 "grid.size=[24,24,16]")
    from proc_ml.procedural.building import building_rng, draw_facade_lot
    for i in range(12):
        lot, _, _ = draw_facade_lot(cfg, building_rng(1, i))
        for w in lot.wings:
            assert 3.0 <= w.ground_height <= 4.2 and w.eave <= lot.wings[0].eave + 0.1, i


def test_roof_pitch_of_90_degrees_or_more_is_refused():
    # tan() of such a pitch is huge or negative: roofs dug below the eaves
    for pitch in ("[30, 120]", "[90, 90]"):
        with pytest.raises(ConfigError, match=r"facade\.roof_pitch_deg.*below 90"):
            config(f"facade.roof_pitch_deg={pitch}")
    config("facade.roof_pitch_deg=[0, 89]")


def test_all_zero_weights_error_names_the_set_that_zeroed_them(tmp_path):
    with pytest.raises(ConfigError, match=r"^--set facade\.blocks=.*'facade\.blocks' needs"):
        config("facade.blocks={row: 0, row_end: 0, corner: 0, detached: 0, island: 0, "
               "archetype: 0}")
    yml = tmp_path / "blocks.yaml"
    yml.write_text("facade:\n  blocks: {row: 0, row_end: 0, corner: 0, detached: 0, island: 0}\n")
    with pytest.raises(ConfigError, match=r"^--set facade\.blocks\.archetype=0: "):
        load_generator_config(yml, ["facade.blocks.archetype=0"])
    with pytest.raises(ConfigError, match=r"^--set split\.test=0\.9: config key 'split'"):
        config("split.test=0.9")


def test_docs_gables_only_example_draws_gables_only():
    import re
    import shlex
    from pathlib import Path

    from proc_ml.procedural.building import building_rng, draw_facade_lot
    doc = (Path(__file__).parents[1] / "docs" / "generator.md").read_text()
    line = next(ln for ln in doc.splitlines() if ln.rstrip().endswith("# gables only"))
    args = shlex.split(line.split("#")[0])
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    cfg = config(*[re.sub(r"grid\.size=.*", "grid.size=[16,16,12]", s) for s in sets])
    for i in range(40):
        lot, _, _ = draw_facade_lot(cfg, building_rng(7, i))
        for w in lot.wings:     # projections (their short sides "return" walls) are flat
            assert w.roof == "gable" or "return" in w.roles.values(), (i, lot.block, w.roof)
