"""Labelled faces from a DCC -> proc-ml building datasets (the ``proc-ml generate`` formats).

A studio's own procedural network (Houdini, Blender, ...) produces a voxel massing whose
faces carry a part: axis-aligned rectangles on a ``cell_size`` lattice, each covering one
or more cell faces. :func:`building_from_faces` recovers the occupancy and the per-face
labels from them (winding does not matter: the inside is found by parity along z), and
:func:`export_building` writes the building with the same writers as ``proc-ml generate``
and refreshes the dataset-wide tables and ``dataset.yaml`` so the folder is a dataset
after every building.

DCC massing carries no style features (street side, window rhythm...): they are written
as zeros and the manifest says ``style_present: false``; train such data with
``dataset.use_style=false`` (the massing-only model, the default for block-outs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets.writer import BuildingArrays, DatasetIndex, index_rows, write_building_files
from ..encoding import STYLE_FEATURES, parse_street, street_vector
from ..errors import DatasetError
from ..formats import FORMATS, GRIDS_DIR, MANIFEST, grid_npz, grid_path, manifest
from ..grid import NO_PART, exterior_faces
from ..procedural.parts import DEFAULT_PARTS, Vocabulary
from ..units import check_cell_size
from .faces import (LATTICE_TOLERANCE, face_keys, lattice_corners, rectangles, scatter_faces,
                    turn_walls_to_axes, unit_faces)
from .fixes import fix_indices, fix_names, merge_parts
from .geometry import MAX_CELLS_PER_AXIS, GeometryError

DEFAULT_ARCHETYPE = "custom"


@dataclass
class LabelledBuilding:
    """Occupancy and face labels recovered from DCC faces, proc-ml's z-up grid layout."""
    occupancy: np.ndarray   # uint8[X, Y, Z]
    labels: np.ndarray      # int8[X, Y, Z, 6], -1 where no face
    origin: np.ndarray      # float64[3] z-up world position of cell [0, 0, 0]'s low corner
    #: bool[X, Y, Z, 6], True on the faces whose label came from ``part_fix`` (the grid
    #: extra ``label_fixed``); None when the faces carried no ``part_fix``
    fixed: np.ndarray | None = None
    #: degrees the massing's walls were turned from x / y in the DCC (a prediction on a
    #: turned mesh comes back turned): the grid is built in the frame turned back by it
    rotation_deg: float = 0.0


# -- faces -> grid ------------------------------------------------------------------------
def part_indices(values, parts) -> np.ndarray:
    """Per-face part as given by a DCC attribute (names or indices) -> ``int32`` indices."""
    parts = list(parts)
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        bad = np.nonzero((arr < 0) | (arr >= len(parts)))[0]
        if bad.size:
            raise GeometryError(f"prim {int(bad[0])}: part index {int(arr[bad[0]])} is outside "
                                f"0..{len(parts) - 1} ({', '.join(parts)})")
        return arr.astype(np.int32)
    names, inverse = np.unique(arr.astype(str), return_inverse=True)
    lookup = {name: i for i, name in enumerate(parts)}
    unknown = [n for n in names if n not in lookup]
    if unknown:
        first = int(np.nonzero(arr.astype(str) == unknown[0])[0][0])
        shown = unknown[0] if unknown[0] else "<empty>"
        raise GeometryError(f"prim {first}: part '{shown}' is not in the vocabulary "
                            f"({', '.join(parts)})")
    return np.array([lookup[n] for n in names], dtype=np.int32)[inverse.reshape(-1)]


def _parity_occupancy(levels_xyz: np.ndarray, shape) -> np.ndarray:
    """Cells inside a closed voxel surface, from its horizontal faces (z-parity)."""
    X, Y, Z = shape
    crossings = np.zeros((X, Y, Z + 1), dtype=np.int64)
    np.add.at(crossings, tuple(levels_xyz.T), 1)
    if crossings.max(initial=0) > 1:
        i, j, k = (int(n) for n in np.argwhere(crossings > 1)[0])
        raise GeometryError(f"two faces overlap at cell column ({i}, {j}), height {k}")
    return (np.cumsum(crossings[:, :, :Z], axis=2) % 2).astype(np.uint8)


