"""``proc-ml export onnx RUN --out model.onnx``: export a trained run to ONNX."""

from __future__ import annotations

import time

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
                    "size and is refused above the tolerance.")
    p.add_argument("run", help="run folder written by 'proc-ml train'")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--checkpoint", default="best",
                   help="'best' (default), 'last', or a path to a .pt checkpoint")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo",
                   help="torch.export-based 'dynamo' (default) or TorchScript-based 'legacy'")
    p.add_argument("--data", help="dataset folder for the parity check (default: the run's "
                                  "dataset if recorded, else freshly generated buildings)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest allowed |onnxruntime - torch| on the logits (default 1e-4)")
    p.add_argument("--verbose", action="store_true", help="show the exporter's own output")
    p.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.errors import ModelError

    import math

    from proc_ml.fileio import check_output_file, remove_stale_temps_of

    if not str(args.out).endswith(".onnx"):
        raise ModelError(f"{args.out}: --out must name a .onnx file")
    if not 7 <= args.opset <= 30:
        raise ModelError(f"--opset must be between 7 and 30, got {args.opset}")
    if not (args.tolerance > 0 and math.isfinite(args.tolerance)):
        raise ModelError(f"--tolerance must be a number > 0, got {args.tolerance}")
    check_output_file(args.out)
    remove_stale_temps_of(args.out)       # what a killed export of this file left beside it
    start = time.perf_counter()
    print(f"exporting {args.run} ({args.checkpoint}) with the {args.exporter} exporter, "
          f"opset {args.opset}", flush=True)
    report = export_run(args.run, args.out, opset=args.opset, checkpoint=args.checkpoint,
                        exporter=args.exporter, data_dir=args.data, tolerance=args.tolerance,
                        verbose=args.verbose)
    print(f"wrote {report['out']} ({report['family']}, input {report['input_shape']}, "
          f"{report['bytes'] / 1024:.0f} KiB) in {time.perf_counter() - start:.1f}s; "
          f"max abs difference vs PyTorch {report['max_abs_diff']:.2e}")
    return 0
