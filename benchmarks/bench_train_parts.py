"""Time to a held-out face accuracy for the building-parts models, on CPU by default.

Trains each config on the same dataset, stopping at the first epoch whose validation
face accuracy reaches ``--target``, and prints (side by side, one run) the seconds to
target, their ratio to the goal, and the test-split figures of the model at that epoch.

    python benchmarks/bench_train_parts.py --threads 2            # generates 2000 buildings
    python benchmarks/bench_train_parts.py --data DIR --configs parts_unet3d parts_mlp

Wall time counts everything ``proc-ml train`` does (data loading, validation, checkpoints,
plots), so it is what a user waits for. "CPU s" is the CPU time this process used to get
there (all threads): on a machine shared with other jobs it stays meaningful where wall
time does not (uncontended wall time ~ CPU s / threads when the threads scale).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import proc_ml.trainers as trainers


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset folder (default: generate --count buildings into a temp folder)")
    p.add_argument("--count", type=int, default=2000, help="buildings to generate without --data (default 2000)")
    p.add_argument("--configs", nargs="+", default=["parts_unet3d"], help="configs to time (default parts_unet3d)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every config")
    p.add_argument("--target", type=float, default=0.99, help="validation face accuracy to reach (default 0.99)")
    p.add_argument("--goal", type=float, default=300.0, help="goal in seconds, for the ratio (default 300)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--device", default="cpu", help="training.device (default cpu)")
    p.add_argument("--out", help="keep the runs here (default: a temp folder)")
    return p.parse_args(argv)


class _StopAtTarget(trainers.Callback):
    def __init__(self, target: float):
        self.target = target
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.reached = None  # (epoch, wall seconds, CPU seconds of this process)

    def on_epoch_end(self, trainer, record):
        if self.reached is None and record["val_face_accuracy"] >= self.target:
            self.reached = (record["epoch"], time.perf_counter() - self.start,
                            time.process_time() - self.cpu_start)
            trainer.should_stop = True


def time_config(name, data, out, args) -> dict:
    overrides = [f"training.threads={args.threads}", f"training.device={args.device}",
                 "training.progress=false", *args.set]
    config = trainers.load_train_config("building-parts", trainers.resolve_config_path(name), overrides)
    stop = _StopAtTarget(args.target)
    summary = trainers.fit(config, data, out, callbacks=[stop])
    total = time.perf_counter() - stop.start
    test = trainers.evaluate_run(out, data, split="test", checkpoint="last")
    return {"config": name, "epochs": summary["epochs"], "reached": stop.reached, "total_s": total,
            "test_face_accuracy": test["face_accuracy"], "test_f1_door": test["per_class"]["door"]["f1"],
            "test_f1_window": test["per_class"]["window"]["f1"],
            "test_building_accuracy": test["building_accuracy"]}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.out or tempfile.mkdtemp(prefix="bench_train_parts_"))
    data = args.data
    if data is None:
        from proc_ml.exporters.dataset import generate_dataset
        from proc_ml.procedural.config import load_generator_config
        data = work / "data"
        generate_dataset(load_generator_config(), args.count, 1, data, formats=("grids",), progress=False)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, python {sys.version.split()[0]}; data {data}")
    rows = [time_config(name, data, work / name, args) for name in args.configs]
    print(f"\n{'config':<24}{'epochs':>7}{'s to ' + str(args.target):>12}{'/goal':>8}{'CPU s':>8}"
          f"{'test acc':>10}{'door F1':>9}{'window F1':>10}{'bldg ok':>9}")
    for r in rows:
        seconds = f"{r['reached'][1]:.0f}" if r["reached"] else f">{r['total_s']:.0f}"
        ratio = f"{r['reached'][1] / args.goal:.2f}" if r["reached"] else "-"
        cpu = f"{r['reached'][2]:.0f}" if r["reached"] else "-"
        print(f"{r['config']:<24}{r['epochs']:>7}{seconds:>12}{ratio:>8}{cpu:>8}{r['test_face_accuracy']:>10.4f}"
              f"{r['test_f1_door']:>9.4f}{r['test_f1_window']:>10.4f}{r['test_building_accuracy']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
