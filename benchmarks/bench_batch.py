"""Throughput of ``proc-ml batch``: assets/s with 1 and 2 local workers and 2 Ray actors.

All three runs process the same folder of generated meshes (``proc-ml generate buildings
--formats meshes``) with the same massing-only parts model, into fresh output folders, so
the ratios are measured side by side in one run. Times are wall-clock for the whole
command, start-up included (worker spawn + model load, or Ray start), and also without the
first asset of each worker (steady state).

    python benchmarks/bench_batch.py                     # trains a tiny model first (~1 min)
    python benchmarks/bench_batch.py --model m.onnx --buildings 60
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tiny_model(work: Path) -> Path:
    """A massing-only 3D U-Net trained for 2 epochs on 16 small buildings, exported to ONNX."""
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.cli import main

    data = work / "model_data"
    assert main(["generate", "buildings", "--count", "16", "--seed", "3", "--out", str(data),
                 "--set", "grid.size=[12,12,12]", "--workers", "1", "--quiet"]) == 0
    assert main(["train", "building-parts", "--data", str(data), "--out", str(work / "run"),
                 "--config", "tiny_parts_unet3d", "--set", "dataset.use_style=false", "--quiet"]) == 0
    model = work / "model.onnx"
    export_run(work / "run", model, data_dir=data, log=lambda line: None)
    return model


def generate_assets(work: Path, buildings: int) -> Path:
    out = work / "assets"
    subprocess.run([sys.executable, "-m", "proc_ml", "generate", "buildings", "--count",
                    str(buildings), "--seed", "42", "--out", str(out), "--formats", "meshes",
                    "--set", "grid.size=[16,16,16]", "--quiet"], check=True)
    return out / "meshes"


def timed_batch(assets: Path, out: Path, model: Path, executor: str, workers: int) -> dict:
    from proc_ml.batch import BatchSettings, read_records, run_batch

    settings = BatchSettings(str(assets), str(out), model=str(model), workers=workers,
                             executor=executor, progress=False, force=True)
    start = time.perf_counter()
    report = run_batch(settings)
    wall = time.perf_counter() - start
    records, _ = read_records(out / "manifest.jsonl")
    ok = [r for r in records.values() if r["status"] == "ok"]
    assert len(ok) == len(records), f"{len(records) - len(ok)} assets failed"
    # Steady state: leave out each worker's first item (start-up, model load, lazy imports).
    busy = sorted((r["seconds"] for r in ok), reverse=True)[workers:]
    return {"executor": executor, "workers": workers, "assets": len(ok), "wall_s": wall,
            "rate": len(ok) / wall, "steady_rate": workers * len(busy) / max(sum(busy), 1e-9),
            "describe": report.executor}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="massing-only parts ONNX model (default: train a tiny one)")
    parser.add_argument("--buildings", type=int, default=40,
                        help="buildings to generate (3 meshes each: OBJ, PLY, GLB; default 40)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else tiny_model(work)
        assets = generate_assets(work, args.buildings)
        runs = [timed_batch(assets, work / "out_local1", model, "local", 1),
                timed_batch(assets, work / "out_local2", model, "local", 2)]
        if not args.no_ray:
            runs.append(timed_batch(assets, work / "out_ray2", model, "ray", 2))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"{'executor':<8} {'workers':>7} {'assets':>6} {'wall s':>7} {'assets/s':>8} "
          f"{'steady/s':>8} {'efficiency':>10}")
    base = runs[0]
    for run in runs:
        efficiency = run["rate"] / (base["rate"] * run["workers"])
        print(f"{run['executor']:<8} {run['workers']:>7} {run['assets']:>6} {run['wall_s']:>7.1f} "
              f"{run['rate']:>8.2f} {run['steady_rate']:>8.2f} {efficiency:>10.0%}")
    print("efficiency = assets/s / (workers x assets/s of 1 local worker), wall-clock incl. start-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
