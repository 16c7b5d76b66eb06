"""Shape nets on a mesh or point cloud file (torch-free): the library behind
``proc-ml predict classify|segment`` and the batch ``classify``/``segment`` tasks.

classify returns the top-k classes and writes ``classes.json`` when given a folder;
segment writes ``segments.ply`` (points with normals, part colour and ``part`` index),
``segments.png`` (a 3D view coloured by part) and ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..colours import part_colours
from ..fileio import safe_join, write_bytes, write_text
from ..formats.point_cloud import ply_bytes
from ..render import render_points
from ..validation import json_safe


def _name(shape) -> str:
    """The file a shape came from (a path, or a loaded ``Shape``)."""
    return str(getattr(shape, "path", shape))


#: The files ``classify_shape`` / ``segment_shape`` write into an output folder (the last
#: one lists those written: what ``fileio.check_replaceable`` lets a re-run replace).
CLASSIFY_FILES = ("classes.json",)
SEGMENT_FILES = ("segments.ply", "segments.png", "summary.json")


def classify_shape(predictor, input_path, out_dir=None, k: int = 5, seed: int = 0) -> dict:
    """Top-k classes of one shape (a path or a loaded ``Shape``); ``classes.json`` in
    ``out_dir`` when given."""
    ranked = predictor.classify(input_path, k=k, seed=seed)
    result = {"input": _name(input_path), "model": str(predictor.model.path), "task": predictor.task,
              "top_k": [{"class": n, "probability": p} for n, p in ranked], "files": []}
    if out_dir is not None:
        result["files"] = list(CLASSIFY_FILES)
        write_text(safe_join(Path(out_dir), "classes.json"),
                   json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    return result


def segment_shape(predictor, input_path, out_dir, style=None, num_points: int | None = None,
                  seed: int = 0, picture: bool = True) -> dict:
    """Per-point parts of one shape: ``segments.ply`` (+ ``segments.png``) and ``summary.json``."""
    points, normals, labels, probs = predictor.segment(input_path, style=style,
                                                       num_points=num_points, seed=seed)
    parts = predictor.classes
    colours = part_colours(parts)
    out = Path(out_dir)
    outputs = {"segments.ply": ply_bytes(points, normals, labels, colours)}
    if picture:     # made before anything is written: a failure leaves the folder as it was
        outputs["segments.png"] = render_points(points, labels, parts, colours)
    for name, data in outputs.items():
        write_bytes(safe_join(out, name), data)
    files = list(outputs)
    counts = np.bincount(labels, minlength=len(parts))
    summary = {"input": _name(input_path), "model": str(predictor.model.path),
               "points": int(len(points)),
               "points_per_part": {p: int(c) for p, c in zip(parts, counts)},
               "mean_confidence": float(probs.max(axis=1).mean()),
               "files": files + ["summary.json"]}
    write_text(safe_join(out, "summary.json"),
               json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n")
    return summary
