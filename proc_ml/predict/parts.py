"""Label a building's faces end to end (numpy + onnxruntime + trimesh; never torch).

input file (``predict.inputs``) -> occupancy (+ style, + ground truth when the file has it)
-> ``PartsPredictor`` -> labels -> labelled meshes, faces CSV, PNG picture, accuracy.
``proc-ml predict building-parts`` and the batch ``parts`` task run this.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..colours import part_colours
from ..encoding import parse_street
from ..fileio import safe_join, write_bytes, write_text
from ..formats import faces_csv, labelled_mesh
from ..formats.tables import header_line
from ..meshing import QuadMesh, quad_mesh
from ..errors import DatasetError, ModelError
from ..grid import NO_PART, buildings as building_boxes
from ..runtime import PartsPredictor, face_accuracy
from ..voxelize import transfer_labels
from .inputs import PartsInput, read_input


# -- predicting and writing -------------------------------------------------------------
def truth_vocabulary(item: PartsInput, parts) -> list[str] | None:
    """The names the input's labels index: its own (``vocab`` / dataset.yaml), or, when it
    states none, the model's (with a note) if its labels fit; ``DatasetError`` otherwise."""
    if item.truth is None:
        return None
    if item.truth_parts is not None:
        return list(item.truth_parts)
    top = int(item.truth.max(initial=-1))
    if top >= len(parts):
        raise DatasetError(f"{item.source}: labels index parts up to {top}, the file names no "
                           f"part vocabulary ('vocab' array or a dataset.yaml) and the model has "
                           f"{len(parts)} parts: cannot tell what the labels mean")
    item.notes.append("the input names no part vocabulary: its labels were read as the model's "
                      f"({', '.join(parts)})")
    return list(parts)


def accuracy_against_truth(item: PartsInput, labels: np.ndarray, parts) -> dict | None:
    """Face accuracy against the input's own labels, scored and reported in the input's
    vocabulary (predicted parts mapped to it by name; a part it does not have is always
    wrong). Only faces the source saw count when it says (``truth_known``)."""
    vocab = truth_vocabulary(item, parts)
    if vocab is None:
        return None
    if not any(p in vocab for p in parts):
        raise DatasetError(f"{item.source}: none of its parts ({', '.join(vocab)}) is one the model "
                           f"predicts ({', '.join(parts)}): cannot score it")
    to_truth = np.array([vocab.index(p) if p in vocab else len(vocab) for p in parts])
    predicted = np.where(labels >= 0, to_truth[np.maximum(labels, 0)], NO_PART)
    truth = item.truth if item.truth_known is None else np.where(item.truth_known, item.truth, NO_PART)
    result = face_accuracy(predicted, truth)
    result["per_part"] = {vocab[k]: v for k, v in result["per_part"].items()}
    result["vocabulary"] = vocab
    if vocab != list(parts):
        item.notes.append(f"scored in the input's vocabulary ({', '.join(vocab)})")
    missing = [p for p in vocab if p not in parts]
    if missing:
        item.notes.append(f"the model cannot predict {', '.join(missing)} (not in its parts)")
    if item.truth_known is not None:
        item.notes.append("accuracy over the faces the source saw (label_known)")
    return result


def truth_in_model_vocabulary(item: PartsInput, parts) -> np.ndarray | None:
    """The input's labels as indices of the model's parts (for pictures), -1 where it has
    a part the model lacks."""
    vocab = truth_vocabulary(item, parts)
    if vocab is None:
        return None
    to_model = np.array([list(parts).index(p) if p in parts else NO_PART for p in vocab] + [NO_PART])
    return np.where(item.truth >= 0, to_model[item.truth], NO_PART).astype(np.int8)


def output_quads(item: PartsInput, labels: np.ndarray, up: str | None = "z") -> QuadMesh:
    """The labelled quads where the input is: in proc-ml's z-up frame (``up="z"``: GLB,
    pictures), or in the input mesh's own frame (``up=None``: PLY, beside the input)."""
    if item.voxels is not None:
        return item.voxels.quads(labels, up)
    return quad_mesh(item.occupancy, labels, item.cell_size)


