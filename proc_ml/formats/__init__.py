"""On-disk formats, one module per format, each a reader + writer pair on plain arrays
(as trimesh's ``exchange/``): the generator, the Houdini export SOP, ``predict`` and batch
all read and write through these modules (docs/formats.md is their contract).

This module is the one home of the building dataset's file names:

    dataset.yaml   labels.json   faces.csv   adjacency.csv   buildings.csv
    grids/b000000.npz   meshes/b000000.{obj,ply,glb}   points/b000000.{npz,ply}
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

MANIFEST = "dataset.yaml"
LEGEND = "labels.json"
FACES_CSV = "faces.csv"
ADJACENCY_CSV = "adjacency.csv"
BUILDINGS_CSV = "buildings.csv"
GRIDS_DIR = "grids"
MESHES_DIR = "meshes"
POINTS_DIR = "points"

#: What ``--formats`` may name: the dataset-wide tables and the per-building folders.
FORMATS = ("faces", "adjacency", "grids", "meshes", "points")
#: Layouts of faces.csv: ``named`` (header + ids) or ``opara`` (headerless 0/1 rows).
LAYOUTS = ("named", "opara")
#: The dataset-wide table written for each format that has one (buildings.csv always is).
TABLES = {"buildings": BUILDINGS_CSV, "faces": FACES_CSV, "adjacency": ADJACENCY_CSV}


def building_stem(building_id: int) -> str:
    """``b000042``: the file stem of a building in grids/, meshes/ and points/."""
    return f"b{int(building_id):06d}"


def grid_path(root: str | os.PathLike, building_id: int) -> Path:
    return Path(root) / GRIDS_DIR / f"{building_stem(building_id)}.npz"


def mesh_path(root: str | os.PathLike, building_id: int, fmt: str) -> Path:
    return Path(root) / MESHES_DIR / f"{building_stem(building_id)}.{fmt}"


def points_path(root: str | os.PathLike, building_id: int, fmt: str) -> Path:
    return Path(root) / POINTS_DIR / f"{building_stem(building_id)}.{fmt}"


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``--formats``: a comma list of ``FORMATS`` or ``all`` (the default)."""
    if not text or text == "all":
        return FORMATS
    chosen = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad:
        raise ConfigError(f"--formats: unknown format '{bad[0]}' (choose from {', '.join(FORMATS)} or all)")
    return chosen


def find_dataset_root(path: str | os.PathLike) -> Path | None:
    """The dataset folder a file belongs to (it or its parent holds ``dataset.yaml``)."""
    path = Path(path)
    for folder in (path.parent, path.parent.parent):
        if (folder / MANIFEST).is_file():
            return folder
    return None
