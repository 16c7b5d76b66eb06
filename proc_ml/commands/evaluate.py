"""``proc-ml evaluate RUN --data DIR``: score a trained run on a dataset split."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "evaluate", help="score a trained run on a dataset split",
        description="Per-part precision/recall/F1, face accuracy and the share of buildings "
                    "with every face right; written as JSON (RUN/eval.json) and printed.")
    parser.add_argument("run", help="run folder written by 'proc-ml train'")
    parser.add_argument("--data", required=True, help="dataset folder (from 'proc-ml generate')")
    parser.add_argument("--split", default="test", help="train, val, test or all (default test)")
    parser.add_argument("--checkpoint", default="best", help="best (default), last, or a .pt path")
    parser.add_argument("--out", help="JSON file to write (default RUN/eval.json)")
    parser.set_defaults(func=run)


def run(args) -> int:
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
