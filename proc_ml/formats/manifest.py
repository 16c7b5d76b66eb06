"""dataset.yaml: what a building dataset holds (docs/formats.md has every field).

``build`` makes the mapping every dataset writer records (the generator, the Houdini export
SOP, the real-building import); ``read`` checks the fields every reader relies on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from .. import FORMAT_VERSION, __version__
from ..encoding import STYLE_FEATURES, adjacency_feature_names
from ..errors import DatasetError
from ..fileio import write_text
from ..grid import DIRECTIONS
from . import MANIFEST

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
    write_text(Path(root) / MANIFEST, yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None))


def read(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: not a proc-ml dataset (no {MANIFEST}; create one with "
                           f"'proc-ml generate buildings')")
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DatasetError(f"{path}:{' line ' + str(mark.line + 1) if mark else ''} invalid YAML") from None
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
    return manifest
