"""Predict building parts end to end (numpy + onnxruntime + trimesh; never torch).

input file -> occupancy (+ style, + ground truth when the file has it) -> ``PartsPredictor``
-> labels -> labelled meshes, faces CSV, PNG picture, accuracy. Shared by
``proc-ml predict``, the DCC adapters and batch jobs.

Inputs:

* a dataset grid ``.npz`` (``grids/bXXXXXX.npz``): occupancy, style and true labels;
* ``adjacency.csv`` rows (one building, ``building_id`` picks it when there are several);
  the style comes from the rows, true labels from a ``faces.csv`` beside it if present;
* a mesh (OBJ, PLY, STL, OFF, GLB, GLTF): voxelised at ``cell_size`` (default: the
  model's training cell size), no style and no truth.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoding import STYLE_FEATURES
from .errors import DatasetError
from .fileio import safe_join, write_bytes, write_text
from .colours import part_colours
from .meshing import QuadMesh, quad_mesh
from .runtime import PartsPredictor, face_accuracy
from .voxelize import MESH_SUFFIXES, VoxelGrid, transfer_labels, voxelize_file

DEFAULT_CELL_SIZE = 1.0


@dataclass
class PartsInput:
    """One building to label, read from any supported input."""
    source: str
    building_id: int
    occupancy: np.ndarray                 # uint8[X, Y, Z]
    style: np.ndarray | None = None       # float32[9]
    truth: np.ndarray | None = None       # int8[X, Y, Z, 6] ground-truth labels
    truth_parts: list | None = None       # vocabulary of ``truth``
    cell_size: float = DEFAULT_CELL_SIZE
    voxels: VoxelGrid | None = None       # mesh inputs: where the grid sits in the mesh
    mesh: object | None = None            # mesh inputs: the source trimesh
    notes: list = field(default_factory=list)


# -- reading inputs ---------------------------------------------------------------------
def read_input(path: str | os.PathLike, *, building_id: int | None = None,
               cell_size: float | None = None, up: str | None = None) -> PartsInput:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_grid(path, cell_size)
    if suffix == ".csv":
        return _read_adjacency(path, building_id, cell_size)
    if suffix in MESH_SUFFIXES:
        voxels, mesh = voxelize_file(path, cell_size or DEFAULT_CELL_SIZE, up)
        return PartsInput(str(path), 0, voxels.occupancy, cell_size=voxels.cell_size,
                          voxels=voxels, mesh=mesh)
    raise DatasetError(f"{path}: unsupported input '{suffix}' (expected a grid .npz, "
                       f"adjacency.csv rows, or a mesh: {', '.join(MESH_SUFFIXES)})")


def _dataset_info(path: Path) -> tuple[list | None, float | None]:
    """(parts, cell size) of the dataset a file belongs to, when it can be found."""
    from .formats import find_dataset_root, manifest as dataset_manifest

    root = find_dataset_root(path)
    if root is None:
        return None, None
    manifest = dataset_manifest.read(root)
    return list(manifest["parts"]), float(manifest.get("cell_size", DEFAULT_CELL_SIZE))


def _read_grid(path: Path, cell_size) -> PartsInput:
    from .formats import grid_npz

    parts, data_cell = _dataset_info(path)
    record = grid_npz.read(path, n_parts=len(parts) if parts else None)
    return PartsInput(str(path), record.building_id, record.occupancy, record.style,
                      record.labels, parts, cell_size or data_cell or DEFAULT_CELL_SIZE)


def _read_adjacency(path: Path, building_id, cell_size) -> PartsInput:
    from .formats import adjacency_csv

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
    parts, data_cell = _dataset_info(path)
    item = PartsInput(str(path), int(building_id), occ, style,
                      cell_size=cell_size or data_cell or DEFAULT_CELL_SIZE)
    from .formats import FACES_CSV, faces_csv

    faces = path.with_name(FACES_CSV)
    if parts and faces.is_file():
        item.truth, item.truth_parts = faces_csv.labels_of(faces, parts, building_id, occ.shape), parts
    return item


def parse_style(text: str | None) -> np.ndarray | None:
    """``--style``: 9 comma-separated numbers in ``STYLE_FEATURES`` order."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise DatasetError(f"--style: '{text}' is not a comma-separated list of numbers") from None
    if len(values) != len(STYLE_FEATURES):
        raise DatasetError(f"--style: expected {len(STYLE_FEATURES)} values "
                           f"({', '.join(STYLE_FEATURES)}), got {len(values)}")
    return np.array(values, dtype=np.float32)


