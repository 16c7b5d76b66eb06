"""A building dataset folder as training and evaluation read it: manifest, vocabulary,
splits and per-building grids (the formats themselves are in ``proc_ml.formats``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..encoding import style_vector
from ..errors import DatasetError
from ..formats import MANIFEST, grid_npz, grid_path, manifest, npz
from ..formats.grid_npz import BuildingRecord
from ..grid import DIRECTIONS

__all__ = ["BuildingDataset", "BuildingRecord", "open_dataset"]


class BuildingDataset:
    """A generated dataset on disk: manifest, vocabulary, splits and per-building grids."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.manifest = manifest.read(self.root)
        self.parts: list[str] = list(self.manifest["parts"])
        self.directions = list(self.manifest.get("directions", DIRECTIONS))

    @property
    def labelled(self) -> bool:
        """False for a massing-to-label dataset (grids without labels, e.g. LoD1/LoD2 imports)."""
        return bool(self.manifest.get("labelled", True))

    @property
    def cell_size(self) -> float | None:
        value = self.manifest.get("cell_size")
        return None if value is None else float(value)

    def ids(self, split: str | None = None) -> list[int]:
        if split is None:
            return list(range(int(self.manifest["count"])))
        if split not in self.manifest["split"]:
            raise DatasetError(f"{self.root / MANIFEST}: no split named '{split}' "
                               f"(have {', '.join(self.manifest['split'])})")
        return list(self.manifest["split"][split])

    def grid_path(self, building_id: int) -> Path:
        return grid_path(self.root, building_id)

    def building(self, building_id: int, require_labels: bool = True) -> BuildingRecord:
        """One building's grid, checked: array sizes from the headers before loading
        (``formats.npz``), then shapes and labels (``grid_npz.read``) and a style of finite
        numbers (a NaN style would train a model of NaNs). ``require_labels`` refuses a
        massing-to-label dataset in one line."""
        path = self.grid_path(building_id)
        if not path.is_file():
            raise DatasetError(f"{path}: missing grid file (was the dataset generated with --formats grids?)")
        if require_labels and not self.labelled:
            raise DatasetError(f"{self.root / MANIFEST}: a massing-to-label dataset (labelled: "
                               f"false): its buildings have no part labels to train or score on")
        npz.check(path)
        record = grid_npz.read(path, n_parts=len(self.parts), require_labels=require_labels)
        style_vector(record.style, f"{path}: field 'style'", check_values=False)
        occupancy = np.asarray(record.occupancy)
        if not occupancy.any():
            raise DatasetError(f"{path}: field 'occupancy' is empty (no filled cells)")
        return record


def open_dataset(root: str | os.PathLike) -> BuildingDataset:
    return BuildingDataset(root)
