"""Face-labelling rules, as a technical artist would write them, vectorised over the grid.

For every exterior face (see ``proc_ml.grid``):

* top faces are **roof** (terraces of set-backs included);
* bottom faces at z = 0 are **ground**; an overhang's underside is **wall**;
* side faces follow the window rhythm: **window** where the coordinate along the facade
  is a multiple of ``window_period``, else **wall**;
* on the street side (faces whose normal is the street direction): on the ground floor
  the first face of every contiguous facade run (lowest coordinate along it) is a
  **door**; the other ground-floor faces are **shopfront** when the building has
  shopfronts; on upper even floors (z % 2 == 0) the rhythm's windows become
  **balcony** when the building has balconies.

Every rule looks at most one cell away plus coordinate phases, so the labels are an
exact function of the massing and the four style features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..grid import (DIRECTION_VECTORS, DOWN, NO_PART, UP, along_axis,
                    exterior_faces_by_direction)
from .parts import Vocabulary

_ROLES = ("wall", "window", "door", "roof", "balcony", "shopfront", "ground")


@lru_cache(maxsize=64)
def _roles(vocab: Vocabulary) -> dict[str, int]:
    return {role: vocab.role(role) for role in _ROLES}


@lru_cache(maxsize=512)
def _side_parts(length: int, height: int, period: int, street: bool, shopfront: bool,
                balconies: bool, vocab: Vocabulary) -> np.ndarray:
    """``int8[length, height]``: a side face's part by (coordinate along the facade, z).

    Everything but the door depends on these two coordinates only, so the table is built
    once per grid shape and style and broadcast over the grid.
    """
    roles = _roles(vocab)
    u = np.arange(length)[:, None]
    z = np.arange(height)[None, :]
    rhythm = u % period == 0
    part = np.where(rhythm, roles["window"], roles["wall"]).astype(np.int8)
    part = np.repeat(part, height, axis=1)
    if street:
        if shopfront:
            part[:, 0] = roles["shopfront"]
        if balconies:
            part[rhythm & (z > 0) & (z % 2 == 0)] = roles["balcony"]
    part.flags.writeable = False
    return part


def _run_starts(faces: np.ndarray, u_axis: int) -> np.ndarray:
    """Faces of a 2-D [X, Y] slice whose previous cell along ``u_axis`` has no such face."""
    head, tail = [slice(None)] * 2, [slice(None)] * 2
    head[u_axis], tail[u_axis] = slice(None, -1), slice(1, None)
    starts = faces.copy()
    np.greater(faces[tuple(tail)], faces[tuple(head)], out=starts[tuple(tail)])
    return starts


def label_faces(occupancy: np.ndarray, style, vocab: Vocabulary) -> np.ndarray:
    """``int8[X, Y, Z, 6]`` part index per face, ``-1`` where no face exists."""
    occ = np.asarray(occupancy, dtype=bool)
    ext = exterior_faces_by_direction(occ)
    X, Y, Z = occ.shape
    roles = _roles(vocab)
    labels = np.full(occ.shape + (6,), NO_PART, dtype=np.int8)

    for d in range(4):
        u_axis = along_axis(d)
        street = d == style.street_side
        table = _side_parts((X, Y)[u_axis], Z, style.window_period, street,
                            street and bool(style.shopfront), street and bool(style.balconies),
                            vocab)
        table = table[None, :, :] if u_axis == 1 else table[:, None, :]
        np.copyto(labels[..., d], table, where=ext[d])
        if street:
            doors = _run_starts(ext[d, :, :, 0], u_axis)
            np.copyto(labels[:, :, 0, d], roles["door"], where=doors)

    np.copyto(labels[..., UP], roles["roof"], where=ext[UP])
    np.copyto(labels[..., DOWN], roles["wall"], where=ext[DOWN])
    np.copyto(labels[:, :, 0, DOWN], roles["ground"], where=occ[:, :, 0])
    return labels


def add_noise(labels: np.ndarray, rate: float, vocab: Vocabulary, rng: np.random.Generator) -> np.ndarray:
    """Replace a fraction ``rate`` of side-face parts by a random side part (off by default)."""
    if rate <= 0:
        return labels
    side_parts = np.array(sorted({vocab.role(r) for r in ("wall", "window", "balcony", "shopfront")}),
                          dtype=np.int8)
    side = labels[..., :4]
    flip = (side != NO_PART) & (rng.random(side.shape) < rate)
    side[flip] = rng.choice(side_parts, size=int(flip.sum()))
    return labels


__all__ = ["label_faces", "add_noise", "DIRECTION_VECTORS"]
