"""``proc-ml evaluate``: score a trained run on a dataset split, or exported models on real
buildings (``--real``) beside the baselines of ``proc_ml.real_buildings``."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "evaluate", help="score a run on a dataset split, or models on real buildings",
        description="Per-part precision/recall/F1, face accuracy and the share of buildings "
                    "with every face right (pix2pix runs: L1, PSNR and SSIM of the model and "
                    "of the mean-colour baseline, any dataset layout); written as JSON "
                    "(RUN/eval.json) and printed. With --real: exported parts models on real "
                    "buildings imported with 'proc-ml import citygml', with and without the "
                    "street sides, beside two baselines (geometry only; a window on every "
                    "upper-floor side), on all faces and on the street facades; writes "
                    "real.json, real.md and a PNG per building.")
    parser.add_argument("run", nargs="?", help="run folder written by 'proc-ml train'")
    parser.add_argument("--data", help="dataset folder (from 'proc-ml generate')")
    parser.add_argument("--split", default="test", help="train, val, test or all (default test)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a .pt path")
    parser.add_argument("--real", metavar="DIR",
                        help="labelled real-building dataset from 'proc-ml import citygml'")
    parser.add_argument("--model", action="append", default=[], metavar="MODEL.onnx",
                        help="--real: an exported parts model, or 'default' for the one installed "
                             "with proc-ml (repeatable; none: baselines only)")
    parser.add_argument("--device", default="auto", help="--real: onnxruntime device (default auto)")
    parser.add_argument("--out", help="JSON file to write (default RUN/eval.json); with --real, "
                                      "the output folder (default DIR/evaluation)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.errors import ConfigError

    if args.real:
        if args.run or args.data:
            raise ConfigError("--real scores exported models (--model M.onnx); give no RUN or --data")
        return run_real(args)
    if not args.run or not args.data:
        raise ConfigError("give a RUN folder and --data DIR (or --real DIR with --model M.onnx)")
    import json
    from pathlib import Path

    from proc_ml.fileio import write_text
    from proc_ml.trainers import evaluate_run, format_table

    from proc_ml.fileio import check_output_file
    from proc_ml.validation import json_safe

    out = Path(args.out) if args.out else Path(args.run) / "eval.json"
    if args.out:
        check_output_file(out)
    result = evaluate_run(args.run, args.data, split=args.split, checkpoint=args.checkpoint)
    write_text(out, json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    print(format_table(result))
    print(f"wrote {out}")
    return 0


def run_real(args) -> int:
    import json
    from pathlib import Path

    from proc_ml import real_buildings
    from proc_ml.fileio import write_text
    from proc_ml.runtime import PartsPredictor, default_model

    real = real_buildings.load_real(args.real)
    paths = [default_model("building-parts") if m == "default" else Path(m) for m in args.model]
    models = {("installed" if m == "default" else p.stem): PartsPredictor.open(p, device=args.device)
              for m, p in zip(args.model, paths)}
    out = Path(args.out) if args.out else Path(args.real) / "evaluation"
    result = real_buildings.evaluate(real, models, pictures=out / "pictures")
    write_text(out / "real.json", json.dumps(result, indent=2) + "\n")
    write_text(out / "real.md", real_buildings.markdown(result))
    print(real_buildings.markdown(result), end="")
    print(f"wrote {out / 'real.json'}, {out / 'real.md'} and {len(result['pictures'])} pictures")
    return 0
