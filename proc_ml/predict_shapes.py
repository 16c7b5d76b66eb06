"""``proc-ml predict classify|segment``: shape nets on a mesh or point cloud (torch-free).

classify prints the top-k classes and writes ``classes.json`` when ``--out`` is given;
segment writes ``segments.ply`` (points with normals, part colour and ``part`` index),
``segments.png`` (a 3D view coloured by part) and ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .colours import part_colours
from .fileio import safe_join, write_bytes, write_text

def register_shape_predictors(kinds) -> None:
    """Add the ``classify`` and ``segment`` subcommands to ``proc-ml predict``."""
    common = {"--device": dict(choices=("auto", "cpu", "cuda"), default="auto",
                               help="auto (CUDA when usable, else CPU; default), cpu, or cuda"),
              "--threads": dict(type=int, default=0,
                                help="onnxruntime intra-op threads (default 0 = onnxruntime's choice)"),
              "--seed": dict(type=int, default=0, help="seed of the surface point sampling")}
    p = kinds.add_parser(
        "classify", help="the class of a mesh or point cloud (PointNet / VoxNet)",
        description="Classify a shape with an exported pointnet-cls or voxnet model. INPUT is "
                    "a mesh (OBJ/OFF/STL/PLY/GLB/GLTF) or a point cloud (PCD, PLY without faces).")
    p.add_argument("--model", required=True, help="ONNX model from 'proc-ml export onnx'")
    p.add_argument("--input", required=True, help="mesh or point-cloud file")
    p.add_argument("--top-k", type=int, default=5, help="how many classes to list (default 5)")
    p.add_argument("--out", default=None, help="folder for classes.json (optional)")
    for flag, kwargs in common.items():
        p.add_argument(flag, **kwargs)
    p.set_defaults(func=run_classify)
    p = kinds.add_parser(
        "segment", help="a part for every point of a mesh or point cloud (PointNet)",
        description="Segment a shape with an exported pointnet-seg model: writes segments.ply "
                    "(coloured, with a 'part' property), segments.png and summary.json.")
    p.add_argument("--model", required=True, help="ONNX model from 'proc-ml export onnx'")
    p.add_argument("--input", required=True, help="mesh or point-cloud file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--points", type=int, default=None,
                   help="points to sample (default: the number the model was trained with)")
    p.add_argument("--style", default=None,
                   help="9 comma-separated style values for style-aware building models")
    for flag, kwargs in common.items():
        p.add_argument(flag, **kwargs)
    p.set_defaults(func=run_segment)


def classify_shape(predictor, input_path, out_dir=None, k: int = 5, seed: int = 0) -> dict:
    """Top-k classes of one shape; ``classes.json`` in ``out_dir`` when given."""
    ranked = predictor.classify(input_path, k=k, seed=seed)
    result = {"input": str(input_path), "model": str(predictor.model.path), "task": predictor.task,
              "top_k": [{"class": n, "probability": p} for n, p in ranked], "files": []}
    if out_dir is not None:
        write_text(safe_join(Path(out_dir), "classes.json"), json.dumps(result, indent=2) + "\n")
        result["files"] = ["classes.json"]
    return result


def segment_shape(predictor, input_path, out_dir, style=None, num_points: int | None = None,
                  seed: int = 0, picture: bool = True) -> dict:
    """Per-point parts of one shape: ``segments.ply`` (+ ``segments.png``) and ``summary.json``."""
    from .formats.point_cloud import ply_bytes

    points, normals, labels, probs = predictor.segment(input_path, style=style,
                                                       num_points=num_points, seed=seed)
    parts = predictor.classes
    colours = part_colours(parts)
    out = Path(out_dir)
    files = ["segments.ply"]
    write_bytes(safe_join(out, "segments.ply"), ply_bytes(points, normals, labels, colours))
    if picture:
        write_bytes(safe_join(out, "segments.png"), render_points(points, labels, parts, colours))
        files.append("segments.png")
    counts = np.bincount(labels, minlength=len(parts))
    summary = {"input": str(input_path), "model": str(predictor.model.path),
               "points": int(len(points)),
               "points_per_part": {p: int(c) for p, c in zip(parts, counts)},
               "mean_confidence": float(probs.max(axis=1).mean()),
               "files": files + ["summary.json"]}
    write_text(safe_join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def run_classify(args) -> int:
    from .errors import ConfigError
    from .runtime.shapes import ShapePredictor

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    predictor = ShapePredictor(args.model, device=args.device, intra_op_threads=args.threads)
    result = classify_shape(predictor, args.input, args.out, args.top_k, args.seed)
    for entry in result["top_k"]:
        print(f"{entry['class']:<20}{entry['probability']:8.4f}")
    if args.out:
        print(f"wrote {Path(args.out) / 'classes.json'}")
    return 0


def run_segment(args) -> int:
    from .errors import ConfigError
    from .predict_parts import parse_style
    from .runtime.shapes import ShapePredictor

    if args.points is not None and args.points < 1:
        raise ConfigError(f"--points must be >= 1, got {args.points}")
    predictor = ShapePredictor(args.model, device=args.device, intra_op_threads=args.threads)
    summary = segment_shape(predictor, args.input, args.out, parse_style(args.style),
                            args.points, args.seed)
    shown = ", ".join(f"{p} {c}" for p, c in summary["points_per_part"].items() if c)
    print(f"segmented {summary['points']} points ({shown}); wrote {args.out}")
    return 0


# -- batch openers (proc_ml.batch.tasks: "proc_ml.predict_shapes:open_classify" / ...) ----------
def open_classify(model_path: str, options: dict, limits=None):
    """Batch ``classify``: load the model once; the processor writes ``classes.json`` per asset."""
    from .runtime.shapes import ShapePredictor

    predictor = ShapePredictor(model_path, device=options.get("device", "auto"), intra_op_threads=1)
    top = int(options.get("top_k", 5))

    def process(asset_path, out_dir):
        result = _as_asset_error(classify_shape, predictor, asset_path, out_dir, top)
        return _task_output(result["files"], {"top_k": result["top_k"][:3]})
    return process


def open_segment(model_path: str, options: dict, limits=None):
    """Batch ``segment``: ``segments.ply`` (+ PNG with pictures on) and ``summary.json`` per asset."""
    from .runtime.shapes import ShapePredictor

    predictor = ShapePredictor(model_path, device=options.get("device", "auto"), intra_op_threads=1)
    pictures = bool(options.get("pictures", False))

    def process(asset_path, out_dir):
        summary = _as_asset_error(segment_shape, predictor, asset_path, out_dir,
                                  picture=pictures)
        return _task_output(summary["files"], {k: summary[k] for k in
                                               ("points", "points_per_part", "mean_confidence")})
    return process


def _as_asset_error(function, predictor, asset_path, *args, **kwargs):
    from .batch.assets import AssetError
    from .errors import ProcMLError

    try:
        return function(predictor, asset_path, *args, **kwargs)
    except ProcMLError as exc:
        message, prefix = str(exc), f"{asset_path}: "
        raise AssetError(message[len(prefix):] if message.startswith(prefix) else message) from None


def _task_output(files, summary):
    from .batch.items import TaskOutput

    return TaskOutput(list(files), summary)


def render_points(points: np.ndarray, labels: np.ndarray, parts, colours, size: float = 5.0,
                  dpi: int = 110) -> bytes:
    """PNG bytes: a 3D scatter of the points (z up) coloured by part, with a legend."""
    import io

    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rgb = np.array(colours, dtype=np.float64)[labels] / 255.0
    fig = Figure(figsize=(size, size), dpi=dpi)
    ax = fig.add_subplot(projection="3d")
    ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=rgb, s=2, depthshade=False)
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-6)
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - half, c + half)
    ax.view_init(elev=28.0, azim=-58.0)
    present = sorted(set(labels.tolist()))
    fig.legend(handles=[Patch(color=np.array(colours[i]) / 255.0, label=parts[i]) for i in present],
               loc="lower center", ncol=min(4, max(1, len(present))), fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
