"""``proc-ml train TASK``: train a model into a run folder (also under torchrun for DDP).
The tasks are the ones in ``proc_ml.registry``."""

from __future__ import annotations

from proc_ml.registry import TASKS


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
                                         "(parts_unet3d [default], parts_unet3d_massing, parts_mlp)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set training.epochs=5 (repeatable)")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (default: the config's training.device, "
                             "auto = CUDA when available)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.trainers import fit, load_train_config, resolve_config_path, resume_config
    from proc_ml.trainers.config import default_config_path

    overrides = list(args.set) + ([f"training.device={args.device}"] if args.device else [])
    if args.resume:
        if args.config:
            raise ConfigError("--config cannot be combined with --resume "
                              "(the run's own config.yaml is used; change keys with --set)")
        config = resume_config(args.out, overrides)
    else:
        path = resolve_config_path(args.config) if args.config else default_config_path(args.task)
        config = load_train_config(args.task, path, overrides)
    if config["task"] != args.task:
        raise ConfigError(f"{args.out}: the run trains '{config['task']}', not '{args.task}'")
    summary = fit(config, args.data, args.out, resume=args.resume,
                  progress=False if args.quiet else None)
    best = summary["best"]
    if best is not None and _is_main():
        print(f"trained {config['model']['family']} for {summary['epochs']} epochs into {args.out}: "
              f"best val {best['metric']} {best['value']:.4f} (epoch {best['epoch']})")
    return 0


def _is_main() -> bool:
    import os
    return int(os.environ.get("RANK", "0")) == 0
