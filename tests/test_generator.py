"""The legacy generator rules (``rules: legacy``): massing, labelling rules, reference
equality, determinism. The facade grammar (the default) is tested in test_facade_grammar.py."""

import numpy as np
import pytest

from proc_ml.errors import ConfigError
from proc_ml.grid import DOWN, NO_PART, UP, along_axis, exterior_faces
from proc_ml.procedural import (ARCHETYPES, DEFAULT_PARTS, Vocabulary, generate_building,
                                load_generator_config)
from proc_ml.procedural.building import Style, draw_massing, building_rng
from proc_ml.procedural.massing import ARCHETYPE_FUNCTIONS, _canvas, height_map, orient
from proc_ml.procedural.reference import generate_building_reference, label_faces_reference
from proc_ml.procedural.rules import add_noise, label_faces

VOCAB = Vocabulary(DEFAULT_PARTS)
P = {name: i for i, name in enumerate(DEFAULT_PARTS)}


def config(*overrides):
    return load_generator_config(None, ["rules=legacy", *overrides])


@pytest.fixture(scope="module")
def buildings():
    """A varied set: every archetype, all style combinations, a non-cubic grid."""
    out = [generate_building(config(), 3, i) for i in range(90)]
    out += [generate_building(config("grid.size=[20,12,14]"), 4, i) for i in range(40)]
    return out


# ---------------------------------------------------------------- invariants

def test_every_exterior_face_has_exactly_one_part(buildings):
    for b in buildings:
        assert b.occupancy.dtype == np.uint8 and set(np.unique(b.occupancy)) <= {0, 1}
        assert b.labels.dtype == np.int8 and b.labels.shape == b.occupancy.shape + (6,)
        assert b.labels.flags.c_contiguous
        ext = exterior_faces(b.occupancy)
        assert (b.labels[ext] >= 0).all() and (b.labels[ext] < len(VOCAB)).all()
        assert (b.labels[~ext] == NO_PART).all()


def test_roof_on_every_exposed_top_including_terraces(buildings):
    terraces = 0
    for b in buildings:
        ext = exterior_faces(b.occupancy)
        assert (b.labels[..., UP][ext[..., UP]] == P["roof"]).all()
        assert (b.labels[..., :4] != P["roof"]).all() and (b.labels[..., DOWN] != P["roof"]).all()
        if b.archetype == "setback":
            top = b.occupancy.sum(axis=2).max()
            z_roofs = np.nonzero(b.labels[..., UP] == P["roof"])[2]
            terraces += int((z_roofs < top - 1).any())
    assert terraces > 0, "no set-back terrace got a roof"


def test_ground_only_at_z0(buildings):
    for b in buildings:
        ground = b.labels == P["ground"]
        assert not ground[..., :DOWN].any() and not ground[:, :, 1:, DOWN].any()
        np.testing.assert_array_equal(ground[:, :, 0, DOWN], b.occupancy[:, :, 0] == 1)


def test_overhang_underside_is_wall():
    occ = np.zeros((3, 3, 4), np.uint8)
    occ[1, 1, :] = 1
    occ[2, 1, 2:] = 1                      # cantilever starting at z = 2
    labels = label_faces(occ, Style(0, 1, False, False), VOCAB)
    assert labels[2, 1, 2, DOWN] == P["wall"]
    assert labels[1, 1, 0, DOWN] == P["ground"]


def street_runs(faces_2d: np.ndarray, u_axis: int):
    """Contiguous runs of True along u_axis in a 2-D [X, Y] mask: lists of (x, y) cells."""
    grid = faces_2d if u_axis == 1 else faces_2d.T
    runs = []
    for w, line in enumerate(grid):
        u = 0
        while u < len(line):
            if line[u]:
                start = u
                while u < len(line) and line[u]:
                    u += 1
                runs.append([(w, v) if u_axis == 1 else (v, w) for v in range(start, u)])
            else:
                u += 1
    return runs


def test_doors_one_per_street_run_on_ground_floor(buildings):
    for b in buildings:
        street, lab = b.style.street_side, b.labels
        doors = lab == P["door"]
        assert not doors[..., 4:].any()
        assert not np.delete(doors, street, axis=3).any(), "door off the street side"
        assert not doors[:, :, 1:].any(), "door above the ground floor"
        ext = exterior_faces(b.occupancy)[:, :, 0, street]
        u_axis = along_axis(street)
        runs = street_runs(ext, u_axis)
        assert runs
        for run in runs:
            at = [cell for cell in run if doors[cell[0], cell[1], 0, street]]
            assert at == [run[0]], f"building {b.building_id}: run {run} has doors at {at}"


