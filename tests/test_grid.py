"""Face geometry (proc_ml.grid) and the shared feature encoding (proc_ml.encoding)."""

import numpy as np
import pytest

from proc_ml import encoding
from proc_ml.encoding import (ADJACENCY_BASE, GRID_CHANNELS, GRID_STRIDE, STYLE_FEATURES,
                              adjacency_feature_names, adjacency_features, decode_cell_logits,
                              decode_grid_logits, grid_channel_names, grid_channels, pad_to_stride)
from proc_ml.grid import (DIRECTION_VECTORS, DIRECTIONS, NO_PART, along_axis, check_occupancy,
                          exterior_faces, exterior_faces_by_direction, neighbours, shifted)
from proc_ml.procedural import generate_building, load_generator_config
from proc_ml.procedural.building import Style

SHAPES = [(1, 1, 1), (1, 4, 3), (5, 1, 2), (4, 4, 4), (7, 3, 9), (16, 16, 16)]


def random_occupancy(shape, seed=0, fill=0.5):
    return (np.random.default_rng(seed).random(shape) < fill).astype(np.uint8)


def brute_force_exterior(occ):
    X, Y, Z = occ.shape
    out = np.zeros(occ.shape + (6,), dtype=bool)
    for x, y, z in zip(*np.nonzero(occ)):
        for d, (dx, dy, dz) in enumerate(DIRECTION_VECTORS):
            nx, ny, nz = x + dx, y + dy, z + dz
            inside = 0 <= nx < X and 0 <= ny < Y and 0 <= nz < Z
            out[x, y, z, d] = not (inside and occ[nx, ny, nz])
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_exterior_faces_match_brute_force(shape):
    for seed in range(4):
        occ = random_occupancy(shape, seed)
        ext = exterior_faces(occ)
        assert ext.dtype == bool and ext.shape == shape + (6,)
        np.testing.assert_array_equal(ext, brute_force_exterior(occ))
        np.testing.assert_array_equal(exterior_faces_by_direction(occ), np.moveaxis(ext, -1, 0))


def test_exterior_faces_accept_strided_and_non_binary_input():
    occ = random_occupancy((6, 5, 4), 3) * 7           # any non-zero value is occupied
    view = occ[::-1, :, ::2]
    np.testing.assert_array_equal(exterior_faces(view), brute_force_exterior(view != 0))


def test_neighbours_and_shifted_agree():
    occ = random_occupancy((5, 6, 7), 1).astype(bool)
    nb = neighbours(occ)
    for d, vec in enumerate(DIRECTION_VECTORS):
        np.testing.assert_array_equal(nb[..., d], shifted(occ, tuple(int(v) for v in vec), fill=False))
    np.testing.assert_array_equal(exterior_faces(occ), occ[..., None] & ~nb)


def test_shifted_reads_fill_outside():
    grid = np.arange(24).reshape(2, 3, 4)
    out = shifted(grid, (0, 1, -1), fill=-5)
    assert out[0, 0, 1] == grid[0, 1, 0]
    assert (out[:, 2, :] == -5).all() and (out[:, :, 0] == -5).all()


def test_directions_and_axes():
    assert DIRECTIONS == ("+x", "-x", "+y", "-y", "+z", "-z")
    assert [along_axis(d) for d in range(4)] == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="3-D"):
        check_occupancy(np.zeros((3, 3)))


# ---------------------------------------------------------------- encoding

def building_occupancy():
    cfg = load_generator_config(None, ["grid.size=[10,9,7]"])
    b = generate_building(cfg, 11, 4)
    return b.occupancy, b.style


