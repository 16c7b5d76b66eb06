"""Peak memory of ``proc-ml batch --task parts`` over a mixed, messy folder of ~200 files.

The folder: generated buildings as OBJ/PLY/GLB (at two grid sizes) plus the crafted messy
assets of the fuzz suite (tests/messy_assets.py: every mesh format trimesh reads here,
archives, broken, absurd and hostile files). Optionally ``--huge`` adds assets whose label
transfer back onto the source mesh is expensive (many small boxes: tens of thousands of
exterior faces), the case the real-building import's ``transfer_labels`` must still fix.

Each run is measured with ``/usr/bin/time -v`` (the maximum resident set size of the
driver and every worker, whichever is largest) and by sampling each worker's ``VmHWM``;
the script prints a table and exits 1 when a worker's peak passes the memory budget.

    python benchmarks/bench_batch_memory.py [--workers 1] [--huge] [--model parts.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "proc_ml", *[str(a) for a in args]]


def build_folder(root: Path, huge: bool) -> Path:
    from messy_assets import write_messy_assets

    assets = root / "assets"
    for name, count, size in (("small", 40, 12), ("large", 16, 32)):
        subprocess.run(cli("generate", "buildings", "--count", count, "--seed", 7, "--out",
                           root / name, "--formats", "meshes", "--set", f"grid.size=[{size},{size},{size}]",
                           "--quiet", "--workers", 2), env=ENV, check=True)
    write_messy_assets(assets, root / "small" / "meshes", good_copies=1)
    for mesh in (root / "large" / "meshes").glob("*"):
        (assets / "large").mkdir(exist_ok=True)
        (assets / "large" / mesh.name).write_bytes(mesh.read_bytes())
    if huge:
        for n in (16, 20, 24):
            city_block(assets / "huge" / f"block_{n}x{n}.ply", n)
    return assets


def city_block(path: Path, n: int) -> None:
    """``n x n`` separate 6 x 6 x 30 m boxes 3 m apart: 12 n^2 faces, tens of thousands of
    exterior voxel faces at 3 m cells."""
    import numpy as np
    import trimesh

    boxes = []
    for i in range(n):
        for j in range(n):
            box = trimesh.creation.box(extents=(6.0, 6.0, 30.0))
            box.apply_translation((i * 9.0 + 3, j * 9.0 + 3, 15.0))
            boxes.append(box)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(trimesh.util.concatenate(boxes).export(file_type="ply"))
    assert len(np.asarray(trimesh.load(path).faces)) == 12 * n * n


def train_model(root: Path) -> Path:
    data = root / "train_data"
    subprocess.run(cli("generate", "buildings", "--count", 48, "--seed", 1, "--out", data,
                       "--formats", "grids", "--quiet"), env=ENV, check=True)
    subprocess.run(cli("train", "building-parts", "--data", data, "--out", root / "run",
                       "--set", "training.epochs=1", "--set", "dataset.use_style=false", "--quiet"),
                   env=ENV, check=True)
    model = root / "parts_massing.onnx"
    subprocess.run(cli("export", "onnx", root / "run", "--out", model), env=ENV, check=True,
                   stdout=subprocess.DEVNULL)
    return model


def _hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            kids = [int(x) for x in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def measure(assets: Path, model: Path, out: Path, workers: int, budget: str | None) -> dict:
    args = ["batch", assets, "--model", model, "--out", out, "--workers", workers, "--quiet",
            "--timeout", 600]
    if budget:
        args += ["--memory-budget", budget]
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cli(*args)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for pid in _descendants(proc.pid):
                peaks[pid] = max(peaks.get(pid, 0), _hwm(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    maxrss = next((int(line.split(":")[-1]) * 1024 for line in stderr.splitlines()
                   if "Maximum resident set size" in line), 0)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    statuses = {}
    for record in records:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    oom = [r["asset"] for r in records if r["error"] and ("memory" in r["error"])]
    return {"files": len(records), "statuses": statuses, "seconds": round(seconds, 1),
            "time_v_max_rss": maxrss, "sampled_peak_per_process": sorted(peaks.values())[-workers - 2:],
            "memory_refusals": oom, "exit": proc.returncode}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--huge", action="store_true", help="add assets with costly label transfer")
    parser.add_argument("--model", help="massing-only parts model (default: train a small one)")
    parser.add_argument("--memory-budget", default=None, help="e.g. 4G (default: proc-ml's)")
    parser.add_argument("--keep", help="folder to build in (default: a temp folder)")
    args = parser.parse_args(argv)
    from proc_ml import budget

    limit = budget.parse_size(args.memory_budget) if args.memory_budget else budget.memory_budget()
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-batch-memory-"))
    root.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else train_model(root)
    assets = build_folder(root, args.huge)
    result = measure(assets, model, root / "out", args.workers, args.memory_budget)
    result["budget"] = limit
    print(json.dumps(result, indent=2))
    over = result["time_v_max_rss"] > limit
    print(f"peak RSS {result['time_v_max_rss'] / 2**30:.2f} GiB "
          f"({'OVER' if over else 'within'} the budget of {limit / 2**30:.1f} GiB per worker), "
          f"{result['files']} files, {result['seconds']} s")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
