"""Predicted parts -> per-primitive arrays a DCC writes in bulk (numpy only).

One quad per exterior face of the voxel grid (``proc_ml.meshing.quad_mesh``), in world
space and in the DCC's frame, with its part index, part name, per-part probabilities and
an RGB colour. Quads do not share points, so each keeps its own attributes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..colours import UNLABELLED, part_colours, unit_rgb
from .geometry import VoxelGrid, from_z_up


@dataclass
class LabelledPrims:
    """Everything a DCC needs to build the labelled quads; rows follow the quads."""
    #: float64[4F, 3] positions in the DCC frame (float64: a DCC stores float32, and world
    #: coordinates such as UTM lose centimetres in float32, so adapters write them relative
    #: to an origin near the building, proc_ml.dcc.blender.write_result)
    points: np.ndarray
    polygons: np.ndarray     # int32[F, 4] point indices, wound for the DCC
    part: np.ndarray         # int32[F] part index
    part_name: np.ndarray    # str[F] part name
    probs: np.ndarray        # float32[F, K] per-part probabilities (rows sum to 1)
    colour: np.ndarray       # float32[F, 3] RGB in 0..1
    cells: np.ndarray        # int32[F, 3] grid cell of each quad
    directions: np.ndarray   # int8[F] face direction 0..5 (+x, -x, +y, -y, +z, -z)
    parts: tuple             # the vocabulary, index -> name
    grid: VoxelGrid | None = None   # the grid the quads bound (where corrections are mapped)
    #: int32[F] the artist's correction (``part_fix``) as a part index, -1 = not corrected;
    #: None when the input carried no ``part_fix`` (``proc_ml.dcc.fixes.apply_part_fix``)
    fix: np.ndarray | None = None
    #: int32[F] the input piece (``VoxelGrid.pieces``: a building of a block) each quad
    #: bounds; None when the input was not given in pieces
    piece: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.part)

    @property
    def fix_name(self) -> np.ndarray:
        """``str[F]``: the corrected part's name, ``""`` where not corrected."""
        fix = np.full(len(self), -1, np.int32) if self.fix is None else self.fix
        return np.asarray(self.parts + ("",), dtype=object)[fix]


def labelled_prims(grid: VoxelGrid, labels: np.ndarray, probs: np.ndarray, parts,
                   colours=None, up: str = "z", clockwise: bool = False) -> LabelledPrims:
    """Quads of ``grid``'s exterior faces with the predicted ``labels``/``probs`` on them.

    ``labels`` is ``int[X, Y, Z, 6]`` and ``probs`` ``float[X, Y, Z, 6, K]`` as the
    runtime returns them; ``up``/``clockwise`` give the DCC's frame and winding.
    """
    parts = tuple(parts)
    mesh = grid.quads(labels)          # z-up world: the grid's frame turned back onto the input
    x, y, z = mesh.cells.T.astype(np.int64)
    d = mesh.directions.astype(np.int64)
    part = mesh.parts.astype(np.int32)
    n_faces = len(part)
    polygons = np.arange(4 * n_faces, dtype=np.int32).reshape(n_faces, 4)
    if clockwise:
        polygons = polygons[:, ::-1].copy()
    table = unit_rgb(part_colours(parts)) if colours is None else np.asarray(colours, np.float32)
    names = np.asarray(parts + ("",), dtype=object)
    return LabelledPrims(
        points=from_z_up(mesh.vertices, up).astype(np.float64),
        polygons=polygons,
        part=part,
        part_name=names[part],          # -1 (unlabelled) reads the trailing ""
        probs=np.asarray(probs, dtype=np.float32)[x, y, z, d].reshape(n_faces, len(parts)),
        colour=np.where(part[:, None] >= 0, table[np.maximum(part, 0)],
                        unit_rgb([UNLABELLED])[0]).astype(np.float32),
        cells=mesh.cells,
        directions=mesh.directions,
        parts=parts,
        grid=grid,
        piece=None if grid.pieces is None else grid.pieces[x, y, z].astype(np.int32),
    )


def split_pieces(prims: LabelledPrims, count: int) -> list[LabelledPrims]:
    """The quads of each piece ``0..count-1`` (``prims.piece``) as ``LabelledPrims`` of their
    own, on the same grid: what each of several objects labelled together gets back."""
    if prims.piece is None:
        raise ValueError("these quads were not labelled in pieces")
    out = []
    for number in range(count):
        keep = np.flatnonzero(prims.piece == number)
        first = prims.polygons[keep].min(axis=1, keepdims=True) if len(keep) else keep[:, None]
        corners = (4 * keep)[:, None] + np.arange(4)               # each quad's own 4 points
        out.append(LabelledPrims(
            points=prims.points[corners.reshape(-1)],
            polygons=(prims.polygons[keep] - first + (4 * np.arange(len(keep)))[:, None]).astype(np.int32),
            part=prims.part[keep], part_name=prims.part_name[keep], probs=prims.probs[keep],
            colour=prims.colour[keep], cells=prims.cells[keep], directions=prims.directions[keep],
            parts=prims.parts, grid=prims.grid,
            fix=None if prims.fix is None else prims.fix[keep], piece=prims.piece[keep]))
    return out
