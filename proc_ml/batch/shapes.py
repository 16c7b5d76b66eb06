"""The ``classify`` and ``segment`` batch tasks: the shape nets on every mesh or point
cloud, through the same ``proc_ml.predict.shapes`` logic as ``proc-ml predict``."""

from __future__ import annotations

from ..errors import ProcMLError
from .assets import Limits, asset_error
from .items import TaskOutput
from .parts import WORKER_THREADS


def _load(asset_path, limits: Limits | None):
    """The asset as a ``Shape``, read within the batch's limits (--max-bytes, --max-faces)."""
    from ..datasets.pointclouds import load_shape

    limits = limits or Limits()
    limits.check_bytes(asset_path.stat().st_size)
    return load_shape(asset_path, max_bytes=limits.max_bytes, max_faces=limits.max_faces)


def _with_notes(summary: dict, shape) -> dict:
    """Reader warnings (Open3D's) go into the asset's record, not onto the terminal."""
    if shape.notes:
        summary["notes"] = list(shape.notes)
    return summary


def _predictor(model_path: str, options: dict):
    from ..runtime.shapes import ShapePredictor

    predictor = ShapePredictor.open(model_path, device=options.get("device", "auto"),
                                    intra_op_threads=WORKER_THREADS)
    if predictor.info.with_style:
        # no asset carries the building style: refused once (the batch stops with this line),
        # not as the same failure on every asset
        from ..errors import ModelError

        raise ModelError(f"{model_path}: this model reads the building style features, which "
                         f"assets do not carry; batch needs a shape model trained without them "
                         f"(predict classify / segment --style runs it on one file)")
    return predictor


def open_classify(model_path: str, options: dict, limits: Limits | None = None):
    """Batch ``classify``: load the model once; the processor writes ``classes.json`` per asset."""
    from ..predict.shapes import classify_shape

    predictor = _predictor(model_path, options)
    top = int(options.get("top_k", 5))

    def process(asset_path, out_dir) -> TaskOutput:
        try:
            shape = _load(asset_path, limits)
            result = classify_shape(predictor, shape, out_dir, top)
        except ProcMLError as exc:
            raise asset_error(exc, asset_path) from None
        return TaskOutput(list(result["files"]), _with_notes({"top_k": result["top_k"][:3]}, shape))
    return process


def open_segment(model_path: str, options: dict, limits: Limits | None = None):
    """Batch ``segment``: ``segments.ply`` (+ PNG with pictures on) and ``summary.json`` per asset."""
    from ..predict.shapes import segment_shape

    predictor = _predictor(model_path, options)
    pictures = bool(options.get("pictures", False))

    def process(asset_path, out_dir) -> TaskOutput:
        try:
            shape = _load(asset_path, limits)
            summary = segment_shape(predictor, shape, out_dir, picture=pictures)
        except ProcMLError as exc:
            raise asset_error(exc, asset_path) from None
        return TaskOutput(list(summary["files"]), _with_notes(
            {k: summary[k] for k in ("points", "points_per_part", "mean_confidence")}, shape))
    return process