def building_from_faces(points, counts, indices, part, cell_size, grid_size=None,
                        fixed=None) -> LabelledBuilding:
    """Axis-aligned rectangles on a ``cell_size`` lattice (z-up positions) -> building.

    ``counts``/``indices`` list each polygon's points; ``part`` gives one part index per
    polygon. The massing must be closed, and ``grid_size`` (if given) must hold it.
    ``fixed`` (bool per polygon, optional): the polygons whose part an artist corrected;
    their cell faces are marked in ``LabelledBuilding.fixed`` by the same mapping.
    """
    size = check_cell_size(cell_size)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    part = np.asarray(part, dtype=np.int64).reshape(-1)
    if len(part) != len(counts):
        raise GeometryError(f"{len(part)} part values for {len(counts)} polygons")
    if fixed is not None and len(fixed) != len(counts):
        raise GeometryError(f"{len(fixed)} part_fix values for {len(counts)} polygons")
    bad = np.nonzero(counts != 4)[0]
    if bad.size:
        raise GeometryError(f"prim {int(bad[0])} has {int(counts[bad[0]])} vertices; export "
                            f"expects axis-aligned quads on the cell grid")
    quads = np.asarray(indices, dtype=np.int64).reshape(-1, 4)
    pts, rotation = turn_walls_to_axes(pts, quads)
    corners = pts[quads]
    origin = corners.reshape(-1, 3).min(axis=0)
    lattice, off = lattice_corners(corners, origin, size)
    if (off > LATTICE_TOLERANCE).any():
        prim = int(np.argmax(off > LATTICE_TOLERANCE))
        raise GeometryError(f"prim {prim} is not on the cell grid (a corner lies {off[prim]:.3f} "
                            f"cells off a multiple of cell size {size:g} from the massing's corner)")
    low, extent, normal, valid = rectangles(lattice)
    if not valid.all():
        prim = int(np.argmin(valid))
        raise GeometryError(f"prim {prim} is not an axis-aligned rectangle on the cell grid")
    shape = _grid_shape(low + extent, grid_size, size)
    rect, axis, cell = unit_faces(low, extent, normal)
    occ = _parity_occupancy(cell[axis == 2], shape)
    key = face_keys(occ, rect, axis, cell)
    labels = scatter_faces(occ.shape, key, part[rect], NO_PART, np.int8)
    missing = int((exterior_faces(occ) & (labels < 0)).sum())
    if missing:
        raise GeometryError(f"{missing} faces of the massing have no labelled polygon; the "
                            f"massing must be closed")
    marked = (None if fixed is None else
              scatter_faces(occ.shape, key, np.asarray(fixed, dtype=bool).reshape(-1)[rect], False, bool))
    return LabelledBuilding(occ, labels, origin, marked, rotation)


def _grid_shape(high: np.ndarray, grid_size, cell_size: float) -> tuple[int, int, int]:
    need = high.max(axis=0) if len(high) else np.zeros(3, dtype=np.int64)
    if grid_size is None:
        shape = tuple(int(n) for n in need)
        if max(shape) > MAX_CELLS_PER_AXIS:
            raise GeometryError(f"the massing is {max(shape)} cells across at cell size "
                                f"{cell_size:g} (at most {MAX_CELLS_PER_AXIS}); raise the cell size")
        return shape
    shape = tuple(int(n) for n in grid_size)
    if len(shape) != 3 or min(shape) < 1:
        raise GeometryError(f"grid size must be 3 positive integers, got {list(grid_size)}")
    if (need > np.array(shape)).any():
        raise GeometryError(f"the massing needs a {'x'.join(str(int(n)) for n in need)} grid at "
                            f"cell size {cell_size:g} but grid size is "
                            f"{'x'.join(map(str, shape))}; raise the grid size or the cell size")
    return shape


