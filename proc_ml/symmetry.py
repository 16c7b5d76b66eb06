"""Turns and mirror images of a voxel building, and what they do to its faces and street sides.

The rules a facade follows do not depend on which way the building stands: a window "at the
left end of each run, seen from the street" is there whether the street is on +x or on -y.
Such rules are the same on a building turned a quarter about z (``rotate``), and those
without a left or right also on its mirror image (``dihedral``). Training uses this to show
each building in a turn drawn per epoch (``dataset.symmetry``, docs/training.md); prediction
can average a model's probabilities over the same turns (``PartsPredictor(symmetry=...)``,
docs/onnx.md). Both turn the massing, the per-face arrays and the street sides with the
functions here, so the two cannot disagree on what a turn is.

A transform is ``(quarter_turns, mirror)``: mirror in x first (when ``mirror``), then turn
``quarter_turns`` times about z the way ``np.rot90`` turns the x, y axes.
"""

from __future__ import annotations

import numpy as np

from .encoding import (BAY_FEATURES, NEIGHBOUR_CHANNEL, RUN_FEATURES, STOREY_FEATURES,
                       STREET_FEATURES)
from .grid import DIRECTIONS

#: ``dataset.symmetry`` / a model's ``symmetry``: no transform, the four quarter turns about
#: z, or the turns and their mirror images.
SYMMETRIES = ("none", "rotate", "dihedral")
#: Grid inputs that are the same functions of a turned or mirrored building (of its massing,
#: street sides and neighbours): training with a symmetry, and averaging over one at
#: prediction, need a model whose inputs are all among these.
ORIENTATION_FREE_INPUTS = ("occupancy", "ground_floor") + RUN_FEATURES + STREET_FEATURES + (
    NEIGHBOUR_CHANNEL,) + BAY_FEATURES + STOREY_FEATURES


def transforms(symmetry: str) -> list[tuple[int, bool]]:
    """The ``(quarter_turns, mirror)`` of a symmetry, the identity first."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry must be one of {', '.join(SYMMETRIES)}, got {symmetry!r}")
    turns = [0] if symmetry == "none" else [0, 1, 2, 3]
    mirrors = (False, True) if symmetry == "dihedral" else (False,)
    return [(k, m) for m in mirrors for k in turns]


def axis_bound_inputs(input_kind: str, names) -> list[str]:
    """The inputs of a model that are tied to the grid's axes (coordinate phases, the legacy
    style, per-cell features): a turned building would not turn them."""
    if input_kind != "grid":
        return ["per-cell features"]
    return [n for n in names if n not in ORIENTATION_FREE_INPUTS]


def check_symmetry(symmetry: str, input_kind: str, input_names) -> str:
    """``symmetry`` when a parts model with these inputs can be averaged over it;
    ``ValueError`` (one line, without the model's name) otherwise."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry must be one of {', '.join(SYMMETRIES)}, got {symmetry!r}")
    bound = axis_bound_inputs(input_kind, input_names)
    if symmetry != "none" and bound:
        raise ValueError(f"cannot average over symmetry '{symmetry}': the model's inputs "
                         f"{', '.join(bound)} are tied to the grid's axes (only none fits it)")
    return symmetry


def turn(array: np.ndarray, quarter_turns: int, mirror: bool = False) -> np.ndarray:
    """``array`` (axes x, y, ...) mirrored in x when ``mirror``, then turned ``quarter_turns``
    times about z (``np.rot90`` over the x, y axes); a contiguous copy."""
    if mirror:
        array = array[::-1]
    return np.ascontiguousarray(np.rot90(array, quarter_turns, axes=(0, 1)))


def unturn(array: np.ndarray, quarter_turns: int, mirror: bool = False) -> np.ndarray:
    """The inverse of :func:`turn`: ``unturn(turn(a, k, m), k, m) == a``."""
    array = np.rot90(array, -quarter_turns, axes=(0, 1))
    if mirror:
        array = array[::-1]
    return np.ascontiguousarray(array)


def direction_permutation(quarter_turns: int, mirror: bool = False) -> np.ndarray:
    """``int[6]``: the direction (``grid.DIRECTIONS`` order) each face direction points to
    after :func:`turn`, found by turning a cell's neighbours the same way."""
    out = np.zeros(len(DIRECTIONS), dtype=np.int64)
    for d, name in enumerate(DIRECTIONS):
        axis, sign = "xyz".index(name[1]), 1 if name[0] == "+" else -1
        if axis == 2:
            out[d] = d
            continue
        grid = np.zeros((3, 3), dtype=np.int8)
        grid[(1 + sign, 1) if axis == 0 else (1, 1 + sign)] = 1
        (x,), (y,) = np.nonzero(turn(grid, quarter_turns, mirror))
        offset = (x - 1, y - 1)
        new_axis = 0 if offset[0] else 1
        out[d] = DIRECTIONS.index(("+" if offset[new_axis] > 0 else "-") + "xy"[new_axis])
    return out


def turn_faces(array: np.ndarray, quarter_turns: int, mirror: bool = False,
               axis: int = 3) -> np.ndarray:
    """A per-face array (``[X, Y, Z, 6, ...]``, the direction on ``axis``) of a turned
    building: the cells move with :func:`turn` and each face's value goes to the direction
    it now points to."""
    turned = np.moveaxis(turn(array, quarter_turns, mirror), axis, 0)
    out = np.empty_like(turned)
    out[direction_permutation(quarter_turns, mirror)] = turned
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def unturn_faces(array: np.ndarray, quarter_turns: int, mirror: bool = False,
                 axis: int = 3) -> np.ndarray:
    """The inverse of :func:`turn_faces` (a turned building's per-face array, back on the
    original building)."""
    moved = np.moveaxis(array, axis, 0)[direction_permutation(quarter_turns, mirror)]
    return unturn(np.moveaxis(moved, 0, axis), quarter_turns, mirror)


def turn_sides(sides, quarter_turns: int, mirror: bool = False) -> tuple[str, ...]:
    """Street sides (``"+x"``, ``"-y"``, ...) of the turned building."""
    perm = direction_permutation(quarter_turns, mirror)
    return tuple(DIRECTIONS[perm[DIRECTIONS.index(side)]] for side in sides)


def turn_side_vector(vector: np.ndarray, quarter_turns: int, mirror: bool = False) -> np.ndarray:
    """A per-side vector (``+x, -x, +y, -y``, e.g. the street extra or the style's first four
    values) of the turned building."""
    out = np.zeros_like(vector)
    out[direction_permutation(quarter_turns, mirror)[:4]] = vector
    return out
