"""dataset.yaml: what a building dataset holds (docs/formats.md has every field).

``build`` makes the mapping every dataset writer records (the generator, the Houdini export
SOP, the real-building import); ``read`` checks the fields every reader relies on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import FORMAT_VERSION, __version__
from ..encoding import STYLE_FEATURES, adjacency_feature_names
from ..errors import DatasetError
from ..fileio import write_text
from ..grid import DIRECTIONS
from ..validation import Name, PartName, PositiveFinite, check
from . import MANIFEST
from .tables import MAX_AXIS, MAX_ID

FORMAT = "proc-ml-buildings"
REQUIRED = ("format", "format_version", "parts", "count", "grid_size", "split")
SPLITS = ("train", "val", "test")


def split_ids(count: int, seed: int, val: float, test: float) -> dict[str, list[int]]:
    """Deterministic train/val/test split by building, from the dataset seed."""
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(count)
    n_test, n_val = int(round(count * test)), int(round(count * val))
    return {"train": sorted(order[n_test + n_val:].tolist()),
            "val": sorted(order[n_test:n_test + n_val].tolist()),
            "test": sorted(order[:n_test].tolist())}


def build(*, parts, cell_size: float, grid_size, count: int, seed: int, formats, layout: str,
          cells: int, part_counts, archetype_counts: dict, archetypes, source: str,
          style_present: bool, split=(0.1, 0.1), generator: dict | None = None,
          extra: dict | None = None) -> dict:
    """The ``dataset.yaml`` mapping. ``split`` is (val, test) fractions; ``generator`` the
    generator config when one made the data; ``extra`` further fields (e.g. attribution)."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "proc_ml_version": __version__,
        "source": source,
        "style_present": bool(style_present),
        "seed": int(seed),
        "count": int(count),
        "grid_size": [int(n) for n in grid_size],
        "cell_size": float(cell_size),
        "parts": list(parts),
        "directions": list(DIRECTIONS),
        "style_features": list(STYLE_FEATURES),
        "adjacency_features": list(adjacency_feature_names(with_style=True)),
        "archetypes": list(archetypes),
        "formats": list(formats),
        "layout": layout,
        "stats": {"cells": int(cells), "faces": int(np.sum(part_counts)),
                  "faces_per_part": {n: int(c) for n, c in zip(parts, part_counts)},
                  "buildings_per_archetype": dict(archetype_counts)},
        "split": split_ids(count, seed, float(split[0]), float(split[1])),
    }
    if generator is not None:
        manifest["generator"] = generator
    manifest.update(extra or {})
    return manifest


def write(root: str | os.PathLike, manifest: dict) -> None:
    from ..config import dump_yaml

    write_text(Path(root) / MANIFEST, dump_yaml(manifest, sort_keys=False, default_flow_style=None))


BuildingId = Annotated[int, Field(ge=0, le=MAX_ID)]
#: Largest dataset.yaml read (it lists every building id in its split).
MAX_BYTES = 256 << 20


class Fields(BaseModel):
    """The fields readers rely on, typed and in range (strict: ``count: many`` or
    ``cell_size: "3"`` are errors, not coerced); other fields pass through."""
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    count: BuildingId
    parts: Annotated[list[PartName], Field(min_length=1, max_length=1024)]
    grid_size: Annotated[list[Annotated[int, Field(ge=1, le=MAX_AXIS)]],
                         Field(min_length=3, max_length=3)]
    split: dict[Name, list[BuildingId]]
    cell_size: PositiveFinite | None = None
    seed: Annotated[int, Field(ge=0, le=2 ** 63 - 1)] = 0
    directions: list[str] = Field(default_factory=lambda: list(DIRECTIONS))

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.parts)) != len(self.parts):
            raise ValueError("'parts' lists a part twice")
        if self.directions != list(DIRECTIONS):
            raise ValueError(f"'directions' must be {', '.join(DIRECTIONS)}")
        for name, ids in self.split.items():
            if any(i >= self.count for i in ids):
                raise ValueError(f"split '{name}' names buildings beyond count {self.count}")
        return self


def read(root: str | os.PathLike) -> dict:
    from ..config import parse_yaml, read_text

    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: not a proc-ml dataset (no {MANIFEST}; create one with "
                           f"'proc-ml generate buildings')")
    manifest = parse_yaml(read_text(path, "dataset manifest", DatasetError, MAX_BYTES),
                          str(path), DatasetError, MAX_BYTES)
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: expected a mapping at top level")
    for key in REQUIRED:
        if key not in manifest:
            raise DatasetError(f"{path}: missing field '{key}'")
    if manifest["format"] != FORMAT:
        raise DatasetError(f"{path}: field 'format' is '{manifest['format']}', expected '{FORMAT}'")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {manifest['format_version']} is not supported "
                           f"(this proc-ml reads version {FORMAT_VERSION})")
    check(Fields, manifest, source=str(path), what="field", error=DatasetError)
    return manifest