# -- writing ------------------------------------------------------------------------------
def export_building(out, building_id: int, building: LabelledBuilding, parts, cell_size: float,
                    formats=None, source: str = "dcc", archetype: str = DEFAULT_ARCHETYPE,
                    split=(0.1, 0.1), seed: int = 0, update_index: bool = True,
                    street=None) -> dict | None:
    """Write one building (grids, meshes, points) and, by default, refresh the dataset.

    ``street``: the sides facing the street (``"+x -y"`` or a sequence, proc-ml's z-up grid
    frame, as the prediction took them), written as the grid's ``street`` so a street-aware
    model fine-tunes on them; None writes none. Returns the refreshed manifest, or ``None``
    when ``update_index`` is off (call :func:`rebuild_index` once after parallel exports,
    e.g. from PDG).
    """
    formats = tuple(formats or FORMATS)
    if int(building_id) < 0:
        raise DatasetError(f"building id must be >= 0, got {building_id}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", archetype or ""):
        raise DatasetError(f"archetype '{archetype}' must be a word (letters, digits, _ . -)")
    Vocabulary(tuple(parts))
    extras = {} if building.fixed is None else {"label_fixed": building.fixed.astype(bool)}
    if street is not None:
        extras["street"] = street_vector(parse_street(street, "street sides")) > 0
    if building.rotation_deg:
        extras["rotation_deg"] = building.rotation_deg
    arrays = BuildingArrays(int(building_id), archetype, building.occupancy.astype(np.uint8),
                            building.labels.astype(np.int8), np.zeros(len(STYLE_FEATURES), np.float32),
                            extras)
    check_fits_dataset(out, building_id, building.occupancy.shape, parts, cell_size)
    write_building_files(out, arrays, formats + ("grids",), parts, cell_size, seed=seed)
    if not update_index:
        return None
    return rebuild_index(out, parts, cell_size, formats, source, split, seed)


def check_fits_dataset(out, building_id: int, shape, parts, cell_size: float) -> None:
    """Refuse, before anything is written, a building the dataset in ``out`` cannot take:
    its ``dataset.yaml`` lists other buildings on another grid size, with another
    vocabulary or at another cell size. Written anyway, the next index rebuild refuses the
    folder for good (every later export fails until the file is deleted by hand) or, with
    another vocabulary of the same length, silently relabels the older buildings."""
    out = Path(out)
    if not (out / MANIFEST).is_file() or not [i for i in _grid_ids(out) if i != int(building_id)]:
        return
    held = manifest.read(out)
    where = f"{out} holds buildings"
    if tuple(held["parts"]) != tuple(parts):
        raise DatasetError(f"{where} labelled with parts ({' '.join(held['parts'])}) but this one "
                           f"has ({' '.join(parts)}); export it into another dataset folder")
    if abs(float(held["cell_size"]) - float(cell_size)) > 1e-6 * float(cell_size):
        raise DatasetError(f"{where} at cell size {float(held['cell_size']):g} but this one is at "
                           f"{float(cell_size):g}; export it at cell size {float(held['cell_size']):g} "
                           f"or into another dataset folder")
    if tuple(int(n) for n in held["grid_size"]) != tuple(int(n) for n in shape):
        have = "x".join(str(int(n)) for n in held["grid_size"])
        fits = all(int(n) <= int(h) for n, h in zip(shape, held["grid_size"]))
        hint = (f"export it with grid size {' '.join(str(int(n)) for n in held['grid_size'])} or "
                if fits else "")
        raise DatasetError(f"{where} on a {have} grid but this one is "
                           f"{'x'.join(str(int(n)) for n in shape)}; {hint}export it into another "
                           f"dataset folder")


def next_building_id(out) -> int:
    """The id after the largest building already in the dataset folder ``out`` (0 for a
    new or empty folder): where an export that adds buildings starts."""
    ids = _grid_ids(Path(out))
    return ids[-1] + 1 if ids else 0


def _grid_ids(out: Path) -> list[int]:
    ids = []
    for path in (out / GRIDS_DIR).glob("b*.npz"):
        match = re.fullmatch(r"b(\d{6})\.npz", path.name)
        if match:
            ids.append(int(match.group(1)))
    return sorted(ids)


