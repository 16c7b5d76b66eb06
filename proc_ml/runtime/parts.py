"""``PartsPredictor``: building parts for occupancy grids, from any exported parts model.

Used by the CLI, the DCC adapters and batch jobs alike. Inputs are encoded with the same
``proc_ml.encoding`` functions training used; outputs are decoded to one part per
exterior face. Style rule: a style-aware model needs the 9 style features (``ModelError``
without them); a massing-only model ignores a style it is given, so the same call works
for dataset grids (which always carry a style) and for bare massing.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..encoding import (STYLE_FEATURES, adjacency_feature_names, adjacency_features,
                        decode_cell_logits, decode_grid_logits, grid_channel_names,
                        grid_channels, pad_to_stride, style_vector)
from .. import budget
from ..errors import ModelError
from ..grid import NO_PART, check_occupancy
from .batching import DEFAULT_GRID_BATCH, run_cell_sets, run_grids
from .session import Loaded, ModelSession, load_model

KIND = "parts"


class PartsPredictor(Loaded):
    """``predict(occupancy, style=None) -> (labels int8[X,Y,Z,6], probs float32[X,Y,Z,6,K])``."""

    def __init__(self, model_path: str | os.PathLike, device: str = "auto",
                 intra_op_threads: int = 0, inter_op_threads: int = 0):
        self.model: ModelSession = load_model(model_path, device, intra_op_threads,
                                              inter_op_threads)
        self.metadata = self.model.metadata
        meta = self.metadata
        if meta.kind != KIND:
            raise ModelError(f"{model_path}: a {meta.kind} model ({meta.task}, {meta.family}); "
                             f"labelling building parts needs a {KIND} model")
        self.info = meta.info
        expected = (grid_channel_names if meta.input_kind == "grid"
                    else adjacency_feature_names)(self.info.with_style)
        if list(expected) != list(meta.input_names):
            raise ModelError(f"{model_path}: model inputs {meta.input_names} are not the ones this "
                             f"proc-ml encodes ({list(expected)}); re-export with this version")

    @property
    def parts(self) -> list[str]:
        return list(self.info.parts)

    @property
    def with_style(self) -> bool:
        return self.info.with_style

    @property
    def cell_size(self) -> float | None:
        """Metres per cell of the model's training data (None for models without it)."""
        return self.info.cell_size

    def memory_needed(self, shape) -> int:
        """Estimated peak bytes of predicting a grid of ``shape`` (``proc_ml.budget``)."""
        return budget.parts_grid_bytes(shape, self.metadata.n_inputs, self.info.n_parts,
                                       self.info.stride, self.metadata.input_kind)

    def check_memory(self, shape) -> None:
        """``LimitError`` (one line) when a grid of ``shape`` would not fit the budget."""
        dims = "x".join(str(int(n)) for n in shape)
        budget.check(self.memory_needed(shape), f"labelling a {dims} grid",
                     "a larger cell size (--cell-size) makes fewer cells")

    def _style_for_model(self, style):
        if not self.with_style:
            return None
        if style is None:
            raise ModelError(f"{self.model.path}: this model was trained with style features; "
                             f"pass style ({len(STYLE_FEATURES)} values: {', '.join(STYLE_FEATURES)}) "
                             f"or use a massing-only model")
        return style_vector(style)

    def predict(self, occupancy: np.ndarray, style=None) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_many([occupancy], [style])[0]

    def predict_many(self, occupancies: Sequence[np.ndarray], styles: Sequence | None = None,
                     batch_size: int = DEFAULT_GRID_BATCH) -> list[tuple[np.ndarray, np.ndarray]]:
        """Predict many buildings; same-size grids share a batch, cells share chunks."""
        styles = list(styles) if styles is not None else [None] * len(occupancies)
        if len(styles) != len(occupancies):
            raise ValueError(f"got {len(occupancies)} occupancies but {len(styles)} styles")
        occs = [_occupancy(o) for o in occupancies]
        for occ in occs:
            self.check_memory(occ.shape)
        styles = [self._style_for_model(s) for s in styles]
        if self.metadata.input_kind == "grid":
            return self._predict_grids(occs, styles, batch_size)
        return self._predict_cells(occs, styles)

    def _predict_grids(self, occs, styles, batch_size):
        stride = self.info.stride
        grids = [pad_to_stride(grid_channels(o, s), stride) for o, s in zip(occs, styles)]
        logits = run_grids(self.model, grids, batch_size)
        return [decode_grid_logits(lg, o, self.info.n_parts) for lg, o in zip(logits, occs)]

    def _predict_cells(self, occs, styles):
        encoded = [adjacency_features(o, s) for o, s in zip(occs, styles)]
        logits = run_cell_sets(self.model, [feats for _, feats in encoded])
        return [decode_cell_logits(lg, coords, o, self.info.n_parts)
                for lg, (coords, _), o in zip(logits, encoded, occs)]


def _occupancy(occupancy) -> np.ndarray:
    try:
        occ = check_occupancy(occupancy)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if not occ.any():
        raise ModelError(f"the occupancy grid ({'x'.join(map(str, occ.shape))} cells) is empty: "
                         f"nothing to label (no cell centre lies inside the input: a mesh "
                         f"thinner than one cell, flat, or without an inside? try a smaller "
                         f"--cell-size)")
    return occ


def face_accuracy(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy over the faces the ground truth labels, overall and per true part."""
    mask = truth != NO_PART
    correct = (predicted == truth) & mask
    per_part = {}
    for part in np.unique(truth[mask]):
        sel = truth == part
        per_part[int(part)] = float(correct[sel].sum() / sel.sum())
    total = int(mask.sum())
    return {"faces": total, "correct": int(correct.sum()),
            "accuracy": float(correct.sum() / total) if total else 0.0, "per_part": per_part}
