"""``proc-ml train TASK``: train a model into a run folder (also under torchrun for DDP).
The tasks are the ones in ``proc_ml.registry``."""

from __future__ import annotations

from pathlib import Path

from proc_ml.registry import TASKS

from .reporting import Reporter, add_json_flag


def register(sub) -> None:
    parser = sub.add_parser(
        "train", help="train a model on a generated dataset",
        description="Train a model into a run folder (config.yaml, checkpoints/, metrics.jsonl, "
                    "plots/). Runs unchanged under 'torchrun --nproc_per_node=N -m proc_ml train ...'.")
    parser.add_argument("task", choices=list(TASKS), metavar="TASK",
                        help="what to learn: " + "; ".join(f"{name} ({entry.help})"
                                                           for name, entry in TASKS.items()))
    parser.add_argument("--data", required=True, help="dataset folder (from 'proc-ml generate'; pix2pix: 'proc-ml "
                                                    "generate facades' or a paired image folder)")
    parser.add_argument("--out", required=True, help="run folder to write")
    parser.add_argument("--config", help="training YAML, or the name of a shipped config "
                                         "(building-parts: parts_unet3d_street [default], parts_unet3d, "
                                         "parts_unet3d_massing, parts_mlp; parts_finetune with --init)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.epochs=5 (repeatable)")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (default: the config's training.device, "
                             "auto = CUDA when available)")
    parser.add_argument("--init", default=None, metavar="MODEL",
                        help="building-parts: fine-tune from MODEL (a run folder, a .pt "
                             "checkpoint, an .onnx model, or 'default' for the installed model); "
                             "its size and inputs are used, parts are mapped by name "
                             "(docs/few-shot.md); sets training.init")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (a finished run "
                             "is reported and left as it is)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.trainers import Callback, fit, load_train_config, resolve_config_path, resume_config
    from proc_ml.trainers.config import check_device_option, default_config_path
    from proc_ml.trainers.finetune import check_init_overrides, override_key
    from proc_ml.trainers.runs import trained_epochs

    check_device_option(args.device)
    overrides = list(args.set) + ([f"training.device={args.device}"] if args.device else [])
    init_set = any(override_key(item) == "training.init" for item in args.set)
    if init_set and args.resume:
        raise ConfigError("--set training.init cannot be combined with --resume (the run "
                          "already started from its own init)")
    if args.init is not None:
        if init_set:
            raise ConfigError("--init and --set training.init both name the model to start "
                              "from; give one")
        if args.resume:
            raise ConfigError("--init cannot be combined with --resume (the run already "
                              "started from its own init)")
        if args.task != "building-parts":
            raise ConfigError(f"--init: fine-tuning is for building-parts, not {args.task}")
        if not args.init.strip():
            raise ConfigError("--init: empty; pass a run folder, a .pt, an .onnx or 'default'")
        overrides.append(f"training.init={_quoted(args.init)}")
    if args.resume:
        if args.config:
            raise ConfigError("--config cannot be combined with --resume "
                              "(the run's own config.yaml is used; change keys with --set)")
        config = resume_config(args.out, overrides)
    else:
        path = resolve_config_path(args.config) if args.config else default_config_path(args.task)
        config = load_train_config(args.task, path, overrides)
        if config["training"].get("init"):
            check_init_overrides(args.set, str(config["training"]["init"]))
    if config["task"] != args.task:
        raise ConfigError(f"{args.out}: the run trains '{config['task']}', not '{args.task}'")
    epochs = int(config["training"]["epochs"])
    with Reporter(args.json, muted=not _is_main()) as report:
        report.start("train", task=args.task, data=args.data, out=args.out, epochs=epochs,
                     family=config["model"]["family"], resume=args.resume)
        state = trained_epochs(args.out) if args.resume else None
        if state is not None and state[0] >= epochs:
            best = state[1]
            report.say(f"{args.out}: training already finished ({state[0]} of {epochs} epochs"
                       f"{_best_text(best)}); nothing to resume")
            report.done(_run_outputs(args.out), epochs=state[0], best=_best_fields(best),
                        already_finished=True)
            return 0

        class Progress(Callback):
            def on_epoch_end(self, trainer, record: dict) -> None:
                report.progress("epoch", record["epoch"], epochs,   # muted on ranks > 0
                                **{k: v for k, v in record.items() if k != "epoch"})

        summary = fit(config, args.data, args.out, resume=args.resume, callbacks=[Progress()],
                      progress=False if (args.quiet or args.json) else None)
        best = summary["best"]
        if best is not None:
            report.say(f"trained {config['model']['family']} for {summary['epochs']} epochs "
                       f"into {args.out}: best val {best['metric']} {best['value']:.4f} "
                       f"(epoch {best['epoch']})")
        report.done(_run_outputs(args.out), epochs=summary["epochs"], best=_best_fields(best),
                    already_finished=False)
    return 0


def _quoted(text: str) -> str:
    """A --set value that stays a string whatever it looks like (a path, 'default')."""
    import json

    return json.dumps(str(text))


def _best_text(best: dict | None) -> str:
    if not best:
        return ""
    return f", best val {best['metric']} {best['value']:.4f} at epoch {best['epoch']}"


def _best_fields(best: dict | None) -> dict | None:
    if not best:
        return None
    return {"metric": best["metric"], "value": best["value"], "epoch": best["epoch"]}


def _run_outputs(out) -> list[Path]:
    """The run folder and the files in it that export, evaluate and resume read."""
    from proc_ml.trainers.runs import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE

    out = Path(out)
    paths = [out, out / CONFIG_FILE, out / CHECKPOINT_DIR / "best.pt",
             out / CHECKPOINT_DIR / "last.pt", out / METRICS_FILE, out / "plots"]
    return [p for p in paths if p.exists()]


def _is_main() -> bool:
    import os
    return int(os.environ.get("RANK", "0")) == 0