def test_shopfronts_and_balconies_follow_style(buildings):
    seen = {"shopfront": 0, "balcony": 0}
    for b in buildings:
        s, lab = b.style, b.labels
        street = s.street_side
        side = lab[..., street]
        for part, allowed in (("shopfront", s.shopfront), ("balcony", s.balconies)):
            mask = lab == P[part]
            assert not np.delete(mask, street, axis=3).any(), f"{part} off the street side"
            if not allowed:
                assert not mask.any()
            seen[part] += int(mask.any())
        shop = side == P["shopfront"]
        assert not shop[:, :, 1:].any()
        ground_faces = (side[:, :, 0] >= 0) & (side[:, :, 0] != P["door"])
        if s.shopfront:
            assert (side[:, :, 0][ground_faces] == P["shopfront"]).all()
        z = np.arange(side.shape[2])
        balcony = side == P["balcony"]
        assert not balcony[:, :, (z == 0) | (z % 2 == 1)].any(), "balcony on ground or odd floor"
        if s.balconies:
            u = np.arange(side.shape[along_axis(street)])
            rhythm = (u % s.window_period == 0)
            rhythm = rhythm[None, :, None] if along_axis(street) == 1 else rhythm[:, None, None]
            upper_even = (z > 0) & (z % 2 == 0)
            expected = (side >= 0) & rhythm & upper_even[None, None, :]
            np.testing.assert_array_equal(balcony, expected)
    assert seen["shopfront"] > 0 and seen["balcony"] > 0


def test_window_rhythm_on_other_sides(buildings):
    for b in buildings:
        for d in range(4):
            if d == b.style.street_side:
                continue
            side = b.labels[..., d]
            u = np.indices(side.shape)[along_axis(d)]
            faces = side >= 0
            want = np.where(u % b.style.window_period == 0, P["window"], P["wall"])
            np.testing.assert_array_equal(side[faces], want[faces])


# ---------------------------------------------------------------- reference equality

@pytest.mark.parametrize("size,count", [([16, 16, 16], 60), ([8, 8, 8], 40), ([24, 12, 20], 30)])
def test_vectorised_matches_per_cell_reference(size, count):
    cfg = config(f"grid.size={size}")
    archetypes = set()
    for i in range(count):
        fast, slow = generate_building(cfg, 21, i), generate_building_reference(cfg, 21, i)
        archetypes.add(fast.archetype)
        assert fast.archetype == slow.archetype and fast.style == slow.style
        np.testing.assert_array_equal(fast.occupancy, slow.occupancy)
        np.testing.assert_array_equal(fast.labels, slow.labels)
    assert len(archetypes) >= 6


def test_vectorised_matches_reference_on_64_cube():
    cfg = config("grid.size=[64,64,64]", "archetypes={slab: 1.0, row_houses: 1.0}")
    for i in range(2):
        fast, slow = generate_building(cfg, 5, i), generate_building_reference(cfg, 5, i)
        np.testing.assert_array_equal(fast.labels, slow.labels)


@pytest.mark.parametrize("parts", [DEFAULT_PARTS, ("wall", "roof", "ground"),
                                   ("ground", "roof", "shopfront", "wall", "chimney")])
def test_label_faces_matches_reference_on_arbitrary_occupancy(parts):
    """Random blobs (overhangs, holes, floating cells) under every style combination."""
    vocab = Vocabulary(parts)
    rng = np.random.default_rng(1)
    for trial in range(24):
        occ = (rng.random((5, 6, 7)) < 0.55).astype(np.uint8)
        style = Style(trial % 4, 1 + trial % 3, bool(trial & 4), bool(trial & 8))
        np.testing.assert_array_equal(label_faces(occ, style, vocab),
                                      label_faces_reference(occ, style, vocab))


def test_custom_vocabulary_fallbacks():
    cfg = config("parts=[wall, window, door, roof, shopfront, ground, chimney]",
                 "style.balcony_probability=1.0")
    names = cfg["parts"]
    for i in range(15):
        b = generate_building(cfg, 8, i)
        assert b.labels.max() < names.index("chimney"), "a part with no rule was assigned"
        np.testing.assert_array_equal(b.labels, generate_building_reference(cfg, 8, i).labels)


# ---------------------------------------------------------------- massing

def test_every_archetype_appears_with_default_weights():
    cfg = config()
    seen = {generate_building(cfg, 0, i).archetype for i in range(200)}
    assert seen == set(ARCHETYPES)


def test_archetype_weights_select():
    cfg = config("archetypes={slab: 0.0, tower: 2.0, setback: 0.0, l_block: 0.0, t_block: 0.0, "
                 "u_block: 0.0, courtyard: 0.0, pagoda: 0.0, row_houses: 0.0}")
    assert {generate_building(cfg, 1, i).archetype for i in range(20)} == {"tower"}


@pytest.mark.parametrize("side", [8, 12, 16, 24, 32, 48, 64])
def test_archetypes_fit_the_grid_uncropped(side):
    """Each archetype's footprint and heights fit before placement, so nothing is cut off."""
    rng = np.random.default_rng(side)
    for name, fn in ARCHETYPE_FUNCTIONS.items():
        for _ in range(5):
            rects, street = fn(rng, side, side, side)
            canvas = _canvas(rects)
            assert canvas.shape[0] <= side and canvas.shape[1] <= side, name
            assert 0 < canvas.max() <= side and (canvas >= 0).all(), name
            assert street in (None, 0, 1, 2, 3)


