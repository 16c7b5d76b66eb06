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
from .grid import DIRECTIONS, SIDE_DIRECTIONS, along_axis, exterior_faces, neighbours, NO_PART

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


#: Which sides of the building face the street (multi-hot, +x -x +y -y): the first four
#: style features, and on their own the input of street-aware massing models.
STREET_FEATURES = STYLE_FEATURES[:4]
SIDES = ("+x", "-x", "+y", "-y")


def grid_channel_names(with_style: bool, with_street: bool = False) -> tuple[str, ...]:
    """The legacy channel sets: massing + coordinate phases (+ style or street sides)."""
    return GRID_CHANNELS + (STYLE_FEATURES if with_style else STREET_FEATURES if with_street else ())


#: Cells of neighbouring buildings (the context of party walls), an optional input.
NEIGHBOUR_CHANNEL = "neighbours"
#: Where a cell sits in its run of filled cells along each axis (a facade's bays, a
#: building's storeys): relative position 0..1 and run length / RUN_SCALE along x and y,
#: cells below / above it along z (/ RUN_SCALE). Functions of the massing only, the same
#: wherever the building stands: what a facade rule counts from its own ends.
RUN_FEATURES = ("run_x_pos", "run_x_len", "run_y_pos", "run_y_len", "run_z_below", "run_z_above")
RUN_SCALE = 16.0
#: The bay rhythm of each facade counted from its own ends: for every side direction, 1 on
#: a cell whose side face there sits at a position ``p`` of its facade run (the contiguous
#: side faces of one storey facing one way) with ``p % period == 0``, counted from the
#: run's low-coordinate end and from its high end, for periods 2 and 3 (every other bay,
#: every third bay). The facade-relative form of the legacy coordinate phases: the same
#: wherever the building stands, and what a rule like "a window on every other bay from the
#: facade's left end" reads (a convolutional net cannot count that far from an end on its
#: own; docs/training.md).
BAY_PERIODS = (2, 3)
BAY_FEATURES = tuple(f"bay{period}_{end}:{side}" for side in SIDES
                     for end in ("low", "high") for period in BAY_PERIODS)
#: The storey rhythm counted from the ground: 1 on a cell whose storey ``z`` (its layer
#: above the grid's lowest, the ``ground_floor`` layer) has ``z % period == 0``, for periods
#: 2 and 3 (every other storey, every third). The vertical form of the bay channels: what a
#: rule like "windows on odd storeys" reads, the same under any turn about z (a grid starts
#: at the building's lowest cell: ``proc-ml predict`` labels each mass in a grid of its own).
STOREY_PERIODS = (2, 3)
STOREY_FEATURES = tuple(f"storey{period}" for period in STOREY_PERIODS)
#: Input sets a grid model is trained with (``dataset.inputs`` of a training config):
#: ``style`` and ``massing`` are the original channels (with coordinate phases, which only
#: mean something on the legacy generator); ``street`` is massing + the sides facing the
#: street and nothing tied to absolute grid coordinates; ``street_neighbours`` adds the
#: neighbouring buildings' cells.
GRID_INPUT_SETS = {
    "style": GRID_CHANNELS + STYLE_FEATURES,
    "massing": GRID_CHANNELS,
    "street": ("occupancy", "ground_floor") + STREET_FEATURES,
    "street_neighbours": ("occupancy", "ground_floor") + STREET_FEATURES + (NEIGHBOUR_CHANNEL,),
    "street_runs": ("occupancy", "ground_floor") + RUN_FEATURES + STREET_FEATURES,
    "street_runs_neighbours": ("occupancy", "ground_floor") + RUN_FEATURES + STREET_FEATURES
    + (NEIGHBOUR_CHANNEL,),
    "street_bays": ("occupancy", "ground_floor") + STREET_FEATURES + BAY_FEATURES,
    "street_rhythm": ("occupancy", "ground_floor") + STREET_FEATURES + BAY_FEATURES
    + STOREY_FEATURES,
}