# -- predicting and writing -------------------------------------------------------------
def accuracy_against_truth(item: PartsInput, labels: np.ndarray, parts) -> dict | None:
    if item.truth is None:
        return None
    if list(item.truth_parts or parts) != list(parts):
        item.notes.append("ground truth uses another part vocabulary; accuracy not computed")
        return None
    result = face_accuracy(labels, item.truth)
    result["per_part"] = {parts[k]: v for k, v in result["per_part"].items()}
    return result


def output_quads(item: PartsInput, labels: np.ndarray) -> QuadMesh:
    if item.voxels is not None:
        return item.voxels.quads(labels)
    return quad_mesh(item.occupancy, labels, item.cell_size)


def write_outputs(out_dir, item: PartsInput, labels: np.ndarray, parts, extra: dict,
                  picture: bool = True) -> dict:
    """Write every output file into ``out_dir``; return the summary (also summary.json).

    ``summary["files"]`` names the files relative to ``out_dir``, so a summary does not depend
    on where the output folder lives. ``picture=False`` skips ``parts.png`` (matplotlib
    rendering is about half of the time per building).
    """
    from .formats import faces_csv, labelled_mesh
    from .formats.tables import header_line

    out = Path(out_dir)
    colours = part_colours(parts)
    quads = output_quads(item, labels)
    files: list[str] = []

    def put(name: str, data: bytes):
        write_bytes(safe_join(out, name), data)
        files.append(name)

    for fmt in ("ply", "glb"):
        put(f"parts.{fmt}", labelled_mesh.mesh_bytes(quads.vertices, quads.triangles,
                                                     quads.triangle_parts, fmt, parts, colours))
    coords = np.stack(np.nonzero(item.occupancy), axis=1)
    put("faces.csv", header_line(faces_csv.header(parts))
        + faces_csv.rows(item.building_id, labels, coords, len(parts)))
    if item.mesh is not None:
        tri_parts = transfer_labels(item.mesh.vertices, item.mesh.faces, item.voxels, labels)
        put("input_parts.ply", labelled_mesh.mesh_bytes(item.mesh.vertices, item.mesh.faces,
                                                        tri_parts, "ply", parts, colours))
    accuracy = accuracy_against_truth(item, labels, parts)
    meshes, titles = [quads], ["prediction"]
    if accuracy is not None:
        meshes.append(output_quads(item, item.truth))
        titles = [f"prediction ({accuracy['accuracy']:.1%} of faces right)", "ground truth"]
        put("accuracy.json", (json.dumps(accuracy, indent=2) + "\n").encode())
    if picture:
        from .render import render_parts
        put("parts.png", render_parts(meshes, parts, colours, titles))
    counts = np.bincount(labels[labels >= 0].astype(np.int64), minlength=len(parts))
    summary = {"input": item.source, "building_id": item.building_id,
               "grid_shape": list(item.occupancy.shape), "cell_size": item.cell_size,
               "cells": int(item.occupancy.sum()), "faces": int(counts.sum()),
               "faces_per_part": {p: int(c) for p, c in zip(parts, counts)},
               "accuracy": None if accuracy is None else accuracy["accuracy"],
               "notes": item.notes, **extra}
    if item.voxels is not None:
        summary.update(origin=item.voxels.origin.tolist(), up=item.voxels.up,
                       closed_mesh=item.voxels.closed)
    summary["files"] = sorted(files + ["summary.json"])
    write_text(safe_join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def predict_building_parts(model_path, input_path, out_dir, *, device: str = "auto",
                           cell_size: float | None = None, building_id: int | None = None,
                           up: str | None = None, style=None, threads: int = 0,
                           picture: bool = True) -> dict:
    """Label one building from ``input_path`` with the model; write outputs to ``out_dir``."""
    predictor = PartsPredictor(model_path, device=device, intra_op_threads=threads)
    meta = predictor.metadata
    item = read_input(input_path, building_id=building_id,
                      cell_size=cell_size or meta.cell_size, up=up)
    if style is not None:
        item.style = np.asarray(style, dtype=np.float32)
    if item.style is not None and not predictor.with_style:
        item.notes.append("massing-only model: the input's style features were not used")
    labels, probs = predictor.predict(item.occupancy, item.style)
    confidence = probs.max(axis=-1)[labels >= 0]
    extra = {"model": str(model_path), "family": meta.family, "provider": predictor.model.providers[0],
             "mean_confidence": float(confidence.mean()) if confidence.size else 0.0}
    return write_outputs(out_dir, item, labels, predictor.parts, extra, picture=picture)
