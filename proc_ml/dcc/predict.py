"""The prediction path every DCC node shares: model session, massing -> grid -> labelled quads.

Nodes ask ``open_session`` on every evaluation; the session lives in the runtime's one model
cache (``proc_ml.runtime.session.cached``), so it is loaded once per model file version,
device and thread count, for every node and operator of the process alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..colours import part_colours, unit_rgb
from ..runtime import PartsPredictor
from ..runtime.models import default_model
from ..runtime.session import cached
from ..symmetry import SYMMETRIES
from ..units import resolve_cell_size
from .geometry import (GeometryError, VoxelGrid, grid_from_cell_points, grid_from_polygons,
                       join_meshes, to_z_up)
from .prims import LabelledPrims, labelled_prims

STREET_SIDES = ("+x", "-x", "+y", "-y")
#: A node's symmetry-averaging choices: the model's own, or one of ``proc_ml.symmetry``'s.
SYMMETRY_CHOICES = ("model",) + SYMMETRIES


def symmetry_choice(value: str) -> str | None:
    """A node's symmetry setting as ``PartsPredictor`` takes it (None: the model's own)."""
    if value not in SYMMETRY_CHOICES:
        raise GeometryError(f"symmetry must be one of {', '.join(SYMMETRY_CHOICES)}, got '{value}'")
    return None if value == "model" else value


#: A node's entrance-rule choices: the model's own (``PartsInfo.entrance_rule``), or off.
ENTRANCE_CHOICES = ("model", "off")


def entrance_choice(value: str) -> bool | None:
    """A node's entrance-rule setting as ``PartsPredictor`` takes it (None: the model's own)."""
    if value not in ENTRANCE_CHOICES:
        raise GeometryError(f"entrance rule must be one of {', '.join(ENTRANCE_CHOICES)}, got '{value}'")
    return None if value == "model" else False


@dataclass
class PartsSession:
    """A loaded parts model plus what a node needs from it on every evaluation."""
    predictor: PartsPredictor
    parts: tuple
    colours: np.ndarray       # float32[K, 3] in 0..1

    @property
    def with_style(self) -> bool:
        return self.predictor.with_style

    @property
    def cell_size(self) -> float | None:
        return self.predictor.cell_size

    @property
    def providers(self) -> list[str]:
        return list(self.predictor.model.providers)


def open_session(model_path, device: str = "auto", threads: int = 0) -> PartsSession:
    """The parts model at ``model_path`` (empty: the model installed with proc-ml,
    ``runtime.default_model``), from the shared cache while the file, the device and
    ``threads`` (onnxruntime intra-op threads; 0 = its default, all cores; 1 often cooks
    faster inside a DCC that is busy with other nodes) stay the same."""
    if not model_path:
        model_path = default_model("building-parts")

    def build(resolved):
        predictor = PartsPredictor(resolved, device, intra_op_threads=int(threads))
        parts = tuple(predictor.parts)
        return PartsSession(predictor, parts, unit_rgb(part_colours(parts)))
    return cached("dcc-parts", model_path, device, (int(threads),), build)


def style_vector(street_side: str = "+x", window_period: int = 1, shopfront: bool = False,
                 balconies: bool = False) -> np.ndarray:
    """The 9 style features (``encoding.STYLE_FEATURES``) from a node's style settings."""
    from ..procedural import Style

    if street_side not in STREET_SIDES:
        raise GeometryError(f"street side must be one of {', '.join(STREET_SIDES)}, "
                            f"got '{street_side}'")
    if int(window_period) not in (1, 2, 3):
        raise GeometryError(f"window period must be 1, 2 or 3, got {window_period}")
    return Style(STREET_SIDES.index(street_side), int(window_period), bool(shopfront),
                 bool(balconies)).vector()


def predict_prims(session: PartsSession, grid: VoxelGrid, style=None, up: str = "z",
                  clockwise: bool = False, street=None, symmetry: str | None = None,
                  entrance: bool | None = None) -> LabelledPrims:
    """Labelled exterior quads of ``grid`` (empty when the grid is empty); a grid given in
    pieces (``VoxelGrid.pieces``) is labelled piece by piece, each a building. ``street``: the
    sides facing the street (``PartsPredictor.street_note`` says when the model cannot use
    them); ``symmetry``: the turns the probabilities are averaged over (None: the model's);
    ``entrance``: the entrance rule (None: the model's own, False: off)."""
    symmetry = session.predictor.check_symmetry(symmetry)
    if grid.occupancy.size == 0 or not grid.occupancy.any():
        return empty_prims(session)
    labels, probs = session.predictor.predict(grid.occupancy, style, street, symmetry=symmetry,
                                              entrance=entrance, buildings=grid.pieces)
    return labelled_prims(grid, labels, probs, session.parts, session.colours, up, clockwise)


def empty_prims(session: PartsSession) -> LabelledPrims:
    k = len(session.parts)
    grid = VoxelGrid(np.zeros((1, 1, 1), np.uint8), np.zeros(3), 1.0)
    return labelled_prims(grid, np.full((1, 1, 1, 6), -1, np.int8),
                          np.zeros((1, 1, 1, 6, k), np.float32), session.parts, session.colours)


def predict_cell_points(session: PartsSession, points, cell_size, style=None, up: str = "z",
                        clockwise: bool = False, street=None,
                        symmetry: str | None = None, entrance: bool | None = None,
                        pieces=None) -> LabelledPrims:
    """Voxel points at cell centres (DCC frame) -> labelled quads (DCC frame). ``pieces``:
    an int >= 0 per point (``geometry.piece_numbers``), each piece a building."""
    grid = grid_from_cell_points(to_z_up(points, up), resolve_cell_size(cell_size, model=session.cell_size),
                                 pieces)
    return predict_prims(session, grid, style, up, clockwise, street, symmetry, entrance)


def predict_polygons(session: PartsSession, points, counts, indices, cell_size, style=None,
                     up: str = "z", clockwise: bool = False, street=None,
                     symmetry: str | None = None, entrance: bool | None = None,
                     pieces=None) -> LabelledPrims:
    """Polygon massing (DCC frame, vertex counts + point indices) -> labelled quads.
    ``pieces``: an int >= 0 per polygon (``geometry.piece_numbers``), each piece a building."""
    grid = grid_from_polygons(to_z_up(points, up), counts, indices,
                              resolve_cell_size(cell_size, model=session.cell_size), clockwise,
                              pieces)
    return predict_prims(session, grid, style, up, clockwise, street, symmetry, entrance)


def predict_polygon_pieces(session: PartsSession, meshes, cell_size, style=None, up: str = "z",
                           clockwise: bool = False, street=None, symmetry: str | None = None,
                           entrance: bool | None = None) -> LabelledPrims:
    """Several polygon meshes (``(points, counts, indices)`` each, DCC frame: the selected
    objects of one block) labelled together in one grid, mesh ``k`` as piece ``k``
    (``PartsPredictor``'s ``buildings``): meshes over the same ground are one building (the
    floors of a building modelled as objects), meshes side by side are buildings of their own
    (row houses: each its entrance, the faces between them not output).
    ``prims.piece`` says whose each quad is (``prims.split_pieces``)."""
    points, counts, indices, pieces = join_meshes(meshes)
    return predict_polygons(session, points, counts, indices, cell_size, style, up, clockwise,
                            street, symmetry, entrance, pieces=pieces)