def run_lengths(occ: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(before, after)``: filled cells before / after each filled cell in its contiguous
    run along ``axis`` (0 outside the building)."""
    occ = np.moveaxis(occ, axis, -1)
    n = occ.shape[-1]
    before = np.zeros(occ.shape, dtype=np.int32)
    after = np.zeros(occ.shape, dtype=np.int32)
    for k in range(1, n):
        before[..., k] = np.where(occ[..., k] & occ[..., k - 1], before[..., k - 1] + 1, 0)
    for k in range(n - 2, -1, -1):
        after[..., k] = np.where(occ[..., k] & occ[..., k + 1], after[..., k + 1] + 1, 0)
    before *= occ
    after *= occ
    return np.moveaxis(before, -1, axis), np.moveaxis(after, -1, axis)


def run_features(occupancy: np.ndarray) -> np.ndarray:
    """``float32[6, X, Y, Z]``: the ``RUN_FEATURES`` channels (zero outside the building)."""
    occ = np.asarray(occupancy, dtype=bool)
    out = np.zeros((len(RUN_FEATURES),) + occ.shape, dtype=np.float32)
    for i, axis in enumerate((0, 1)):
        before, after = run_lengths(occ, axis)
        length = before + after + 1
        out[2 * i] = np.where(occ, before / np.maximum(length - 1, 1), 0.0)
        out[2 * i + 1] = np.where(occ, length / RUN_SCALE, 0.0)
    below, above = run_lengths(occ, 2)
    out[4] = below / RUN_SCALE
    out[5] = above / RUN_SCALE
    return out


def bay_features(occupancy: np.ndarray) -> np.ndarray:
    """``float32[len(BAY_FEATURES), X, Y, Z]``: the ``BAY_FEATURES`` channels (zero where a
    cell has no side face in that direction)."""
    occ = np.asarray(occupancy, dtype=bool)
    ext = exterior_faces(occ)
    out = np.zeros((len(BAY_FEATURES),) + occ.shape, dtype=np.float32)
    i = 0
    for d in SIDE_DIRECTIONS:
        before, after = run_lengths(ext[..., d], along_axis(d))
        for count in (before, after):
            for period in BAY_PERIODS:
                out[i] = ext[..., d] & (count % period == 0)
                i += 1
    return out


def unknown_grid_inputs(names) -> list[str]:
    """The names among ``names`` that :func:`grid_inputs` cannot compute."""
    known = (set(GRID_CHANNELS) | set(STYLE_FEATURES) | set(RUN_FEATURES) | set(BAY_FEATURES)
             | set(STOREY_FEATURES) | {NEIGHBOUR_CHANNEL})
    return [n for n in names if n not in known]


def grid_inputs(names, occupancy: np.ndarray, style=None, street=None,
                neighbours: np.ndarray | None = None) -> np.ndarray:
    """``float32[C, X, Y, Z]``: the channels ``names`` (any of :data:`GRID_INPUT_SETS`'s), in
    that order. ``street:*`` channels come from ``street`` (sides) when given, else from the
    style, else are 0 (no side marked); the other style channels from ``style``; ``neighbours`` from ``neighbours``
    (bool[X, Y, Z], zeros when None). Every channel but ``neighbours`` is zero outside the
    building, so padding a grid with empty cells never changes the cells inside it."""
    occ = np.asarray(occupancy, dtype=bool)
    names = list(names)
    out = np.zeros((len(names),) + occ.shape, dtype=np.float32)
    vec = style_vector(style, check_values=False) if style is not None else None
    sides = street_vector(street) if street is not None else (vec[:4] if vec is not None else None)
    phases = dict(zip(PHASE_FEATURES, _PHASES))
    coords = np.indices(occ.shape, sparse=True)
    runs = run_features(occ) if any(n in RUN_FEATURES for n in names) else None
    bays = bay_features(occ) if any(n in BAY_FEATURES for n in names) else None
    for i, name in enumerate(names):
        if name == "occupancy":
            out[i] = occ
        elif name == "ground_floor":
            out[i, :, :, 0] = occ[:, :, 0]
        elif name in phases:
            axis, period = phases[name]
            out[i] = occ & (coords[axis] % period == 0)
        elif name in RUN_FEATURES:
            out[i] = runs[RUN_FEATURES.index(name)]
        elif name in BAY_FEATURES:
            out[i] = bays[BAY_FEATURES.index(name)]
        elif name in STOREY_FEATURES:
            period = STOREY_PERIODS[STOREY_FEATURES.index(name)]
            out[i] = occ & (coords[2] % period == 0)
        elif name in STREET_FEATURES:
            if sides is not None:               # no street given: no side marked
                out[i] = sides[STREET_FEATURES.index(name)] * occ
        elif name in STYLE_FEATURES:
            if vec is None:
                raise DatasetError("this model takes style features")
            out[i] = vec[STYLE_FEATURES.index(name)] * occ
        elif name == NEIGHBOUR_CHANNEL:
            if neighbours is not None:
                nb = np.asarray(neighbours, dtype=bool)
                if nb.shape != occ.shape:
                    raise DatasetError(f"neighbours grid {list(nb.shape)} differs from the "
                                       f"occupancy grid {list(occ.shape)}")
                out[i] = nb & ~occ
        else:
            raise DatasetError(f"unknown grid input '{name}'")
    return out


def adjacency_feature_names(with_style: bool, with_street: bool = False) -> tuple[str, ...]:
    if with_style:
        return ADJACENCY_BASE + ADJACENCY_STREET + STYLE_FEATURES
    return ADJACENCY_BASE + (STREET_FEATURES if with_street else ())


def parse_street(sides, source: str = "--street") -> tuple[str, ...]:
    """Street sides from ``"+x,-y"`` (or a sequence of names) -> ``("+x", "-y")``, in
    ``SIDES`` order; ``DatasetError`` naming ``source`` for anything else."""
    if sides is None:
        return ()
    names = sides.replace(",", " ").split() if isinstance(sides, str) else [str(s) for s in sides]
    bad = [n for n in names if n not in SIDES]
    if bad:
        raise DatasetError(f"{source}: '{bad[0]}' is not a side (use {', '.join(SIDES)}, "
                           f"comma separated, in the input's z-up frame)")
    return tuple(side for side in SIDES if side in names)


def street_vector(sides) -> np.ndarray:
    """``float32[4]``: 1 for each side in ``sides`` (``SIDES`` order)."""
    chosen = parse_street(sides)
    return np.array([side in chosen for side in SIDES], dtype=np.float32)


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


def grid_channels(occupancy: np.ndarray, style=None, street=None) -> np.ndarray:
    """The legacy channel sets (:func:`grid_channel_names`): occupancy, ground floor,
    coordinate phases, then the style (style-aware models) or the street sides."""
    names = grid_channel_names(style is not None, street is not None and style is None)
    return grid_inputs(names, occupancy, style, street)


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


def adjacency_features(occupancy: np.ndarray, style=None, street_side: int | None = None,
                       street=None) -> tuple[np.ndarray, np.ndarray]:
    """Per occupied cell: ``(coords int32[N, 3], features float32[N, F])``.

    Cells are listed in ``np.nonzero`` order (x, then y, then z), the row order of
    ``faces.csv`` and ``adjacency.csv``. ``street_side`` defaults to the one encoded in
    ``style``; without a style, ``street`` (sides) adds the street-side features.
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
    elif street is not None:
        cols.append(np.broadcast_to(street_vector(street), (len(coords), len(STREET_FEATURES))))
    feats = np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=1)
    return coords, feats


def face_mask(occupancy: np.ndarray) -> np.ndarray:
    """``bool[X, Y, Z, 6]``: which faces exist and must receive a part."""
    return exterior_faces(occupancy)


def decode_grid_logits(logits: np.ndarray, occupancy: np.ndarray, n_parts: int,
                       weights=None) -> tuple[np.ndarray, np.ndarray]:
    """``logits[6*K, X', Y', Z']`` (possibly padded) -> ``(labels int8[X,Y,Z,6], probs)``.

    ``probs`` is ``float32[X, Y, Z, 6, K]`` softmax; faces that do not exist get -1 / 0.
    ``weights`` (K, a model's ``decision_weights``): label = argmax(probs x weights).
    """
    occ = np.asarray(occupancy, dtype=bool)
    X, Y, Z = occ.shape
    lg = np.asarray(logits, dtype=np.float32)[:, :X, :Y, :Z]
    lg = lg.reshape(6, n_parts, X, Y, Z).transpose(2, 3, 4, 0, 1)
    return _decode(lg, face_mask(occ), weights)


def decode_cell_logits(logits: np.ndarray, coords: np.ndarray, occupancy: np.ndarray,
                       n_parts: int, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell ``logits[N, 6*K]`` at ``coords`` -> grid ``(labels, probs)`` as above."""
    occ = np.asarray(occupancy, dtype=bool)
    lg = np.zeros(occ.shape + (6, n_parts), dtype=np.float32)
    x, y, z = np.asarray(coords).T
    lg[x, y, z] = np.asarray(logits, dtype=np.float32).reshape(-1, 6, n_parts)
    return _decode(lg, face_mask(occ), weights, owned=True)


def _decode(logits: np.ndarray, mask: np.ndarray, weights=None, owned: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities, computed in place in one contiguous float32 copy of
    the logits (the copy is skipped when ``owned``): a large grid's logits are the biggest
    arrays of a prediction, and reductions over a transposed view would copy them again.
    ``weights``: labels are argmax(probabilities x weights); the probabilities stay as they are."""
    probs = logits if owned and logits.flags.c_contiguous and logits.dtype == np.float32 \
        else np.ascontiguousarray(logits, dtype=np.float32)
    if weights is None:
        labels = probs.argmax(axis=-1).astype(np.int8)
    probs -= probs.max(axis=-1, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=-1, keepdims=True)
    if weights is not None:
        labels = (probs * np.asarray(weights, dtype=np.float32)).argmax(axis=-1).astype(np.int8)
    labels[~mask] = NO_PART
    probs *= mask[..., None]
    return labels, probs


def style_street_sides(style) -> tuple[str, ...]:
    """The street side a style vector marks (its first four features, one-hot), or none."""
    vec = np.asarray(style)[:4]
    return (SIDES[int(np.argmax(vec))],) if vec.sum() == 1 else ()


def entrance_candidates(face_exists: np.ndarray, street) -> np.ndarray:
    """``bool[X, Y, Z, 6]``: the ground-floor faces (z = 0) of the sides facing the street
    (``street``: sides such as ``("+x", "-y")``), where ``face_exists`` (``bool[X, Y, Z, 6]``)."""
    out = np.zeros(face_exists.shape, dtype=bool)
    sides = street_vector(street).astype(bool)
    if face_exists.shape[2]:
        out[:, :, 0, :4] = face_exists[:, :, 0, :4] & sides[None, None, :]
    return out


def apply_entrance_rule(labels: np.ndarray, probs: np.ndarray, street, door: int) -> bool:
    """The entrance rule (``PartsInfo.entrance_rule``): a building whose street ground floor
    has no door face after the decision weights gets one, on the street ground-floor face
    with the highest door probability. Every generated building has its entrance there, so
    a model whose door probabilities stay under the other parts' everywhere would otherwise
    give a building no entrance at all. ``labels`` (``int8[X, Y, Z, 6]``) is changed in
    place; returns whether a door was placed."""
    if not street:
        return False
    candidates = entrance_candidates(labels >= 0, street)
    if not candidates.any() or (labels[candidates] == door).any():
        return False
    door_prob = np.where(candidates, probs[..., door], -1.0)
    labels[np.unravel_index(int(door_prob.argmax()), door_prob.shape)] = door
    return True
