"""Feature encoding shared by training and inference (numpy only).

The same functions turn a building's occupancy (and, optionally, its style features) into
the inputs every model reads, so a DCC node computes exactly what training saw.

* ``grid_channels``: ``float32[C, X, Y, Z]`` for the convolutional nets.
* ``adjacency_features``: one row per occupied cell for the per-cell MLP (``adjacency.csv``).

Style features are optional: massing from a user's block-out has none, so every encoder
has a ``style=None`` form and a model trained that way predicts from massing alone.
"""

from __future__ import annotations

import numpy as np

from .errors import DatasetError
from .grid import DIRECTIONS, exterior_faces, neighbours, NO_PART

#: Per-building style features written by the generator, in this order.
STYLE_FEATURES = (
    "street:+x", "street:-x", "street:+y", "street:-y",
    "window_period:1", "window_period:2", "window_period:3",
    "shopfront", "balconies",
)
#: Coordinate phases the window rhythm and balcony floors are set by.
PHASE_FEATURES = ("phase_x2", "phase_x3", "phase_y2", "phase_y3", "phase_z2")
_PHASES = ((0, 2), (0, 3), (1, 2), (1, 3), (2, 2))

GRID_CHANNELS = ("occupancy", "ground_floor") + PHASE_FEATURES
ADJACENCY_BASE = tuple(f"n{d}" for d in DIRECTIONS) + (
    "height_norm", "floor", "ground_floor") + PHASE_FEATURES
ADJACENCY_STREET = ("street_distance",)

#: Spatial size multiple the grid nets need (two 2x poolings); inputs are padded to it.
GRID_STRIDE = 4


def grid_channel_names(with_style: bool) -> tuple[str, ...]:
    return GRID_CHANNELS + (STYLE_FEATURES if with_style else ())


def adjacency_feature_names(with_style: bool) -> tuple[str, ...]:
    return ADJACENCY_BASE + ((ADJACENCY_STREET + STYLE_FEATURES) if with_style else ())


class StyleError(DatasetError, ValueError):
    """A style vector that is not 9 possible values (a ``ValueError`` to numpy callers, one
    line to the CLI)."""


