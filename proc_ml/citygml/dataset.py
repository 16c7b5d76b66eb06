"""Imported real buildings -> proc-ml building datasets (``proc-ml import citygml``).

LoD3 buildings with openings become a **labelled** dataset in ``OUT`` (grids with face
labels, meshes with a part per face, faces/adjacency tables); LoD1/LoD2 buildings (and LoD3
ones without a single opening) become a **massing-to-label** dataset in ``OUT/massing``
(grids and meshes without labels, ``labelled: false``). Both are ordinary proc-ml datasets
(docs/formats.md) written by ``proc_ml.datasets.writer``, with ``source: citygml``; each grid
also records what a real building adds: the source id and file, the rotation and world
origin of the grid, the street sides and ``label_known`` (the faces the street scan saw).
Real buildings have no generator style: ``style_present: false`` (zeros).
``OUT/import.json`` (:func:`write_import_report`) says what happened to every building:
its grid file, notes and statistics, and the buildings skipped or failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..datasets.writer import BuildingArrays, DatasetIndex, index_rows, write_building_files
from ..encoding import STYLE_FEATURES
from ..fileio import write_text
from ..formats import grid_path
from ..grid import DIRECTIONS
from ..procedural.parts import DEFAULT_PARTS
from .model import ImportedBuilding

#: Folder of the massing-to-label dataset inside the output folder.
MASSING_DIR = "massing"
#: The import's report in the output folder (every building's notes and statistics).
IMPORT_REPORT = "import.json"
SOURCE = "citygml"
LABELLED_FORMATS = ("faces", "adjacency", "grids", "meshes")
MASSING_FORMATS = ("grids", "meshes")


def building_arrays(index: int, b: ImportedBuilding) -> BuildingArrays:
    street = np.array([side in b.street_sides for side in DIRECTIONS[:4]])
    extras = {"street": street, "rotation_deg": b.rotation_deg, "origin": b.origin,
              "cell_size": b.cell_size, "source_id": b.building_id,
              "source_file": Path(b.source).name}
    if b.labels is not None:
        extras.update(vocab=np.array(b.parts), label_known=b.label_known)
    return BuildingArrays(index, f"lod{b.lod}", b.occupancy, b.labels,
                          np.zeros(len(STYLE_FEATURES), np.float32), extras)


def dataset_groups(buildings, out: Path) -> tuple:
    """``(folder, buildings, formats, labelled)`` of the labelled dataset (``OUT``) and the
    massing-to-label one (``OUT/massing``), each building's grid id its place in its group."""
    return ((out, [b for b in buildings if b.labels is not None], LABELLED_FORMATS, True),
            (out / MASSING_DIR, [b for b in buildings if b.labels is None], MASSING_FORMATS, False))


def write_city_datasets(buildings: list[ImportedBuilding], out: str | os.PathLike,
                        cell_size: float, *, licence: str | None = None,
                        attribution: str | None = None, seed: int = 0,
                        split=(0.1, 0.1)) -> dict[str, dict]:
    """Write the labelled and massing datasets; returns ``{folder: manifest}``."""
    out = Path(out)
    written = {}
    for folder, group, formats, is_labelled in dataset_groups(buildings, out):
        if not group:
            continue
        parts = list(group[0].parts or DEFAULT_PARTS)
        folder.mkdir(parents=True, exist_ok=True)
        with DatasetIndex(folder, parts, formats) as index:
            for i, building in enumerate(group):
                arrays = building_arrays(i, building)
                write_building_files(folder, arrays, formats, parts, cell_size, seed=seed)
                index.add(index_rows(arrays, len(parts), formats))
        shape = np.max([b.occupancy.shape for b in group], axis=0).tolist()
        written[str(folder)] = index.finish(
            cell_size=cell_size, grid_size=shape, seed=seed, source=SOURCE, style_present=False,
            split=split, extra=_extra(group, is_labelled, licence, attribution))
    return written


def _extra(group, is_labelled: bool, licence, attribution) -> dict:
    """Manifest fields of an imported dataset: labelled, the source files, licence."""
    files = sorted({Path(b.source).name for b in group})
    licences = sorted({str(b.file_metadata.get("licence")) for b in group
                       if b.file_metadata.get("licence")})
    extra = {"labelled": is_labelled, "source_files": files,
             "grid_sizes": "per building (grid_size is the largest)"}
    if licence or licences:
        extra["licence"] = licence or "; ".join(licences)
    if attribution:
        extra["attribution"] = attribution
    return extra


def write_import_report(out: str | os.PathLike, result, cell_size: float, method: str) -> Path:
    """``OUT/import.json``: per imported building its grid file (in the order
    :func:`write_city_datasets` writes them), source id and file, LoD, whether labelled, street
    sides, rotation, origin, ``notes`` and ``stats``; then the ``skipped`` and ``failed``
    lines (``result`` is a :class:`~proc_ml.citygml.importer.CityImport`)."""
    out = Path(out)
    rows = []
    for folder, group, _, _ in dataset_groups(result.buildings, out):
        for i, b in enumerate(group):
            rows.append({
                "grid": grid_path(folder, i).relative_to(out).as_posix(),
                "source_id": b.building_id, "source_file": Path(b.source).name, "lod": b.lod,
                "labelled": b.labels is not None, "street_sides": list(b.street_sides),
                "rotation_deg": round(b.rotation_deg, 3),
                "origin": [round(float(v), 3) for v in b.origin],
                "notes": list(b.notes), "stats": b.stats})
    report = {"cell_size": cell_size, "occupancy_method": method, "buildings": rows,
              "skipped": list(result.skipped), "failed": list(result.errors)}
    path = out / IMPORT_REPORT
    write_text(path, json.dumps(report, indent=1, default=_plain) + "\n")
    return path


def _plain(value):
    """numpy scalars and arrays in the statistics, as JSON numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