def test_grid_channels_without_style():
    occ = random_occupancy((6, 5, 7), 2)
    ch = grid_channels(occ)
    assert ch.dtype == np.float32 and ch.shape == (len(GRID_CHANNELS), 6, 5, 7)
    assert grid_channel_names(False) == GRID_CHANNELS
    assert GRID_CHANNELS == ("occupancy", "ground_floor", "phase_x2", "phase_x3", "phase_y2",
                             "phase_y3", "phase_z2")
    x, y, z = np.indices(occ.shape)
    o = occ.astype(bool)
    np.testing.assert_array_equal(ch[0], o)
    np.testing.assert_array_equal(ch[1], o & (z == 0))
    expected = [x % 2 == 0, x % 3 == 0, y % 2 == 0, y % 3 == 0, z % 2 == 0]
    for i, phase in enumerate(expected):
        np.testing.assert_array_equal(ch[2 + i], o & phase)
    assert set(np.unique(ch)) <= {0.0, 1.0}


def test_grid_channels_with_style():
    occ, style = building_occupancy()
    vec = style.vector()
    ch = grid_channels(occ, vec)
    names = grid_channel_names(True)
    assert names == GRID_CHANNELS + STYLE_FEATURES and ch.shape[0] == len(names) == 16
    np.testing.assert_array_equal(ch[:len(GRID_CHANNELS)], grid_channels(occ))
    for i, value in enumerate(vec):
        np.testing.assert_array_equal(ch[len(GRID_CHANNELS) + i], value * occ)
    with pytest.raises(ValueError, match="expected 9 values"):
        grid_channels(occ, vec[:5])


@pytest.mark.parametrize("with_style", [False, True])
def test_pad_to_stride_leaves_inner_cells_unchanged(with_style):
    occ, style = building_occupancy()           # 10 x 9 x 7: every axis needs padding
    vec = style.vector() if with_style else None
    padded = pad_to_stride(grid_channels(occ, vec))
    assert all(n % GRID_STRIDE == 0 for n in padded.shape[1:])
    assert padded.shape[1:] == (12, 12, 8)
    np.testing.assert_array_equal(padded[:, :10, :9, :7], grid_channels(occ, vec))
    assert not padded[:, 10:].any() and not padded[:, :, 9:].any() and not padded[:, :, :, 7:].any()
    # Encoding a padded occupancy gives the same channels as padding the encoding.
    big = np.zeros((12, 12, 8), dtype=np.uint8)
    big[:10, :9, :7] = occ
    np.testing.assert_array_equal(grid_channels(big, vec), padded)
    already = np.zeros((3, 4, 8, 12), np.float32)
    assert pad_to_stride(already) is already


def test_adjacency_features_without_style():
    occ = random_occupancy((5, 4, 6), 5)
    coords, feats = adjacency_features(occ)
    assert coords.dtype == np.int32 and feats.dtype == np.float32
    np.testing.assert_array_equal(coords, np.stack(np.nonzero(occ), 1))
    names = adjacency_feature_names(False)
    assert names == ADJACENCY_BASE and feats.shape == (len(coords), len(names))
    x, y, z = coords.T
    col = {n: feats[:, i] for i, n in enumerate(names)}
    nb = neighbours(occ)[x, y, z]
    for d, name in enumerate(DIRECTIONS):
        np.testing.assert_array_equal(col[f"n{name}"], nb[:, d])
    np.testing.assert_allclose(col["height_norm"], z / z.max())
    np.testing.assert_array_equal(col["floor"], z)
    np.testing.assert_array_equal(col["ground_floor"], z == 0)
    np.testing.assert_array_equal(col["phase_x3"], x % 3 == 0)
    np.testing.assert_array_equal(col["phase_z2"], z % 2 == 0)


