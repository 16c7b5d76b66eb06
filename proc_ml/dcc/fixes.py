"""The artist's correction loop (numpy only): ``part_fix`` on DCC faces.

An artist overrides the predicted part of some faces by setting the face attribute
``part_fix`` (:data:`PART_FIX_ATTRIB`): in Houdini a string prim attribute holding a part
name (``""`` = not corrected, what ``s@part_fix = "door";`` writes), in Blender an INT face
attribute holding an index into the object's parts (-1 = not corrected, like ``part``).
:func:`fix_names` reads either form.

* Predicting again on geometry that carries ``part_fix`` (:func:`apply_part_fix`): each
  corrected polygon is mapped onto the exterior cell faces of the new grid it covers, with
  the export's face mapping (``proc_ml.dcc.faces``); those output faces take
  the corrected part (``part``, its name and colour; ``part_prob`` stays the model's) and
  carry ``part_fix`` on, so corrections survive any number of re-predictions.
* Exporting (``proc_ml.dcc.export.export_labelled_faces(part_fix=...)``): the corrected
  part is written as the label and the grid gets ``label_fixed`` (docs/formats.md).

A ``part_fix`` naming a part outside the vocabulary is a one-line error naming the
building or object, the prim and the name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..colours import part_colours, unit_rgb
from .faces import faces_on_grid
from .geometry import GeometryError, to_z_up
from .prims import LabelledPrims

#: The face attribute an artist paints (both DCCs).
PART_FIX_ATTRIB = "part_fix"
#: Detail attribute / custom property: how many output faces took their part from ``part_fix``.
FIX_COUNT_ATTRIB = "part_fix_count"
#: ``part_fix`` of a face that is not corrected: Houdini (string), Blender (int).
NO_FIX_NAME = ""
NO_FIX_INDEX = -1


def fix_names(values, parts, where: str = "", element: str = "prim") -> np.ndarray:
    """``part_fix`` as a DCC stores it -> part names (``str[F]``, ``""`` = not corrected).

    Strings are part names (surrounding spaces ignored); integers index ``parts`` (the
    vocabulary of the geometry that carries them), -1 = not corrected. ``where`` prefixes
    error messages (e.g. ``"building 3, "``); ``element`` names a face (``prim``/``face``).
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise GeometryError(f"{where}{PART_FIX_ATTRIB} must hold one value per {element}, "
                            f"not {arr.shape[1] if arr.ndim == 2 else arr.shape}")
    if arr.dtype.kind in "iu":
        parts = list(parts)
        bad = np.nonzero((arr < NO_FIX_INDEX) | (arr >= len(parts)))[0]
        if bad.size:
            raise GeometryError(f"{where}{element} {int(bad[0])}: {PART_FIX_ATTRIB} {int(arr[bad[0]])} is "
                                f"outside -1..{len(parts) - 1} (-1 = not corrected; {', '.join(parts)})")
        return np.asarray(parts + [NO_FIX_NAME], dtype=object)[arr.astype(np.int64)]
    if arr.dtype.kind not in "OUS":
        raise GeometryError(f"{where}{PART_FIX_ATTRIB} must be a string (a part name, empty = not "
                            f"corrected) or an integer part index (-1 = not corrected), not {arr.dtype}")
    if not arr.size:
        return np.zeros(0, dtype=object)
    return np.char.strip(arr.astype(str)).astype(object)


def fix_indices(names, parts, where: str = "", element: str = "prim") -> np.ndarray:
    """Part names (``""`` = not corrected) -> ``int32`` indices into ``parts`` (-1 = not
    corrected); a name outside ``parts`` is an error naming the first such prim."""
    parts = list(parts)
    arr = np.asarray(names, dtype=object).reshape(-1).astype(str)
    lookup = {name: i for i, name in enumerate(parts)}
    lookup[NO_FIX_NAME] = NO_FIX_INDEX
    unique, inverse = np.unique(arr, return_inverse=True)
    unknown = [name for name in unique if name not in lookup]
    if unknown:
        first = int(np.nonzero(arr == unknown[0])[0][0])
        raise GeometryError(f"{where}{element} {first}: {PART_FIX_ATTRIB} '{unknown[0]}' is not in "
                            f"the vocabulary ({', '.join(parts)})")
    return np.array([lookup[name] for name in unique], dtype=np.int32)[inverse.reshape(-1)]


def merge_parts(part_values, fix, parts) -> np.ndarray:
    """Per-face parts as the DCC gives them (names or indices) with the corrected faces
    (``fix`` >= 0) replaced by their correction, in the same form."""
    values = np.asarray(part_values)
    fix = np.asarray(fix, dtype=np.int64).reshape(-1)
    if values.ndim != 1 or len(values) != len(fix):
        raise GeometryError(f"{len(fix)} {PART_FIX_ATTRIB} values for "
                            f"{len(values) if values.ndim else 1} part values")
    if values.dtype.kind in "iu":
        return np.where(fix >= 0, fix, values)
    names = np.asarray(list(parts), dtype=object)
    return np.where(fix >= 0, names[np.maximum(fix, 0)], values.astype(object))


