"""``proc-ml export onnx RUN --out model.onnx``: export a trained run to ONNX."""

from __future__ import annotations

import time

from ..symmetry import SYMMETRIES
from .reporting import Reporter, add_json_flag

EXPORTERS = ("dynamo", "legacy")


def register(sub) -> None:
    parser = sub.add_parser("export", help="export a trained run (ONNX)",
                            description="Export a trained run for inference.")
    kinds = parser.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    p = kinds.add_parser(
        "onnx", help="ONNX model with embedded proc-ml metadata",
        description="Export a run folder to ONNX with dynamic batch/grid/cell axes and the "
                    "proc-ml metadata (parts, inputs, stride, metrics; see docs/onnx.md). "
                    "The export is compared with PyTorch on dataset samples and on an unseen "
                    "size and is refused above the tolerance. For studios on an older "
                    "onnxruntime: --portable (or --target-ort X.Y).")
    p.add_argument("run", help="run folder written by 'proc-ml train'")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default 18, or the newest --target-ort runs if older)")
    p.add_argument("--target-ort", metavar="X.Y", default=None,
                   help="the oldest onnxruntime that must load the file, e.g. 1.16: caps the "
                        "opset and writes the lowest IR version the graph allows "
                        "(default: the exporter's own IR version: 10 for dynamo = onnxruntime "
                        "1.18+, 8 for legacy; docs/onnx.md)")
    p.add_argument("--portable", action="store_true",
                   help="same as --target-ort 1.16 (opset 18, IR 8: loads in onnxruntime "
                        "1.14 and later)")
    p.add_argument("--ir-version", type=int, default=None,
                   help="ONNX IR version to write (default: see --target-ort)")
    p.add_argument("--checkpoint", default="best",
                   help="'best' (default), 'last', or a path to a .pt checkpoint")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo",
                   help="torch.export-based 'dynamo' (default) or TorchScript-based 'legacy'")
    p.add_argument("--data", help="dataset folder for the parity check (default: the run's "
                                  "dataset if recorded, else freshly generated buildings)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest allowed |onnxruntime - torch| on the logits (default 1e-4)")
    p.add_argument("--inference-mode", choices=("eval", "train"), default="eval",
                   help="pix2pix (image) models: eval (default: dropout off, BatchNorm running "
                        "statistics; deterministic) or train (as the reference's default test: "
                        "BatchNorm on the batch's own statistics, dropout on; see docs/pix2pix.md)")
    p.add_argument("--symmetry", choices=SYMMETRIES,
                   help="building parts: the turns of a building (quarter turns about z, and "
                        "mirror images with dihedral) that its rules do not change; prediction "
                        "averages the model's probabilities over them (default: the run's "
                        "dataset.symmetry; docs/onnx.md)")
    p.add_argument("--verbose", action="store_true", help="show the exporter's own output")
    p.add_argument("--fit-decision", action="store_true",
                   help="building parts: fit the per-part decision weights on the validation "
                        "split of --data even when the run's config does not ask for it "
                        "(training.fit_decision)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.errors import ModelError

    import math

    from proc_ml.fileio import check_output_file, remove_stale_temps_of

    if not str(args.out).endswith(".onnx"):
        raise ModelError(f"{args.out}: --out must name a .onnx file")
    if not (args.tolerance > 0 and math.isfinite(args.tolerance)):
        raise ModelError(f"--tolerance must be a number > 0, got {args.tolerance}")
    check_output_file(args.out)
    remove_stale_temps_of(args.out)       # what a killed export of this file left beside it
    target = args.target_ort
    if args.portable:
        from proc_ml.exporters.onnx_export import PORTABLE_ORT

        if target is not None and target != PORTABLE_ORT:
            raise ModelError(f"--portable means --target-ort {PORTABLE_ORT}; give one of them")
        target = PORTABLE_ORT
    with Reporter(args.json) as report:
        from proc_ml.exporters.onnx_export import export_run

        start = time.perf_counter()
        versions = (f"opset {args.opset}" if args.opset else "default opset") + \
            (f", for onnxruntime {target}+" if target else "")
        report.say(f"exporting {args.run} ({args.checkpoint}) with the {args.exporter} exporter, "
                   f"{versions}")
        report.start("export", run=args.run, out=args.out, exporter=args.exporter,
                     checkpoint=args.checkpoint, target_ort=target)
        result = export_run(args.run, args.out, opset=args.opset, checkpoint=args.checkpoint,
                            exporter=args.exporter, data_dir=args.data, tolerance=args.tolerance,
                            verbose=args.verbose, log=report.say, target_ort=target,
                            ir_version=args.ir_version, progress=report.progress,
                            fit_decision=True if args.fit_decision else None,
                            inference_mode=args.inference_mode, symmetry=args.symmetry)
        seconds = time.perf_counter() - start
        report.say(f"wrote {result['out']} ({result['family']}, input {result['input_shape']}, "
                   f"opset {result['opset']}, IR {result['ir_version']}, "
                   f"{result['bytes'] / 1024:.0f} KiB) in {seconds:.1f}s; "
                   f"max abs difference vs PyTorch {result['max_abs_diff']:.2e}")
        report.done([result["out"]], family=result["family"], opset=result["opset"],
                    ir_version=result["ir_version"], target_ort=target,
                    input_shape=result["input_shape"], max_abs_diff=result["max_abs_diff"],
                    parity=result["parity"], bytes=result["bytes"], seconds=round(seconds, 2))
    return 0