def rebuild_index(out, parts, cell_size, formats=None, source: str = "dcc",
                  split=(0.1, 0.1), seed: int = 0) -> dict:
    """Rebuild the dataset-wide files of ``out`` (CSV tables, labels.json, dataset.yaml)
    from its grids, e.g. once after parallel exports. Building ids must run 0..N-1
    (``BuildingDataset`` reads them by index); every building must share one grid size."""
    out = Path(out)
    formats = tuple(formats or FORMATS)
    cell_size = check_cell_size(cell_size)
    ids = _grid_ids(out)
    missing = sorted(set(range(len(ids) and ids[-1] + 1)) - set(ids))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(f"{out / GRIDS_DIR}: building ids must run 0..N-1; missing {shown} "
                           f"(export those ids, then the dataset index is rebuilt)")
    vocab = Vocabulary(tuple(parts))
    shape = None
    with DatasetIndex(out, vocab.names, formats) as index:
        for building_id in ids:
            rec = grid_npz.read(grid_path(out, building_id), n_parts=len(vocab))
            if shape is not None and rec.occupancy.shape != shape:
                raise DatasetError(f"{out / GRIDS_DIR}: building {building_id} has grid "
                                   f"{list(rec.occupancy.shape)} but others have {list(shape)}; "
                                   f"export every building with the same grid size")
            shape = rec.occupancy.shape
            b = BuildingArrays(building_id, rec.archetype or DEFAULT_ARCHETYPE, rec.occupancy,
                               rec.labels, rec.style)
            index.add(index_rows(b, len(vocab), formats))
    return index.finish(cell_size=cell_size, grid_size=shape or (0, 0, 0), seed=seed, source=source,
                        style_present=False, split=split)


def parse_parts(text: str | None, fallback=None) -> tuple[str, ...]:
    """A vocabulary typed in a DCC field ("wall window door ..." or comma separated)."""
    names = tuple(n for n in re.split(r"[\s,]+", text or "") if n)
    if names:
        return names
    names = tuple(n for n in re.split(r"[\s,]+", fallback or "") if n)
    return names or tuple(DEFAULT_PARTS)


def export_labelled_faces(out, building_id: int, points, counts, indices, part_values, parts,
                          cell_size, grid_size=None, up: str = "z", formats=None,
                          source: str = "dcc", archetype: str = DEFAULT_ARCHETYPE,
                          split=(0.1, 0.1), seed: int = 0, update_index: bool = True,
                          part_fix=None, element: str = "prim", street=None
                          ) -> tuple[LabelledBuilding, dict | None]:
    """DCC faces (DCC frame) with a part per polygon -> one building of a dataset folder.

    ``grid_size`` ``None`` or all zeros fits the grid to the massing; training needs every
    building of a dataset on the same grid, so studios set it (the generator uses 16^3).
    ``part_fix`` (optional, one value per polygon, as the DCC stores it: a part name, ``""``
    = not corrected, or an index into ``parts``, -1 = not corrected) overrides the part on
    the corrected polygons, and the grid gets ``label_fixed`` marking their cell faces.
    Walls turned from x / y (a prediction on a turned mesh) are turned back first; the grid
    records the angle (``rotation_deg``). ``street``: see :func:`export_building`.
    """
    from .geometry import to_z_up

    grid = None if grid_size is None or not any(int(n) for n in grid_size) else grid_size
    fixed = None
    if part_fix is not None:
        fix = fix_indices(fix_names(part_fix, parts, f"building {int(building_id)}, ", element), parts,
                          f"building {int(building_id)}, ", element)
        part_values, fixed = merge_parts(part_values, fix, parts), fix >= 0
    building = building_from_faces(to_z_up(points, up), counts, indices,
                                   part_indices(part_values, parts), cell_size, grid, fixed)
    manifest = export_building(out, building_id, building, parts, check_cell_size(cell_size),
                               formats, source, archetype, split, seed, update_index, street)
    return building, manifest
