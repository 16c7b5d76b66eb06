"""Running many small inputs efficiently: same-size grids in batches, cells in chunks."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from .session import ModelSession

DEFAULT_GRID_BATCH = 8
DEFAULT_CELL_CHUNK = 65536


def group_by_shape(arrays: Sequence[np.ndarray]) -> dict[tuple, list[int]]:
    """Indices of ``arrays`` grouped by shape, in first-seen order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, a in enumerate(arrays):
        groups[tuple(a.shape)].append(i)
    return dict(groups)


def run_grids(model: ModelSession, grids: Sequence[np.ndarray],
              batch_size: int = DEFAULT_GRID_BATCH) -> list[np.ndarray]:
    """Logits for each ``float32[C, X, Y, Z]`` grid, stacking same-size grids into batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out: list[np.ndarray | None] = [None] * len(grids)
    for indices in group_by_shape(grids).values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            logits = model.run(np.stack([grids[i] for i in chunk]).astype(np.float32, copy=False))
            for i, lg in zip(chunk, logits):
                out[i] = lg
    return out


def run_cells(model: ModelSession, features: np.ndarray,
              chunk_size: int = DEFAULT_CELL_CHUNK) -> np.ndarray:
    """Logits for ``float32[N, F]`` cell features, run ``chunk_size`` rows at a time."""
    if len(features) <= chunk_size:
        return model.run(features)
    return np.concatenate([model.run(features[i:i + chunk_size])
                           for i in range(0, len(features), chunk_size)])


def run_cell_sets(model: ModelSession, feature_sets: Sequence[np.ndarray],
                  chunk_size: int = DEFAULT_CELL_CHUNK) -> list[np.ndarray]:
    """Logits per building for many small cell sets: concatenated, run in chunks, split back."""
    if not feature_sets:
        return []
    sizes = [len(f) for f in feature_sets]
    logits = run_cells(model, np.concatenate(feature_sets).astype(np.float32, copy=False),
                       chunk_size)
    return np.split(logits, np.cumsum(sizes)[:-1])