@pytest.mark.parametrize("size", [[8, 8, 8], [12, 20, 8], [32, 32, 32], [64, 48, 64]])
def test_grid_sizes_give_height_fields_inside_the_grid(size):
    cfg = config(f"grid.size={size}")
    for i in range(12):
        b = generate_building(cfg, 2, i)
        assert b.occupancy.shape == tuple(size)
        heights = b.occupancy.sum(axis=2)
        assert 0 < heights.max() <= size[2] and b.occupancy.sum() > 0
        # Solid columns from the ground up: occupancy == (z < height).
        np.testing.assert_array_equal(b.occupancy, np.arange(size[2]) < heights[..., None])


def test_orient_carries_the_street_side():
    """A marker column on the street side stays on the street side after any quarter turn."""
    hm = np.ones((5, 5), np.int32)
    hm[4, 2] = 9                                   # marker on the +x edge
    marker_side = {(4, 2): 0, (0, 2): 1, (2, 4): 2, (2, 0): 3}
    for seed in range(12):
        turned, street = orient(hm, 0, np.random.default_rng(seed))
        where = tuple(int(v) for v in np.argwhere(turned == 9)[0])
        assert marker_side[where] == street


def test_row_houses_street_faces_the_staggered_fronts():
    cfg = config("archetypes={slab: 0.0, tower: 0.0, setback: 0.0, l_block: 0.0, t_block: 0.0, "
                 "u_block: 0.0, courtyard: 0.0, pagoda: 0.0, row_houses: 1.0}")
    for i in range(10):
        b = generate_building(cfg, 6, i)
        street = b.style.street_side
        # Staggered fronts: the street facade has more than one run of faces at ground level.
        ext = exterior_faces(b.occupancy)[:, :, 0, street]
        assert len(street_runs(ext, along_axis(street))) >= 2


def test_height_map_never_empty_on_tiny_grids():
    for i in range(30):
        hm, _ = height_map(ARCHETYPES[i % len(ARCHETYPES)], np.random.default_rng(i), (4, 4, 4))
        assert hm.any() and hm.max() <= 4


# ---------------------------------------------------------------- determinism and noise

def test_same_seed_and_index_are_deterministic():
    cfg = config()
    a, b = generate_building(cfg, 9, 17), generate_building(cfg, 9, 17)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.style == b.style and a.archetype == b.archetype
    others = [generate_building(cfg, s, i) for s, i in ((10, 17), (9, 18))]
    assert all(not np.array_equal(o.occupancy, a.occupancy) or o.style != a.style for o in others)


def test_draws_do_not_depend_on_call_order():
    cfg = config()
    forward = [draw_massing(cfg, building_rng(4, i))[1] for i in range(6)]
    backward = [draw_massing(cfg, building_rng(4, i))[1] for i in reversed(range(6))][::-1]
    for f, b in zip(forward, backward):
        np.testing.assert_array_equal(f, b)


def test_noise_is_off_by_default_and_changes_only_side_faces():
    assert config()["noise"] == 0.0
    noisy_cfg = config("noise=0.3")
    changed = 0
    side_parts = {P[n] for n in ("wall", "window", "balcony", "shopfront")}
    for i in range(20):
        clean, noisy = generate_building(config(), 5, i), generate_building(noisy_cfg, 5, i)
        np.testing.assert_array_equal(clean.occupancy, noisy.occupancy)
        np.testing.assert_array_equal(clean.labels[..., 4:], noisy.labels[..., 4:])
        np.testing.assert_array_equal(clean.labels >= 0, noisy.labels >= 0)
        diff = clean.labels[..., :4] != noisy.labels[..., :4]
        changed += int(diff.sum())
        assert set(np.unique(noisy.labels[..., :4][diff])) <= side_parts
    assert changed > 0


def test_add_noise_rate_zero_is_identity():
    labels = generate_building(config(), 1, 1).labels
    before = labels.copy()
    out = add_noise(labels, 0.0, VOCAB, np.random.default_rng(0))
    np.testing.assert_array_equal(out, before)


def test_style_vector_round_trip():
    for s in (Style(0, 1, False, False), Style(3, 3, True, True), Style(2, 2, True, False)):
        vec = s.vector()
        assert vec.shape == (9,) and vec.dtype == np.float32 and vec.sum() == 2 + s.shopfront + s.balconies
        assert Style.from_vector(vec) == s


def test_vocabulary_rules():
    with pytest.raises(ConfigError, match="must contain roof"):
        Vocabulary(("wall", "ground"))
    with pytest.raises(ConfigError, match="duplicate"):
        Vocabulary(("wall", "wall", "roof", "ground"))
    v = Vocabulary(("wall", "roof", "ground", "glass"))
    assert v.role("window") == v.role("door") == v.role("balcony") == 0
    colours = v.colours()
    assert colours[:3] == [(200, 190, 170), (170, 50, 50), (90, 90, 90)]
    assert colours[3] == Vocabulary(("glass", "wall", "roof", "ground")).colours()[0]