#: Every file ``write_outputs`` may write into an output folder (``summary.json`` last, listing
#: those it wrote: what ``fileio.check_replaceable`` lets a re-run replace).
OUTPUT_FILES = ("parts.ply", "parts.glb", "faces.csv", "input_parts.ply", "accuracy.json",
                "parts.png", "summary.json")


def write_outputs(out_dir, item: PartsInput, labels: np.ndarray, parts, extra: dict,
                  picture: bool = True) -> dict:
    """Write every output file into ``out_dir``; return the summary (also summary.json).

    ``summary["files"]`` names the files relative to ``out_dir``, so a summary does not depend
    on where the output folder lives. ``picture=False`` skips ``parts.png`` (matplotlib
    rendering is about half of the time per building). Every file is made before the first
    is written, so a failure leaves ``out_dir`` as it was; an earlier run's files this run
    does not write are removed, and summary.json is written last.
    """
    out = Path(out_dir)
    colours = part_colours(parts)
    quads = output_quads(item, labels)
    outputs: dict[str, bytes] = {}     # made in full before any file is written

    def put(name: str, data: bytes):
        outputs[name] = data

    # parts.ply in the input's own frame (y-up for a y-up OBJ, like input_parts.ply), so it
    # overlays the input; parts.glb z-up under glTF's y-up node, so any glTF viewer shows it
    # upright and, for a glTF input, where the input is
    for fmt, mesh in (("ply", output_quads(item, labels, up=None)), ("glb", quads)):
        put(f"parts.{fmt}", labelled_mesh.mesh_bytes(mesh.vertices, mesh.triangles,
                                                     mesh.triangle_parts, fmt, parts, colours))
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
        meshes.append(output_quads(item, truth_in_model_vocabulary(item, parts)))
        titles = [f"prediction ({accuracy['accuracy']:.1%} of faces right)", "ground truth"]
        put("accuracy.json", (json.dumps(accuracy, indent=2) + "\n").encode())
    if picture:
        from ..render import render_parts
        try:
            png = render_parts(meshes, parts, colours, titles)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("matplotlib"):
                raise
            # a base or [dcc] install: the labelled meshes and tables are the product
            item.notes.append('no parts.png: matplotlib is not installed '
                              '(pip install "proc-ml[train]")')
        else:
            put("parts.png", png)
    counts = np.bincount(labels[labels >= 0].astype(np.int64), minlength=len(parts))
    summary = {"input": item.source, "building_id": item.building_id,
               "grid_shape": list(item.occupancy.shape), "cell_size": item.cell_size,
               "cells": int(item.occupancy.sum()), "faces": int(counts.sum()),
               "faces_per_part": {p: int(c) for p, c in zip(parts, counts)},
               "accuracy": None if accuracy is None else accuracy["accuracy"],
               "notes": item.notes, **extra}
    if item.voxels is not None:
        summary.update(origin=item.voxels.origin.tolist(), up=item.voxels.up,
                       closed_mesh=item.voxels.closed, rotation_deg=item.voxels.rotation_deg,
                       pivot=np.asarray(item.voxels.pivot, dtype=float).tolist())
    summary["files"] = sorted([*outputs, "summary.json"])
    earlier = _earlier_files(out)
    for name, data in outputs.items():
        write_bytes(safe_join(out, name), data)
    for name in sorted(earlier - set(summary["files"])):
        # an earlier run's file this run does not write (accuracy.json of another input,
        # input_parts.ply of a mesh): the folder holds one run's outputs, never a mix
        safe_join(out, name).unlink(missing_ok=True)
    write_text(safe_join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def _earlier_files(out: Path) -> set[str]:
    """The output files an earlier run into ``out`` wrote (its summary.json's ``files``)."""
    try:
        earlier = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    listed = earlier.get("files") if isinstance(earlier, dict) else None
    return {str(n) for n in listed if str(n) in OUTPUT_FILES} if isinstance(listed, list) else set()


def several_buildings_note(count: int, pieces=None, objects: int = 0) -> str | None:
    """A note when a grid holds several buildings (``count``, ``grid.buildings``: the masses
    standing apart, or with ``pieces`` the file's ``objects`` objects), which
    ``PartsPredictor`` labels one by one; None for one building from masses."""
    if pieces is not None:
        return (f"the mesh's {objects} object(s) make {count} building(s) (objects over the same "
                f"ground are one; masses standing apart are apart): each was labelled on its own, "
                f"with the same street sides for all")
    if count < 2:
        return None
    return (f"the mesh holds {count} masses standing apart (several buildings): each was "
            f"labelled on its own, on its own ground floor, with the same street sides for all; "
            f"buildings that touch are one mass, labelled as one building (--buildings objects "
            f"labels each object of the file as a building)")


def label_building(predictor: PartsPredictor, input_path, out_dir, *,
                   cell_size: float | None = None, building_id: int | None = None,
                   up: str | None = None, style=None, street=None, picture: bool = True,
                   symmetry: str | None = None, entrance: bool | None = None,
                   buildings: str = "masses") -> dict:
    """Label one building from ``input_path`` with a loaded predictor; write the outputs to
    ``out_dir`` and return the summary. ``street``: the sides facing the street (given, else
    those the input records, e.g. an imported real building). ``symmetry``: the turns the
    probabilities are averaged over (None: the model's own; ``PartsPredictor``);
    ``entrance``: the entrance rule on or off (None: the model's own). ``buildings``:
    ``"masses"`` (a mesh's masses standing apart are its buildings) or ``"objects"`` (each
    object of a mesh file is one, objects over the same ground being one)."""
    if buildings not in ("masses", "objects"):
        raise DatasetError(f"buildings must be masses or objects, got '{buildings}'")
    item = read_input(input_path, building_id=building_id, cell_size=cell_size,
                      model_cell_size=predictor.cell_size, up=up, objects=buildings == "objects")
    if style is not None:
        item.style = np.asarray(style, dtype=np.float32)
    pieces = item.voxels.pieces if item.voxels is not None else None
    objects = len(item.mesh.metadata.get("piece_names", ())) if pieces is not None else 0
    count = len(building_boxes(item.occupancy, pieces))
    note = several_buildings_note(count, pieces, objects)
    if note:
        item.notes.append(note)
    if item.style is not None and not predictor.with_style:
        kind = ("street-aware model (the massing and the street sides)" if predictor.with_street
                else "massing-only model")
        item.notes.append(f"{kind}: the input's style features were not used")
    street = parse_street(street) if street is not None else item.street
    note = predictor.street_note(street)
    if note:
        item.notes.append(note)
    symmetry = predictor.check_symmetry(symmetry)
    try:
        labels, probs = predictor.predict(item.occupancy, item.style, street, symmetry=symmetry,
                                          entrance=entrance, buildings=pieces)
    except ModelError as exc:
        if str(exc).startswith(str(predictor.model.path)):
            raise                       # about the model: it names the model file
        raise ModelError(f"{input_path}: {exc}") from None
    confidence = probs.max(axis=-1)[labels >= 0]
    extra = {"model": str(predictor.model.path), "family": predictor.metadata.family,
             "buildings": count,
             "buildings_from": "objects" if pieces is not None else "masses",
             "street": list(street or ()), "symmetry": symmetry,
             "entrance_rule": predictor.entrance_rule if entrance is None else bool(entrance),
             "provider": predictor.model.providers[0],
             "mean_confidence": float(confidence.mean()) if confidence.size else 0.0}
    return write_outputs(out_dir, item, labels, predictor.parts, extra, picture=picture)
