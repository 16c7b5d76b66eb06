"""Inference latency and throughput: onnxruntime (proc_ml.runtime) vs PyTorch eager, CPU.

For each building-parts family, exports the model (the shipped config's architecture, or
trained runs given with --runs), then times both engines on the same encoded buildings in
one run: latency p50/p95 at batch 1 (one building) and throughput at a large batch (many
buildings: a [B, C, X, Y, Z] batch for the U-Net, all their cells in one call for the MLP).
Prints the onnxruntime/torch ratios; the target is >= 1.3x at batch 1 for both families.

    python benchmarks/bench_inference.py --threads 1
    python benchmarks/bench_inference.py --runs RUN_UNET RUN_MLP --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILIES = ("parts-unet3d", "parts-mlp")
SHIPPED_CONFIGS = {"parts-unet3d": "parts_unet3d", "parts-mlp": "parts_mlp"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", help="trained run folders (default: untrained models "
                                             "with the shipped configs' architecture)")
    p.add_argument("--threads", type=int, default=1, help="threads for both engines (default 1)")
    p.add_argument("--grid", type=int, nargs=3, default=[16, 16, 16], help="building grid size")
    p.add_argument("--batch", type=int, default=32, help="buildings in the large batch (default 32)")
    p.add_argument("--repeats", type=int, default=60, help="timed calls at batch 1 (default 60)")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo")
    p.add_argument("--opset", type=int, default=18)
    return p.parse_args(argv)


def shipped_model(family: str):
    """(model, run) with the shipped config's architecture and random weights, eval mode."""
    import torch

    from proc_ml.runinfo import PartsInfo
    from proc_ml.trainers import Run
    from proc_ml.encoding import adjacency_feature_names, grid_channel_names
    from proc_ml.trainers.models import build_model, get_family
    from proc_ml.procedural.parts import DEFAULT_PARTS
    from proc_ml.trainers import load_train_config, resolve_config_path

    config = load_train_config("building-parts", resolve_config_path(SHIPPED_CONFIGS[family]))
    hyper = {k: config["model"][k] for k in get_family(family).defaults if k in config["model"]}
    grid = family == "parts-unet3d"
    names = list(grid_channel_names(True) if grid else adjacency_feature_names(True))
    sizes = {"in_channels" if grid else "in_features": len(names), "n_parts": len(DEFAULT_PARTS)}
    torch.manual_seed(0)
    model = build_model(family, **sizes, **hyper).eval()
    info = PartsInfo(task="building-parts", family=family, input_kind="grid" if grid else "cells",
                     input_names=names, parts=list(DEFAULT_PARTS), with_style=True,
                     stride=getattr(model, "stride", 1), cell_size=3.0, grid_size=[16, 16, 16])
    return model, Run(path=Path("shipped"), info=info, config=config, epoch=0,
                      checkpoint=Path("none"), model_kwargs={})


def buildings(grid, count: int):
    from proc_ml.procedural import generate_building
    from proc_ml.procedural.config import default_config

    cfg = default_config()
    cfg["grid"]["size"] = list(grid)
    return [generate_building(cfg, 7, i) for i in range(count)]


def encode(info, blds):
    from proc_ml.encoding import adjacency_features, grid_channels, pad_to_stride

    if info.input_kind == "grid":
        one = [pad_to_stride(grid_channels(b.occupancy, b.style.vector()), info.stride)[None]
               for b in blds]
        return one, np.concatenate(one)
    one = [adjacency_features(b.occupancy, b.style.vector())[1] for b in blds]
    return one, np.concatenate(one)


def time_pair(fn_a, fn_b, inputs, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Call times of two engines, interleaved call by call on the same inputs, so load
    from other processes on a shared CPU hits both alike."""
    for x in inputs[:3]:
        fn_a(x), fn_b(x)                                 # warm-up (allocators, caches)
    times = np.empty((repeats, 2))
    for i in range(repeats):
        x = inputs[i % len(inputs)]
        for j, fn in enumerate((fn_a, fn_b) if i % 2 == 0 else (fn_b, fn_a)):
            start = time.perf_counter()
            fn(x)
            times[i, j if i % 2 == 0 else 1 - j] = time.perf_counter() - start
    return times[:, 0], times[:, 1]


def bench_family(model, run, args, tmp: Path) -> dict:
    import torch

    from proc_ml.exporters.onnx_export import attach_metadata, check_model, export_model_proto
    from proc_ml.runtime import load_model

    blds = buildings(args.grid, max(args.batch, 8))
    info = run.info
    singles, big = encode(info, blds[:args.batch])
    proto = export_model_proto(model, singles[0], info, args.opset, args.exporter)
    attach_metadata(proto, run, {"exporter": args.exporter, "opset": args.opset})
    check_model(proto, "benchmark model")
    path = tmp / f"{info.family}.onnx"
    path.write_bytes(proto.SerializeToString())
    session = load_model(path, device="cpu", intra_op_threads=args.threads, inter_op_threads=1)

    def run_torch(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    diff = max(float(np.abs(session.run(x) - run_torch(x)).max()) for x in singles[:4])
    ort_lat, torch_lat = time_pair(session.run, run_torch, singles, args.repeats)
    ort_big, torch_big = time_pair(session.run, run_torch, [big], max(5, args.repeats // 8))
    return {"family": info.family, "input": list(singles[0].shape), "big": list(big.shape),
            "diff": diff,
            "ort_p50": np.percentile(ort_lat, 50) * 1e3, "ort_p95": np.percentile(ort_lat, 95) * 1e3,
            "torch_p50": np.percentile(torch_lat, 50) * 1e3,
            "torch_p95": np.percentile(torch_lat, 95) * 1e3,
            "ort_tput": args.batch / np.median(ort_big), "torch_tput": args.batch / np.median(torch_big)}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.runs:
        from proc_ml.trainers import load_run
        pairs = [load_run(r) for r in args.runs]
    else:
        pairs = [shipped_model(f) for f in FAMILIES]
    import onnxruntime as ort
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"threads {args.threads}, grid {args.grid}, large batch {args.batch} buildings, "
          f"{args.exporter} exporter opset {args.opset}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, run in pairs:
            rows.append(bench_family(model, run, args, Path(tmp)))
    print(f"{'family':<14}{'engine':<13}{'p50 ms':>9}{'p95 ms':>9}{'bldg/s @B':>11}")
    for r in rows:
        print(f"{r['family']:<14}{'onnxruntime':<13}{r['ort_p50']:>9.2f}{r['ort_p95']:>9.2f}{r['ort_tput']:>11.1f}")
        print(f"{'':<14}{'torch eager':<13}{r['torch_p50']:>9.2f}{r['torch_p95']:>9.2f}{r['torch_tput']:>11.1f}")
    ok = True
    for r in rows:
        lat_ratio = r["torch_p50"] / r["ort_p50"]
        tput_ratio = r["ort_tput"] / r["torch_tput"]
        ok &= lat_ratio >= 1.3
        print(f"{r['family']}: batch-1 input {r['input']}, large batch {r['big']}; onnxruntime is "
              f"{lat_ratio:.2f}x faster at batch 1 (p50; target 1.3x {'met' if lat_ratio >= 1.3 else 'NOT met'}), "
              f"{tput_ratio:.2f}x the throughput at batch {args.batch}; max |diff| {r['diff']:.1e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
