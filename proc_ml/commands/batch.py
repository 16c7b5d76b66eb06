"""``proc-ml batch``: run a model over a whole asset folder (resumable, local or Ray)."""

from __future__ import annotations

import sys
from pathlib import Path

from proc_ml.encoding import parse_street
from proc_ml.errors import ProcMLError
from proc_ml.units import check_cell_size
from proc_ml.textures.palette import MATERIALS

from .options import add_device_option, add_parts_options, add_up_option
from .reporting import Reporter, add_json_flag

TASK_NAMES = ("parts", "classify", "segment", "texture")
#: Most worker processes (each loads the model and gets its own memory budget).
MAX_WORKERS = 256


def register(sub) -> None:
    p = sub.add_parser(
        "batch", help="run a model over a whole asset folder (resumable, local or Ray)",
        description="Run a model over every asset of a folder (OBJ, PLY, STL, OFF, GLB/GLTF, PCD, "
                    "3MF, archives... every type trimesh reads; proc-ml .npz), mirroring the folder "
                    "under --out. Unchanged assets are skipped "
                    "on a rerun; broken assets are recorded in OUT/manifest.jsonl and the batch "
                    "goes on. Exit code 0: all succeeded, 2: some failed. See docs/batch.md.")
    p.add_argument("asset_dir", metavar="ASSET_DIR", help="folder of assets (searched recursively)")
    p.add_argument("--task", default="parts", choices=TASK_NAMES,
                   help="what to predict (default parts; texture: a textured GLB per mesh or grid "
                        "from a pix2pix model)")
    p.add_argument("--model", default=None,
                   help="exported ONNX model (proc-ml export onnx); --task parts: default the "
                        "model installed with proc-ml (docs/model-card.md)")
    p.add_argument("--parts-model", help="texture task: building-parts ONNX model that labels meshes "
                                         "(grids from proc-ml generate carry their labels)")
    p.add_argument("--material", choices=MATERIALS, default=None,
                   help="texture task: wall material of the label maps (default plaster)")
    p.add_argument("--out", required=True, help="output folder (mirrors ASSET_DIR; holds manifest.jsonl)")
    p.add_argument("--workers", type=int, default=1, help="parallel workers (default 1)")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="local worker processes (default) or Ray actors")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    add_device_option(p)
    p.add_argument("--gpus-per-worker", type=float, default=None,
                   help="Ray on a GPU device: GPU share each actor requests (default: the "
                        "GPUs shared evenly by --workers)")
    p.add_argument("--cell-size", type=float, default=None,
                   help="voxel size in scene units for meshes and point clouds "
                        "(default: the model's training cell size)")
    p.add_argument("--force", action="store_true", help="redo every asset, even unchanged ones")
    p.add_argument("--pictures", action="store_true",
                   help="also render parts.png per asset (matplotlib; about doubles the time per asset)")
    add_up_option(p)
    add_parts_options(p, scope="parts task: ", recorded_by="each asset")
    p.add_argument("--extensions", nargs="+", metavar="EXT",
                   help="asset types to process, e.g. --extensions obj ply (default: all the task reads)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one asset may take before its worker is stopped (default: none)")
    p.add_argument("--max-bytes", type=int, default=None, help="largest asset file in bytes (default 1 GiB)")
    p.add_argument("--max-faces", type=int, default=None,
                   help="most triangles (or points) per asset (default 10,000,000)")
    p.add_argument("--max-cells", type=int, default=None,
                   help="most voxel grid cells per asset (default 256^3)")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="memory each worker may use, e.g. 4G (default: PROC_ML_MEMORY_BUDGET or "
                        "4G); inputs that would need more fail with one line, see "
                        "docs/reliability.md")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="follow symlinked files and folders that point outside ASSET_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.batch import BatchSettings, Limits, get_task, parse_extensions, run_batch

    import math

    task = get_task(args.task)   # refuses tasks whose model family is not available yet
    if args.model is None:
        if task.name != "parts":
            raise ProcMLError(f"--model is required for --task {task.name} (proc-ml installs "
                              f"a default model for --task parts only)")
        from proc_ml.runtime import default_model
        args.model = str(default_model("building-parts"))
    if args.workers < 1:
        raise ProcMLError(f"--workers must be >= 1, got {args.workers}")
    if args.workers > MAX_WORKERS:
        raise ProcMLError(f"--workers must be <= {MAX_WORKERS}, got {args.workers}")
    if args.timeout is not None and not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise ProcMLError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.cell_size is not None:
        check_cell_size(args.cell_size, "--cell-size")
    if args.gpus_per_worker is not None and not math.isfinite(args.gpus_per_worker):
        raise ProcMLError(f"--gpus-per-worker must be a number in (0, 1], got {args.gpus_per_worker}")
    options = {"cell_size": args.cell_size, "pictures": args.pictures, "device": args.device,
               "up": args.up}
    if args.street is not None:
        if task.name != "parts":
            raise ProcMLError("--street is for --task parts")
        options["street"] = list(parse_street(args.street))
    if args.symmetry is not None:
        if task.name != "parts":
            raise ProcMLError("--symmetry is for --task parts")
        options["symmetry"] = args.symmetry
    if args.entrance is not None:
        if task.name != "parts":
            raise ProcMLError("--no-entrance-rule is for --task parts")
        options["entrance"] = False
    if args.buildings is not None:
        if task.name != "parts":
            raise ProcMLError("--buildings is for --task parts")
        options["buildings"] = args.buildings
    # an option the task's outputs do not depend on would be dropped without a word
    for name, flag, given in (("cell_size", "--cell-size", args.cell_size is not None),
                              ("up", "--up", args.up is not None),
                              ("pictures", "--pictures", args.pictures)):
        if given and name not in task.option_names:
            raise ProcMLError(f"{flag} is not used by --task {task.name}")
    if task.name == "texture":
        options.update(_texture_options(args))
    elif args.parts_model:
        raise ProcMLError("--parts-model is for --task texture")
    elif args.material is not None:
        raise ProcMLError("--material is for --task texture")
    if args.pictures:
        _require_matplotlib()
    out_dir = Path(args.out)
    with Reporter(args.json) as reporter:
        reporter.start("batch", assets=args.asset_dir, out=str(out_dir), task=task.name,
                       model=args.model, executor=args.executor, workers=args.workers)

        def on_record(record: dict, done: int, total: int) -> None:
            reporter.progress("asset", done, total, asset=record["asset"],
                              status=record["status"], error=record["error"],
                              outputs=[str(out_dir / rel) for rel in record["outputs"]])

        settings = BatchSettings(
            asset_dir=args.asset_dir, out_dir=args.out, task=task.name, model=args.model,
            workers=args.workers, executor=args.executor, address=args.address,
            options=options, force=args.force,
            extensions=parse_extensions(args.extensions) if args.extensions else None,
            timeout=args.timeout, limits=_limits(Limits, args),
            follow_symlinks=args.follow_symlinks,
            progress=reporter.progress_bars and not args.quiet,
            gpus_per_worker=args.gpus_per_worker, on_record=on_record)
        report = run_batch(settings, task)
        if reporter.json:
            print_failures(report)
            outputs = [out_dir / "manifest.jsonl", out_dir / "manifest.csv"]
            outputs += [out_dir / rel for record in report.records
                        if record["status"] != "failed" for rel in record["outputs"]]
            reporter.done(outputs, counts=report.counts, seconds=round(report.seconds, 2),
                          executor=report.executor,
                          failed=[{"asset": a, "error": e} for a, e in sorted(report.failures)],
                          not_read=report.others, exit_code=report.exit_code)
        else:
            print_report(report, out_dir)
    return report.exit_code


