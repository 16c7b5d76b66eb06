"""``proc-ml finetune --data D --out RUN --export M.onnx``: the artist's loop in one command
(docs/few-shot.md): fine-tune a trained building-parts model on a few labelled buildings
(``train building-parts --init``), then export the result to ONNX (``export onnx``), with
the time of each step. One process, one ``start`` and one ``done`` event with ``--json``,
so a PDG work item runs it as one step (``proc_ml.pdg.run_cli``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .reporting import Reporter, add_json_flag

DEFAULT_CONFIG = "parts_finetune"


def register(sub) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a building-parts model on a few buildings and export it",
        description="Fine-tune a trained building-parts model (default: the installed one) on "
                    "a small dataset, e.g. written by the Houdini export SOP or the Blender "
                    "operator with the artist's corrections, then export it to ONNX; prints "
                    "the time of each step (docs/few-shot.md).")
    p.add_argument("--data", required=True, help="dataset folder (a few labelled buildings)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--export", required=True, metavar="MODEL.onnx",
                   help="the fine-tuned .onnx file to write")
    p.add_argument("--init", default="default",
                   help="the model to start from: a run folder, a .pt, an .onnx, or 'default' "
                        "(the installed model; default)")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"training YAML or shipped config name (default {DEFAULT_CONFIG})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set training.epochs=20 (repeatable)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--portable", action="store_true",
                   help="export for onnxruntime 1.14+ (as 'export onnx --portable')")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (and, with --json, no per-epoch events)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.errors import ConfigError, ModelError
    from proc_ml.exporters.onnx_export import PORTABLE_ORT, export_run
    from proc_ml.fileio import check_output_file, check_output_folder
    from proc_ml.trainers import Callback, fit, load_train_config, resolve_config_path
    from proc_ml.trainers.config import check_device_option
    from proc_ml.trainers.finetune import INIT_FILE, check_init_overrides, override_key
    from proc_ml.trainers.runs import CHECKPOINT_DIR

    if not str(args.export).endswith(".onnx"):
        raise ModelError(f"{args.export}: --export must name a .onnx file")
    if not str(args.init).strip():
        raise ConfigError("--init: empty; pass a run folder, a .pt, an .onnx or 'default'")
    check_device_option(args.device)
    if any(override_key(item) == "training.init" for item in args.set):
        raise ConfigError("--set training.init: name the model to start from with --init")
    check_init_overrides(args.set, str(args.init))
    check_output_folder(args.out)
    check_output_file(args.export, "--export", create=False)   # made by the export, at the end
    if (Path(args.out) / CHECKPOINT_DIR / "last.pt").exists():
        raise ConfigError(f"{args.out}: already holds a training run; choose another --out "
                          f"(to export that run: proc-ml export onnx {args.out} --out MODEL.onnx)")
    overrides = list(args.set) + [f"training.init={json.dumps(str(args.init))}"]
    if args.device:
        overrides.append(f"training.device={args.device}")
    config = load_train_config("building-parts", resolve_config_path(args.config), overrides)
    epochs = int(config["training"]["epochs"])
    with Reporter(args.json) as report:
        report.start("finetune", data=args.data, out=args.out, export=args.export, init=args.init)

        class Progress(Callback):
            def on_epoch_end(self, trainer, record: dict) -> None:
                report.progress("epoch", record["epoch"], epochs,
                                **{k: v for k, v in record.items() if k != "epoch"})

        start = time.perf_counter()
        summary = fit(config, args.data, args.out, callbacks=[] if args.quiet else [Progress()],
                      progress=False if (args.quiet or args.json) else None)
        trained = time.perf_counter()
        result = export_run(args.out, args.export, data_dir=args.data, log=lambda line: None,
                            target_ort=PORTABLE_ORT if args.portable else None,
                            progress=report.progress)
        done = time.perf_counter()
        best = summary["best"] or {}
        record = json.loads((Path(args.out) / INIT_FILE).read_text())
        timings = {"train_s": round(trained - start, 1), "export_s": round(done - trained, 1),
                   "total_s": round(done - start, 1)}
        report.say(f"fine-tuned {record['path']} for {summary['epochs']} epochs on {args.data}"
                   f" (best val {best.get('metric', '-')} {best.get('value', float('nan')):.4f}"
                   f"), exported {result['out']} (max |onnxruntime - torch| "
                   f"{result['max_abs_diff']:.1e}); train {timings['train_s']}s, export "
                   f"{timings['export_s']}s, total {timings['total_s']}s")
        report.done([args.out, result["out"]], epochs=summary["epochs"],
                    best_metric=best.get("metric"), best_value=best.get("value"),
                    mapping=record["mapping"], max_abs_diff=result["max_abs_diff"], **timings)
    return 0
