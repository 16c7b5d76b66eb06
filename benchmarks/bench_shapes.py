"""Shape nets: training throughput through the shared loop, and onnxruntime vs PyTorch
inference, for pointnet-cls, pointnet-seg (PointNet and DGCNN) and voxnet, side by side in
one run.

    python benchmarks/bench_shapes.py [--count 120] [--epochs 1] [--repeats 20]

Generates a small building dataset (grids + points) in a temporary folder, trains each
family for ``--epochs`` with its shipped config (the throughput is training samples per
second over the timed steps, the first step excluded as warm-up), exports it to ONNX
(parity-checked) and times one forward pass at batch 1 and batch 32 in PyTorch (eval,
no_grad) and in onnxruntime (``proc_ml.runtime``), the same inputs for both.

``--acceptance DATA`` instead trains the shipped configs at full size on DATA (a
``proc-ml generate`` dataset) into ``--out`` and prints held-out metrics (test split);
``--only NAME ...`` limits either mode to some of them (names as in ``RUNS``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

#: Benchmarked runs: name -> (task, shipped config). dgcnn-seg is the recommended
#: segmentation config; pointnet-seg (plain PointNet) is kept as the baseline.
RUNS = {"pointnet-cls": ("pointnet-cls", "pointnet_cls"),
        "pointnet-seg": ("pointnet-seg", "pointnet_seg"),
        "dgcnn-seg": ("pointnet-seg", "dgcnn_seg"),
        "voxnet": ("voxnet", "voxnet")}


def _dataset(root: Path, count: int) -> Path:
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.procedural import load_generator_config

    cfg = load_generator_config(None, ["points.per_building=1024"])
    generate_dataset(cfg, count, 11, root, ("grids", "points"), workers=1, progress=False)
    return root


class _StepTimer:
    """Loop callback: wall time of every training step after the first."""

    def __init__(self):
        self.marks: list[float] = []

    def on_step_end(self, trainer, epoch, step):
        self.marks.append(time.perf_counter())

    def on_epoch_end(self, trainer, record):
        pass


THREADS = 0   # --threads: training.threads of every run (0: torch's default)


def _train(name: str, data: Path, out: Path, epochs: int):
    from proc_ml.trainers import fit, load_train_config
    from proc_ml.trainers.config import resolve_config_path

    task, config_name = RUNS[name]
    config = load_train_config(task, resolve_config_path(config_name),
                               [f"training.epochs={epochs}", "training.progress=false",
                                f"training.threads={THREADS}"])
    timer = _StepTimer()
    fit(config, data, out, callbacks=[timer], progress=False)
    steps = len(timer.marks) - 1
    seconds = timer.marks[-1] - timer.marks[0]
    return config, steps * config["training"]["batch_size"] / seconds


def _time(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000.0


def _inference(run: Path, model_path: Path, repeats: int) -> dict:
    import torch

    from proc_ml.runtime import load_model
    from proc_ml.trainers import load_run

    model, loaded = load_run(run)
    one = loaded.task.parity_inputs(loaded, loaded.info.data_dir)[1][1]
    session = load_model(model_path, device="cpu")
    out = {}
    for batch in (1, 32):
        x = np.ascontiguousarray(np.repeat(one, batch, axis=0))
        tx = torch.from_numpy(x)
        with torch.no_grad():
            torch_ms = _time(lambda: model(tx), repeats)
        ort_ms = _time(lambda: session.run(x), repeats)
        out[batch] = (torch_ms, ort_ms)
    return out


def benchmark(count: int, epochs: int, repeats: int, names) -> None:
    import torch

    from proc_ml.exporters.onnx_export import export_run

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; dataset of {count} "
          f"buildings; {epochs} epoch(s) per family")
    with tempfile.TemporaryDirectory() as tmp:
        data = _dataset(Path(tmp) / "data", count)
        rows = []
        for task in names:
            run = Path(tmp) / task
            _, throughput = _train(task, data, run, epochs)
            report = export_run(run, run / "model.onnx", log=lambda line: None)
            timings = _inference(run, run / "model.onnx", repeats)
            rows.append((task, throughput, report["max_abs_diff"], timings))
    print(f"\n{'family':<14}{'train samples/s':>16}{'parity':>10}"
          f"{'torch b1 ms':>13}{'ort b1 ms':>11}{'ratio':>7}{'torch b32 ms':>14}{'ort b32 ms':>12}{'ratio':>7}")
    for task, throughput, parity, t in rows:
        (tb1, ob1), (tb32, ob32) = t[1], t[32]
        print(f"{task:<14}{throughput:>16.1f}{parity:>10.1e}{tb1:>13.2f}{ob1:>11.2f}{tb1 / ob1:>7.2f}"
              f"{tb32:>14.2f}{ob32:>12.2f}{tb32 / ob32:>7.2f}")
    print("ratio = PyTorch time / onnxruntime time (> 1: onnxruntime is faster)")


def acceptance(data: Path, out: Path, names) -> None:
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.trainers import evaluate_run

    path = out / "acceptance.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for task in names:
        run = out / task
        start = time.perf_counter()
        if not (run / "checkpoints" / "best.pt").is_file():
            _train(task, data, run, epochs=_config_epochs(task))
        result = evaluate_run(run, data, split="test")
        report = export_run(run, run / "model.onnx", data_dir=data, log=lambda line: None)
        results[task] = {"test_accuracy": result["accuracy"], "test_miou": result["miou"],
                         "mean_class_accuracy": result["mean_class_accuracy"],
                         "per_class_iou": {k: v["iou"] for k, v in result["per_class"].items()},
                         "confusion": result["confusion"], "classes": result["classes"],
                         "onnx_max_abs_diff": report["max_abs_diff"], "parity": report["parity"],
                         "minutes": round((time.perf_counter() - start) / 60, 1)}
        print(json.dumps({task: results[task]}, indent=1))
        path.write_text(json.dumps(results, indent=2) + "\n")


def _config_epochs(name: str) -> int:
    from proc_ml.trainers import load_train_config
    from proc_ml.trainers.config import resolve_config_path

    task, config_name = RUNS[name]
    return int(load_train_config(task, resolve_config_path(config_name))["training"]["epochs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--acceptance", type=Path, default=None,
                        help="train the shipped configs on this dataset and report test metrics")
    parser.add_argument("--out", type=Path, default=Path("shape_runs"))
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS),
                        help="benchmark only these runs")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads of the training runs (0: torch's default)")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.acceptance:
        acceptance(args.acceptance, args.out, args.only)
    else:
        benchmark(args.count, args.epochs, args.repeats, args.only)


if __name__ == "__main__":
    main()