def style_vector(style, source: str = "style", check_values: bool = True) -> np.ndarray:
    """``float32[9]`` style features (``STYLE_FEATURES`` order), checked: 9 finite numbers
    and, with ``check_values``, values a building can have (one street side, one window
    period, 0/1 flags). ``StyleError`` naming ``source`` otherwise."""
    try:
        vec = np.asarray(style, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise StyleError(f"{source}: must be {len(STYLE_FEATURES)} numbers "
                           f"({', '.join(STYLE_FEATURES)})") from None
    if vec.shape != (len(STYLE_FEATURES),):
        raise StyleError(f"{source}: expected {len(STYLE_FEATURES)} values "
                           f"({', '.join(STYLE_FEATURES)}), got {vec.size}")
    if not np.isfinite(vec).all():
        raise StyleError(f"{source}: values must be finite numbers, got {vec.tolist()}")
    if check_values:
        binary = np.isin(vec, (0.0, 1.0)).all()
        if not binary or vec[:4].sum() != 1 or vec[4:7].sum() != 1:
            raise StyleError(f"{source}: not a possible style {vec.tolist()}: street:* and "
                               f"window_period:* must each be one-hot, shopfront and balconies 0 or 1")
    return vec


def _phase_grids(shape) -> list[np.ndarray]:
    coords = np.indices(shape, sparse=True)
    return [(coords[axis] % period == 0) for axis, period in _PHASES]


def grid_channels(occupancy: np.ndarray, style=None) -> np.ndarray:
    """``float32[C, X, Y, Z]``: occupancy, ground floor, coordinate phases, style (optional).

    All channels other than occupancy are zero outside the building, so padding a grid
    with empty cells never changes the encoding of the cells inside it.
    """
    occ = np.asarray(occupancy, dtype=bool)
    names = grid_channel_names(style is not None)
    out = np.zeros((len(names),) + occ.shape, dtype=np.float32)
    out[0] = occ
    out[1, :, :, 0] = occ[:, :, 0]
    for i, phase in enumerate(_phase_grids(occ.shape)):
        out[2 + i] = occ & phase
    if style is not None:
        vec = style_vector(style, check_values=False)
        out[len(GRID_CHANNELS):] = vec[:, None, None, None] * occ[None]
    return out


def pad_to_stride(channels: np.ndarray, stride: int = GRID_STRIDE) -> np.ndarray:
    """Pad ``[..., X, Y, Z]`` with empty cells at the high end up to a multiple of ``stride``."""
    pads = [(0, 0)] * (channels.ndim - 3) + [(0, (-n) % stride) for n in channels.shape[-3:]]
    return np.pad(channels, pads) if any(p[1] for p in pads) else channels


def street_distance(occupancy: np.ndarray, street_side: int) -> np.ndarray:
    """Cells between each cell and the building's street-most extent along the street normal."""
    occ = np.asarray(occupancy, dtype=bool)
    axis = 0 if street_side in (0, 1) else 1
    coord = np.indices(occ.shape, sparse=True)[axis]
    present = np.nonzero(occ.any(axis=tuple(a for a in range(3) if a != axis)))[0]
    if present.size == 0:
        return np.zeros(occ.shape, dtype=np.float32)
    if street_side in (0, 2):  # street on the + side
        dist = present.max() - coord
    else:
        dist = coord - present.min()
    return np.broadcast_to(dist, occ.shape).astype(np.float32)


def adjacency_features(occupancy: np.ndarray, style=None, street_side: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per occupied cell: ``(coords int32[N, 3], features float32[N, F])``.

    Cells are listed in ``np.nonzero`` order (x, then y, then z), the row order of
    ``faces.csv`` and ``adjacency.csv``. ``street_side`` defaults to the one encoded in
    ``style``.
    """
    occ = np.asarray(occupancy, dtype=bool)
    coords = np.stack(np.nonzero(occ), axis=1).astype(np.int32)
    x, y, z = coords.T
    nb = neighbours(occ)[x, y, z].astype(np.float32)
    top = float(z.max()) if z.size else 0.0
    cols = [nb, (z / max(top, 1.0))[:, None], z[:, None], (z == 0)[:, None]]
    cols += [(phase & occ)[x, y, z][:, None] for phase in
             np.broadcast_arrays(*_phase_grids(occ.shape))]
    if style is not None:
        vec = style_vector(style, check_values=False)
        side = int(np.argmax(vec[:4])) if street_side is None else street_side
        cols.append(street_distance(occ, side)[x, y, z][:, None])
        cols.append(np.broadcast_to(vec, (len(coords), vec.size)))
    feats = np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=1)
    return coords, feats


def face_mask(occupancy: np.ndarray) -> np.ndarray:
    """``bool[X, Y, Z, 6]``: which faces exist and must receive a part."""
    return exterior_faces(occupancy)


def decode_grid_logits(logits: np.ndarray, occupancy: np.ndarray, n_parts: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``logits[6*K, X', Y', Z']`` (possibly padded) -> ``(labels int8[X,Y,Z,6], probs)``.

    ``probs`` is ``float32[X, Y, Z, 6, K]`` softmax; faces that do not exist get -1 / 0.
    """
    occ = np.asarray(occupancy, dtype=bool)
    X, Y, Z = occ.shape
    lg = np.asarray(logits, dtype=np.float32)[:, :X, :Y, :Z]
    lg = lg.reshape(6, n_parts, X, Y, Z).transpose(2, 3, 4, 0, 1)
    return _decode(lg, face_mask(occ))


def decode_cell_logits(logits: np.ndarray, coords: np.ndarray, occupancy: np.ndarray,
                       n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell ``logits[N, 6*K]`` at ``coords`` -> grid ``(labels, probs)`` as above."""
    occ = np.asarray(occupancy, dtype=bool)
    lg = np.zeros(occ.shape + (6, n_parts), dtype=np.float32)
    x, y, z = np.asarray(coords).T
    lg[x, y, z] = np.asarray(logits, dtype=np.float32).reshape(-1, 6, n_parts)
    return _decode(lg, face_mask(occ), owned=True)


def _decode(logits: np.ndarray, mask: np.ndarray, owned: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities, computed in place in one contiguous float32 copy of
    the logits (the copy is skipped when ``owned``): a large grid's logits are the biggest
    arrays of a prediction, and reductions over a transposed view would copy them again."""
    probs = logits if owned and logits.flags.c_contiguous and logits.dtype == np.float32 \
        else np.ascontiguousarray(logits, dtype=np.float32)
    labels = probs.argmax(axis=-1).astype(np.int8)
    labels[~mask] = NO_PART
    probs -= probs.max(axis=-1, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=-1, keepdims=True)
    probs *= mask[..., None]
    return labels, probs