@dataclass
class FixedFaces:
    """Polygons carrying ``part_fix`` (DCC frame): where corrections come from."""
    points: np.ndarray          # float[N, 3]
    counts: np.ndarray          # int[F] vertices per polygon
    indices: np.ndarray         # int[sum(counts)] point indices
    values: np.ndarray          # part_fix per polygon, as the DCC stores it (fix_names)
    parts: tuple = ()           # the vocabulary integer values index
    up: str = "z"               # the DCC frame's up axis
    where: str = ""             # error message prefix (e.g. "massing_parts: ")
    element: str = "prim"       # what the DCC calls a polygon


@dataclass
class FixReport:
    """What :func:`apply_part_fix` did."""
    fixed: int = 0              # output faces whose part came from part_fix
    dropped: int = 0            # corrected polygons on no exterior face of the grid
    first_dropped: str = ""     # e.g. "prim 12"
    cell_size: float = 0.0

    def warning(self) -> str | None:
        """One line when corrections were dropped, else None."""
        if not self.dropped:
            return None
        return (f"{self.dropped} polygon(s) with {PART_FIX_ATTRIB} (first: {self.first_dropped}) are not "
                f"cell faces on the massing's surface at cell size {self.cell_size:g}: their "
                f"corrections were dropped")


def apply_part_fix(prims: LabelledPrims, sources, colours=None) -> tuple[LabelledPrims, FixReport]:
    """Predicted quads with the corrections of ``sources`` (:class:`FixedFaces`, later ones
    win where two cover one face) applied: ``part``, ``part_name`` and ``colour`` take the
    corrected part and ``fix`` records it (``part_fix`` on the output).

    A corrected polygon must be an axis-aligned rectangle on the grid's lattice (as every
    quad of a prediction is, and box massing faces are) whose cell faces are all exterior
    faces of the new grid; others are dropped and counted in the report (e.g. after the
    cell size or the massing changed).
    """
    if isinstance(sources, FixedFaces):
        sources = [sources]
    parts = tuple(prims.parts)
    grid = prims.grid
    report = FixReport(cell_size=float(grid.cell_size) if grid is not None else 0.0)
    shape = grid.occupancy.shape if grid is not None else (0, 0, 0)
    fix_grid = np.full(tuple(shape) + (6,), NO_FIX_INDEX, dtype=np.int32)
    for source in sources:
        fix = fix_indices(fix_names(source.values, source.parts, source.where, source.element),
                          parts, source.where, source.element)
        counts = np.asarray(source.counts, dtype=np.int64).reshape(-1)
        if len(fix) != len(counts):
            raise GeometryError(f"{source.where}{len(fix)} {PART_FIX_ATTRIB} values for "
                                f"{len(counts)} polygons")
        chosen = np.nonzero(fix >= 0)[0]
        quads = chosen[counts[chosen] == 4] if grid is not None else chosen[:0]
        on_grid = np.zeros(0, dtype=bool)
        if quads.size:
            starts = np.cumsum(counts) - counts
            corners = np.asarray(source.indices, dtype=np.int64)[starts[quads][:, None] + np.arange(4)]
            points = grid.to_aligned(to_z_up(np.asarray(source.points, dtype=np.float64), source.up))
            key, polygon, on_grid = faces_on_grid(grid.occupancy, grid.origin, grid.cell_size,
                                                  points[corners])
            fix_grid.reshape(-1)[key] = fix[quads[polygon]]
        lost = np.setdiff1d(chosen, quads[on_grid])
        if lost.size and not report.dropped:
            report.first_dropped = f"{source.where}{source.element} {int(lost[0])}"
        report.dropped += int(lost.size)
    if len(prims):
        cells = np.asarray(prims.cells, dtype=np.int64)
        fix = fix_grid[cells[:, 0], cells[:, 1], cells[:, 2], np.asarray(prims.directions, np.int64)]
    else:
        fix = np.zeros(0, dtype=np.int32)
    fixed = fix >= 0
    report.fixed = int(fixed.sum())
    table = unit_rgb(part_colours(parts)) if colours is None else np.asarray(colours, np.float32)
    part = np.where(fixed, fix, prims.part).astype(np.int32)
    return replace(
        prims, part=part, part_name=np.asarray(parts + ("",), dtype=object)[part],
        colour=np.where(fixed[:, None], table[np.maximum(fix, 0)], prims.colour).astype(np.float32),
        fix=fix.astype(np.int32)), report
