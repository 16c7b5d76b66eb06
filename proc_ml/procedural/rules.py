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

import numpy as np

from ..grid import DIRECTION_VECTORS, DOWN, NO_PART, UP, along_axis, exterior_faces, shifted
from .parts import Vocabulary


def label_faces(occupancy: np.ndarray, style, vocab: Vocabulary) -> np.ndarray:
    """``int8[X, Y, Z, 6]`` part index per face, ``-1`` where no face exists."""
    occ = np.asarray(occupancy, dtype=bool)
    ext = exterior_faces(occ)
    X, Y, Z = occ.shape
    coords = np.indices(occ.shape, sparse=True)
    ground = coords[2] == 0
    wall, window = vocab.role("wall"), vocab.role("window")
    labels = np.full(occ.shape + (6,), NO_PART, dtype=np.int8)

    for d in range(4):
        u_axis = along_axis(d)
        rhythm = coords[u_axis] % style.window_period == 0
        part = np.where(rhythm, window, wall)
        if d == style.street_side:
            back = [0, 0, 0]
            back[u_axis] = -1
            run_start = ~shifted(ext[..., d], tuple(back), fill=False)
            part = np.where(ground & style.shopfront, vocab.role("shopfront"), part)
            part = np.where(ground & run_start, vocab.role("door"), part)
            if style.balconies:
                upper_even = ~ground & (coords[2] % 2 == 0)
                part = np.where(upper_even & rhythm, vocab.role("balcony"), part)
        labels[..., d] = np.where(ext[..., d], part, NO_PART)

    labels[..., UP] = np.where(ext[..., UP], vocab.role("roof"), NO_PART)
    labels[..., DOWN] = np.where(ext[..., DOWN], np.where(ground, vocab.role("ground"), wall), NO_PART)
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