@pytest.mark.parametrize("street_side", range(4))
def test_adjacency_features_with_style(street_side):
    occ, _ = building_occupancy()
    style = Style(street_side, 2, True, False)
    coords, feats = adjacency_features(occ, style.vector())
    names = adjacency_feature_names(True)
    assert names == ADJACENCY_BASE + ("street_distance",) + STYLE_FEATURES
    assert feats.shape == (len(coords), 24)
    np.testing.assert_array_equal(feats[:, :len(ADJACENCY_BASE)], adjacency_features(occ)[1])
    np.testing.assert_array_equal(feats[:, -9:], np.broadcast_to(style.vector(), (len(coords), 9)))
    axis = 0 if street_side < 2 else 1
    c = coords[:, axis]
    expected = c.max() - c if street_side in (0, 2) else c - c.min()
    np.testing.assert_array_equal(feats[:, names.index("street_distance")], expected)
    # The street-most cells are at distance 0.
    assert feats[:, names.index("street_distance")].min() == 0


def test_adjacency_features_empty_grid():
    coords, feats = adjacency_features(np.zeros((3, 3, 3), np.uint8), Style(0, 1, False, False).vector())
    assert coords.shape == (0, 3) and feats.shape == (0, 24)


def labelled_example():
    cfg = load_generator_config(None, ["grid.size=[9,10,7]"])
    b = generate_building(cfg, 2, 7)
    return b.occupancy, b.labels, len(cfg["parts"])


def test_decode_grid_logits_recovers_labels_through_padding():
    occ, labels, K = labelled_example()
    logits = np.zeros((6 * K,) + tuple(n + (-n) % 4 for n in occ.shape), np.float32)
    x, y, z, d = np.nonzero(labels >= 0)
    logits[d * K + labels[x, y, z, d], x, y, z] = 8.0   # channel = direction * K + part
    logits[:, 9:] = 50.0                                # padding must be ignored
    out, probs = decode_grid_logits(logits, occ, K)
    assert out.dtype == np.int8 and out.shape == labels.shape
    np.testing.assert_array_equal(out, labels)
    assert probs.shape == labels.shape + (K,) and probs.dtype == np.float32
    face = labels >= 0
    np.testing.assert_allclose(probs[face].sum(-1), 1.0, rtol=1e-5)
    assert not probs[~face].any()
    assert (out[~face] == NO_PART).all()


def test_decode_cell_logits_recovers_labels():
    occ, labels, K = labelled_example()
    coords, _ = adjacency_features(occ)
    x, y, z = coords.T
    per_cell = np.zeros((len(coords), 6, K), np.float32)
    n, d = np.nonzero(labels[x, y, z] >= 0)
    per_cell[n, d, labels[x, y, z][n, d]] = 5.0
    out, probs = decode_cell_logits(per_cell.reshape(len(coords), 6 * K), coords, occ, K)
    np.testing.assert_array_equal(out, labels)
    np.testing.assert_allclose(probs[labels >= 0].max(-1), np.exp(5) / (np.exp(5) + K - 1), rtol=1e-5)


def test_face_mask_is_exterior_faces():
    occ = random_occupancy((4, 5, 6), 9)
    np.testing.assert_array_equal(encoding.face_mask(occ), exterior_faces(occ))


def test_components_match_a_flood_fill():
    from proc_ml.grid import components

    rng = np.random.default_rng(3)
    occ = rng.random((9, 8, 7)) < 0.45
    labels, count = components(occ)
    assert (labels[~occ] == -1).all() and set(np.unique(labels[occ])) == set(range(count))
    # reference: a breadth-first flood fill from every unlabelled cell
    seen, reference = np.zeros(occ.shape, bool), 0
    for start in zip(*np.nonzero(occ)):
        if seen[start]:
            continue
        reference += 1
        stack, seen[start] = [start], True
        while stack:
            cell = stack.pop()
            assert labels[cell] == labels[start]         # one part, one label
            for step in np.vstack([np.eye(3, dtype=int), -np.eye(3, dtype=int)]):
                n = tuple(np.add(cell, step))
                if all(0 <= v < s for v, s in zip(n, occ.shape)) and occ[n] and not seen[n]:
                    seen[n] = True
                    stack.append(n)
    assert count == reference
    assert components(np.zeros((2, 2, 2)))[1] == 0
