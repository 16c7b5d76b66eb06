"""Buildings to label, read from any file ``proc-ml predict`` and batch accept (numpy +
trimesh only).

* a grid ``.npz``: a dataset grid (``grids/bXXXXXX.npz``: occupancy, style and true
  labels), an imported real building (also its street sides and the faces its scan saw), or
  a plain ``occupancy`` array of the user's own; ``labels``, ``style`` and a ``vocab`` (the
  names ``labels`` index) are used when present;
* ``adjacency.csv`` rows (one building, ``building_id`` picks it when there are several);
  the style comes from the rows, true labels from a ``faces.csv`` beside it if present;
* a mesh (OBJ, PLY, STL, OFF, GLB, GLTF): voxelised at the resolved cell size
  (``proc_ml.units``), no style and no truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoding import STYLE_FEATURES
from ..errors import DatasetError
from ..datasets.buildings import BuildingDataset
from ..formats import FACES_CSV, adjacency_csv, faces_csv, find_dataset_root, grid_npz
from ..units import DEFAULT_CELL_SIZE, resolve_cell_size
from ..meshio import extension_of
from ..voxelize import VoxelGrid, mesh_extensions, voxelize_file


@dataclass
class PartsInput:
    """One building to label, read from any supported input."""
    source: str
    building_id: int
    occupancy: np.ndarray                 # uint8[X, Y, Z]
    style: np.ndarray | None = None       # float32[9]
    truth: np.ndarray | None = None       # int8[X, Y, Z, 6] ground-truth labels
    truth_parts: list | None = None       # vocabulary of ``truth`` (None: not stated)
    truth_known: np.ndarray | None = None  # bool[X, Y, Z, 6]: faces whose truth the source saw
    street: tuple | None = None           # sides facing the street, when the file says
    cell_size: float = DEFAULT_CELL_SIZE
    voxels: VoxelGrid | None = None       # mesh inputs: where the grid sits in the mesh
    mesh: object | None = None            # mesh inputs: the source trimesh
    notes: list = field(default_factory=list)


def read_input(path: str | os.PathLike, *, building_id: int | None = None,
               cell_size: float | None = None, model_cell_size: float | None = None,
               up: str | None = None, objects: bool = False) -> PartsInput:
    """The building in ``path``; ``cell_size`` (given) and ``model_cell_size`` (the model's
    training cell size) resolve the cell size with the file's dataset (``proc_ml.units``).
    ``objects``: a mesh's grid records which object each cell is in (``VoxelGrid.pieces``)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    if path.is_dir():
        raise DatasetError(f"{path}: a folder, not a building file (proc-ml batch labels every "
                           f"asset of a folder)")
    suffix = path.suffix.lower()
    parts, data_cell = _dataset_info(path) if suffix in (".npz", ".csv") else (None, None)
    size = resolve_cell_size(cell_size, model=model_cell_size, manifest=data_cell,
                             what="--cell-size")
    if suffix == ".npz":
        record = grid_npz.read(path, n_parts=len(parts) if parts else None, require_labels=False)
        vocab = record.extras.get("vocab")
        style = record.style if record.style.any() else None   # real imports: no style
        return PartsInput(str(path), record.building_id, record.occupancy, style=style,
                          truth=record.labels, truth_parts=list(vocab) if vocab is not None else parts,
                          cell_size=size, truth_known=record.extras.get("label_known"),
                          street=record.street_sides)
    if suffix == ".csv":
        return _read_adjacency(path, building_id, size, parts)
    if extension_of(path) in mesh_extensions():
        voxels, mesh = voxelize_file(path, size, up, objects=objects)
        return PartsInput(str(path), 0, voxels.occupancy, cell_size=voxels.cell_size,
                          voxels=voxels, mesh=mesh, notes=list(voxels.notes))
    raise DatasetError(f"{path}: unsupported input '{suffix}' (expected a grid .npz, "
                       f"adjacency.csv rows, or a mesh: {', '.join(mesh_extensions())})")


def _dataset_info(path: Path) -> tuple[list | None, float | None]:
    """(parts, cell size) of the dataset a file belongs to, when it can be found."""
    root = find_dataset_root(path)
    if root is None:
        return None, None
    data = BuildingDataset(root)
    return data.parts, data.cell_size


def _read_adjacency(path: Path, building_id, cell_size: float, parts) -> PartsInput:
    ids, feats, names = adjacency_csv.read(path)
    if len(ids) == 0:
        raise DatasetError(f"{path}: no rows")
    present = np.unique(ids[:, 0])
    if building_id is None:
        if len(present) > 1:
            raise DatasetError(f"{path}: rows of {len(present)} buildings (ids {present[0]}.."
                               f"{present[-1]}); choose one with --building-id")
        building_id = int(present[0])
    rows = ids[:, 0] == building_id
    if not rows.any():
        raise DatasetError(f"{path}: no rows for building {building_id}")
    coords = ids[rows, 1:].astype(np.int64)
    if coords.min() < 0:
        raise DatasetError(f"{path}: negative cell coordinates for building {building_id}")
    occ = np.zeros(tuple(coords.max(axis=0) + 1), dtype=np.uint8)
    occ[tuple(coords.T)] = 1
    style_cols = [names.index(n) for n in STYLE_FEATURES]
    style = feats[np.nonzero(rows)[0][0], style_cols].astype(np.float32)
    item = PartsInput(str(path), int(building_id), occ, style, cell_size=cell_size)
    faces = path.with_name(FACES_CSV)
    if parts and faces.is_file():
        item.truth, item.truth_parts = faces_csv.labels_of(faces, parts, building_id, occ.shape), parts
    return item