def _require_matplotlib() -> None:
    """--pictures renders with matplotlib (the [train] extra): say so before any work."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ProcMLError('--pictures needs matplotlib, which is not installed: '
                          'pip install "proc-ml[train]" (or pip install matplotlib)')


def _texture_options(args) -> dict:
    """The texture task's options; the parts model's content hash is part of the skip hash."""
    from pathlib import Path

    from proc_ml.fileio import file_sha256
    from proc_ml.errors import ModelError

    options = {"material": args.material or "plaster"}
    if args.parts_model:
        parts = Path(args.parts_model)
        if not parts.is_file():
            raise ModelError(f"{parts}: parts model file not found")
        options.update(parts_model=str(parts.resolve()), parts_model_sha256=file_sha256(parts))
    return options


def _limits(limits_class, args):
    from proc_ml.budget import ENV, parse_size

    given = {"max_bytes": args.max_bytes, "max_faces": args.max_faces, "max_cells": args.max_cells}
    for name, value in given.items():
        if value is not None and value < 1:
            raise ProcMLError(f"--{name.replace('_', '-')} must be >= 1")
        if value is not None and value > 1 << 48:
            raise ProcMLError(f"--{name.replace('_', '-')} must be <= {1 << 48}")
    if args.memory_budget is not None:
        given["memory_budget"] = parse_size(args.memory_budget, "--memory-budget")
    else:
        import os
        if os.environ.get(ENV):
            given["memory_budget"] = parse_size(os.environ[ENV])
    return limits_class(**{k: v for k, v in given.items() if v is not None})


def print_report(report, out_dir, stream=None) -> None:
    """The summary table: counts by status, speed, totals of the predictions, failures."""
    stream = stream or sys.stdout
    total = sum(report.counts.values())
    ran = report.counts["ok"] + report.counts["failed"]
    rate = f", {ran / report.seconds:.2f} assets/s processed" if ran and report.seconds > 0 else ""
    print(f"batch: {total} assets in {report.seconds:.1f}s with {report.executor}{rate}", file=stream)
    print(f"  {'status':<8} {'assets':>7}", file=stream)
    for status in ("ok", "skipped", "failed"):
        print(f"  {status:<8} {report.counts[status]:>7}", file=stream)
    for line in _totals(report.records):
        print(f"  {line}", file=stream)
    if report.others:
        from proc_ml.batch.runner import describe_others

        print(f"  not read: {describe_others(report.others)} (types this task does not read)",
              file=stream)
    if report.gone:
        from proc_ml.fileio import one_line_name

        shown = ", ".join(map(one_line_name, report.gone[:3])) + \
            (", ..." if len(report.gone) > 3 else "")
        print(f"  gone: {len(report.gone)} assets of earlier runs are no longer in the asset "
              f"folder ({shown}); their records and outputs were removed", file=stream)
    print(f"manifest: {Path(out_dir) / 'manifest.jsonl'} (and manifest.csv)", file=stream)
    print_failures(report)


def print_failures(report) -> None:
    """The failed assets, one line each, on stderr."""
    if report.failures:
        print(f"{len(report.failures)} asset(s) failed:", file=sys.stderr)
        from proc_ml.fileio import one_line_name

        for asset, error in sorted(report.failures):
            print(f"  {one_line_name(asset)}: {error}", file=sys.stderr)


def _totals(records) -> list[str]:
    """Sums of the count tables in the ok records' summaries, e.g. faces per part."""
    sums: dict[str, dict[str, int]] = {}
    for record in records:
        if record["status"] == "failed":
            continue
        for key, value in (record.get("summary") or {}).items():
            if isinstance(value, dict):
                table = sums.setdefault(key, {})
                for name, count in value.items():
                    if isinstance(count, (int, float)):
                        table[name] = table.get(name, 0) + count
    return [f"{key.replace('_', ' ')}: " + ", ".join(f"{n} {c:g}" for n, c in table.items())
            for key, table in sums.items()]
