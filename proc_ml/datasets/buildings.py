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
        record = self._in_dataset_parts(path, grid_npz.read(path, require_labels=require_labels))
        style_vector(record.style, f"{path}: field 'style'", check_values=False)
        occupancy = np.asarray(record.occupancy)
        if not occupancy.any():
            raise DatasetError(f"{path}: field 'occupancy' is empty (no filled cells)")
        return record

    def _in_dataset_parts(self, path: Path, record: BuildingRecord) -> BuildingRecord:
        """``record`` with its labels indexing the dataset's ``parts``. A grid's ``vocab``
        names the parts its labels index (docs/formats.md); when it differs from
        ``dataset.yaml``'s list (another order, a subset, a grid copied from another dataset)
        the labels are mapped by name, and a labelled part the dataset does not list is one
        line: read as indices into the dataset's list it would train on the wrong parts."""
        labels, vocab = record.labels, record.extras.get("vocab")
        if labels is None:
            return record
        if vocab is None or list(vocab.tolist()) == self.parts:
            if labels.max(initial=-1) >= len(self.parts):
                raise DatasetError(f"{path}: field 'labels' holds part {int(labels.max())}, "
                                   f"but the vocabulary has {len(self.parts)} parts")
            return record
        names = vocab.tolist()
        used = np.unique(labels[labels >= 0])
        unknown = [names[i] for i in used if names[i] not in self.parts]
        if unknown:
            raise DatasetError(f"{path}: labels part '{unknown[0]}' (its field 'vocab' is "
                               f"{' '.join(names)}), which the dataset's parts in "
                               f"{self.root / MANIFEST} do not list ({' '.join(self.parts)})"[:400])
        lookup = np.array([self.parts.index(n) if n in self.parts else -1 for n in names],
                          dtype=np.int8)
        record.labels = np.where(labels >= 0, lookup[np.maximum(labels, 0)], labels).astype(np.int8)
        record.extras = {**record.extras, "vocab": np.array(self.parts)}
        return record


def open_dataset(root: str | os.PathLike) -> BuildingDataset:
    return BuildingDataset(root)
