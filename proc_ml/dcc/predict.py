"""The prediction path every DCC node shares: model session, massing -> grid -> labelled quads.

A DCC keeps the :class:`PartsSession` between evaluations (Houdini: the node's cached
user data; Blender: a module-level cache) and passes it back as ``previous``; it is
reused while the model file (path, modification time, size) and the device are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..runtime import DEVICES, PartsPredictor
from .geometry import (GeometryError, VoxelGrid, check_cell_size, grid_from_cell_points,
                       grid_from_polygons, to_z_up)
from ..colours import part_colours, unit_rgb
from .prims import LabelledPrims, labelled_prims

#: Cell size used when neither the node nor the model gives one (the generator default).
DEFAULT_CELL_SIZE = 3.0
STREET_SIDES = ("+x", "-x", "+y", "-y")


@dataclass
class PartsSession:
    """A loaded parts model plus what a node needs from it on every evaluation."""
    key: tuple                # (resolved path, mtime_ns, size, device, threads)
    predictor: PartsPredictor
    parts: tuple
    colours: np.ndarray       # float32[K, 3] in 0..1

    @property
    def with_style(self) -> bool:
        return self.predictor.with_style

    @property
    def cell_size(self) -> float | None:
        return self.predictor.metadata.cell_size

    @property
    def providers(self) -> list[str]:
        return list(self.predictor.model.providers)


def model_key(model_path, device: str = "auto", threads: int = 0) -> tuple:
    """Identity of a model file for caching; raises ``ModelError`` for a missing file."""
    text = str(model_path or "").strip()
    if not text:
        raise ModelError("no model file set: point the 'model' setting at a .onnx file "
                         "exported with 'proc-ml export onnx'")
    if device not in DEVICES:
        raise ModelError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")
    path = Path(text).expanduser()
    try:
        resolved = path.resolve()
        stat = resolved.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ModelError(f"{path}: model file not found") from None
    if not resolved.is_file():
        raise ModelError(f"{path}: not a model file (it is a folder)")
    if int(threads) < 0:
        raise ModelError(f"threads must be >= 0 (0 = onnxruntime's default), got {threads}")
    return (str(resolved), stat.st_mtime_ns, stat.st_size, device, int(threads))


def open_session(model_path, device: str = "auto", previous: PartsSession | None = None,
                 threads: int = 0) -> PartsSession:
    """``previous`` when it still matches the model file, device and threads, else a fresh
    load. ``threads``: onnxruntime intra-op threads (0 = its default, all cores); 1 often
    cooks faster inside a DCC that is busy with other nodes."""
    key = model_key(model_path, device, threads)
    if isinstance(previous, PartsSession) and previous.key == key:
        return previous
    predictor = PartsPredictor(key[0], device, intra_op_threads=int(threads))
    parts = tuple(predictor.parts)
    return PartsSession(key, predictor, parts, unit_rgb(part_colours(parts)))


def resolve_cell_size(cell_size, session: PartsSession) -> float:
    """The node's cell size, or the model's training cell size when it is 0 / unset."""
    if cell_size is not None and float(cell_size) > 0:
        return check_cell_size(cell_size)
    return float(session.cell_size or DEFAULT_CELL_SIZE)


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
                  clockwise: bool = False) -> LabelledPrims:
    """Labelled exterior quads of ``grid`` (empty when the grid is empty)."""
    if grid.occupancy.size == 0 or not grid.occupancy.any():
        return empty_prims(session)
    labels, probs = session.predictor.predict(grid.occupancy, style)
    return labelled_prims(grid, labels, probs, session.parts, session.colours, up, clockwise)


def empty_prims(session: PartsSession) -> LabelledPrims:
    k = len(session.parts)
    grid = VoxelGrid(np.zeros((1, 1, 1), np.uint8), np.zeros(3), 1.0)
    return labelled_prims(grid, np.full((1, 1, 1, 6), -1, np.int8),
                          np.zeros((1, 1, 1, 6, k), np.float32), session.parts, session.colours)


def predict_cell_points(session: PartsSession, points, cell_size, style=None, up: str = "z",
                        clockwise: bool = False) -> LabelledPrims:
    """Voxel points at cell centres (DCC frame) -> labelled quads (DCC frame)."""
    grid = grid_from_cell_points(to_z_up(points, up), resolve_cell_size(cell_size, session))
    return predict_prims(session, grid, style, up, clockwise)


def predict_polygons(session: PartsSession, points, counts, indices, cell_size, style=None,
                     up: str = "z", clockwise: bool = False) -> LabelledPrims:
    """Polygon massing (DCC frame, vertex counts + point indices) -> labelled quads."""
    grid = grid_from_polygons(to_z_up(points, up), counts, indices,
                              resolve_cell_size(cell_size, session), clockwise)
    return predict_prims(session, grid, style, up, clockwise)
