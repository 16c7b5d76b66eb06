"""pix2pix benchmarks: scores of a trained run, training memory against the number of
pairs, and inference start-up.

**Scores** (any pix2pix run: label folders or side-by-side photos). Evaluates a ``proc-ml
train pix2pix`` run (eval mode, as exported) and the mean-colour baseline (per label class
with a palette; the mean colour of the training set for photo pairs) on a held-out split
and prints L1 (0..1 scale), PSNR, SSIM, facade-only L1 and the baseline/model L1 ratios.
For datasets written by ``proc-ml generate facades`` it also measures the data's noise
floor: the facade L1 between two texture draws of the same layouts.

    python benchmarks/bench_pix2pix.py RUN --data DATA [--grid docs/images/pix2pix_cpu_test.png]

**Memory** (``--memory N [N ...]``): writes N synthetic photo pairs (RGBA label PNG +
JPEG photo, 768x512 by default, ``proc_ml.textures.photos``), then trains one epoch of
``--config`` (default ``pix2pix_photo_cpu``, 128 px) in a fresh process per N and reports
its peak RSS (``getrusage``), twice: with proc-ml's data path (decoded once at the working
size into RUN/cache) and with the reference's (junyanz/pytorch-CycleGAN-and-pix2pix
``data/aligned_dataset.py`` + ``base_dataset.get_transform``, re-implemented here: every
access opens the files, converts to RGB, resizes both images bicubic to ``load_size``,
crops and flips at random, scales to [-1, 1]; nothing kept). Same model, same steps, no
DataLoader workers (one process measures everything), no per-epoch picture.

    python benchmarks/bench_pix2pix.py --memory 100 1000 5000 --work /tmp/p2p_mem

**Start-up** (``--startup MODEL``): ``--count`` label maps (256x256, the model's palette)
textured by one ``proc-ml predict texture --input FILE`` process per image (the first 5,
averaged) against one ``--input FOLDER`` process for all of them.

    python benchmarks/bench_pix2pix.py --startup facade.onnx --work /tmp/p2p_start
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def noise_floor(module_px: int, count: int = 40, seed: int = 5) -> float:
    """Mean facade-pixel L1 (0..1) between two seeded texture draws of one layout."""
    from proc_ml.procedural import generate_building
    from proc_ml.procedural.config import default_config
    from proc_ml.textures.layout import front_views
    from proc_ml.textures.pairs import building_material
    from proc_ml.textures.palette import facade_palette
    from proc_ml.textures.render import render_facade

    cfg = default_config()
    palette, m = facade_palette(cfg["parts"]), int(module_px)
    diffs = []
    for i in range(count):
        b = generate_building(cfg, seed, i)
        material = building_material(seed, i)
        for f in front_views(b.occupancy, b.labels):
            classes, one = render_facade(f, cfg["parts"], palette, material, m, np.random.default_rng([i, 1]))
            _, two = render_facade(f, cfg["parts"], palette, material, m, np.random.default_rng([i, 2]))
            facade = classes != palette.index("background")
            diffs.append(np.abs(one.astype(np.float64) - two)[facade].mean() / 255.0)
    return float(np.mean(diffs))


def scores(args) -> int:
    import torch

    from proc_ml.formats.facades import FORMAT, read_manifest
    from proc_ml.trainers.pix2pix import evaluate_pix2pix, format_pix2pix_table

    torch.set_num_threads(args.threads)
    result = evaluate_pix2pix(args.run, args.data, args.split, args.checkpoint, grid_path=args.grid)
    manifest = read_manifest(args.data) if Path(args.data, "labels").is_dir() else {}
    generated = manifest.get("format") == FORMAT and manifest.get("module_px")
    if generated:
        result["noise_floor_l1_facade"] = noise_floor(manifest["module_px"])
    print(f"machine: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
          f"torch {torch.__version__}")
    print(format_pix2pix_table(result))
    if generated:
        print(f"noise floor (facade L1 between two texture draws of one layout): "
              f"{result['noise_floor_l1_facade']:.4f}")
    _write_json(args.json, result)
    return 0


# -- memory against the number of pairs ------------------------------------------------------
def _write_pairs(folder: Path, count: int, width: int, height: int, workers: int = 2) -> None:
    """``count`` synthetic pairs in ``folder`` (label-folder layout), written in parallel."""
    from concurrent.futures import ProcessPoolExecutor

    from proc_ml.textures.photos import write_synthetic_photos

    have = len(list((folder / "images").glob("*.jpg"))) if (folder / "images").is_dir() else 0
    if have >= count:
        return
    chunks = [(s, min(500, count - s)) for s in range(have, count, 500)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_chunk, [(str(folder), s, n, width, height) for s, n in chunks]))
    write_synthetic_photos(folder, 0, width, height)        # the palette file


def _write_chunk(job) -> None:
    from proc_ml.textures.photos import write_synthetic_photos

    folder, start, count, width, height = job
    write_synthetic_photos(folder, count, width, height, start=start)


def _subset(source: Path, folder: Path, count: int) -> Path:
    """``folder`` holding the first ``count`` pairs of ``source`` (symbolic links)."""
    for sub in ("labels", "images"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    names = sorted(p.stem for p in (source / "labels").glob("*.png"))[:count]
    for name in names:
        for sub, suffix in (("labels", ".png"), ("images", ".jpg")):
            link = folder / sub / f"{name}{suffix}"
            if not link.exists():
                link.symlink_to((source / sub / f"{name}{suffix}").resolve())
    if not (folder / "palette.txt").exists():
        (folder / "palette.txt").write_text((source / "palette.txt").read_text())
    return folder


def _reference_style_dataset(task, split: str):
    """The reference's aligned-dataset behaviour for one split (see the module docstring)."""
    import torch
    from PIL import Image

    from proc_ml.trainers.pix2pix import to_unit

    names = task.split_names(split)
    train = split == task.data_cfg["train_split"]
    size, load = task.data_cfg["size"], task.data_cfg["load_size"]

    class ReferenceStyle(torch.utils.data.Dataset):
        def __len__(self):
            return len(names)

        def __getitem__(self, index):
            label_path, image_path = task.data.items[names[index]]
            out = []
            crop = np.random.randint(0, load - size + 1, size=2) if train else (0, 0)
            flip = train and np.random.random() < 0.5
            for path in (label_path, image_path):
                with Image.open(path) as im:
                    im = im.convert("RGB").resize((load, load) if train else (size, size),
                                                  Image.Resampling.BICUBIC)
                a = np.asarray(im)[crop[0]:crop[0] + size, crop[1]:crop[1] + size]
                out.append(to_unit(a[:, ::-1] if flip else a))
            return out[0], out[1], torch.ones(1, size, size)
    return ReferenceStyle()


def _train_child(data: str, out: str, config: str, loader: str) -> int:
    """One measured training process: prints a JSON line with its peak RSS and wall time."""
    start = time.perf_counter()
    if loader == "reference":
        from proc_ml.trainers import pix2pix

        pix2pix.Pix2PixTask.dataset = lambda self, split, limit=0: _reference_style_dataset(self, split)
    from proc_ml.cli import main

    code = main(["train", "pix2pix", "--data", data, "--out", out, "--config", config, "--quiet",
                 "--set", "training.epochs=1", "--set", "dataset.workers=0",
                 "--set", "dataset.preview_count=0", "--set", "dataset.split=[0.9, 0.1, 0.0]"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # kB on Linux
    print(json.dumps({"code": code, "peak_rss": peak, "wall_s": time.perf_counter() - start}))
    return code


def _framework_child() -> int:
    """Peak RSS of the libraries a training process loads, without data or a real model:
    torch, the training loop, an Adam optimizer (its first use imports more of torch) and
    matplotlib (the per-epoch curves)."""
    import torch

    from proc_ml.trainers import loop, plots  # noqa: F401
    import matplotlib.pyplot  # noqa: F401

    layer = torch.nn.Linear(4, 4)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(1, 4)).sum().backward()
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"code": 0, "peak_rss": peak, "wall_s": 0.0}))
    return 0


def _measure(data: Path, out: Path, config: str, loader: str) -> dict:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    run = subprocess.run([sys.executable, __file__, "--_train-child", str(data), str(out), config, loader],
                         capture_output=True, text=True)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if run.returncode or not lines:
        raise SystemExit(f"training on {data} ({loader}) failed: {run.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def memory(args) -> int:
    import torch

    from proc_ml.trainers import load_run

    work = Path(args.work)
    width, height = (int(v) for v in args.photo_size.lower().split("x"))
    counts = sorted(set(args.memory))
    source = work / f"pairs_{width}x{height}"
    started = time.perf_counter()
    _write_pairs(source, counts[-1], width, height)
    print(f"wrote {counts[-1]} synthetic {width}x{height} pairs in {time.perf_counter() - started:.0f} s "
          f"({source})", flush=True)
    framework = subprocess.run([sys.executable, __file__, "--_framework-child"], capture_output=True,
                               text=True, check=True)
    framework_rss = json.loads(framework.stdout.strip().splitlines()[-1])["peak_rss"]
    print(f"libraries alone (torch, the loop, Adam, matplotlib): peak RSS {framework_rss / 2**20:.0f} MiB",
          flush=True)
    rows = []
    for count in counts:
        data = _subset(source, work / f"set_{count}", count)
        ours = _measure(data, work / f"run_{count}", args.config, "proc-ml")
        cache = sum(p.stat().st_size for p in (work / f"run_{count}" / "cache").glob("*.npy"))
        _, run = load_run(work / f"run_{count}", "last")
        saved = torch.load(work / f"run_{count}" / "checkpoints" / "last.pt", weights_only=True)
        params = sum(v.numel() for m in saved["models"].values() for k, v in m.items()
                     if v.is_floating_point() and "running" not in k)
        theirs = _measure(data, work / f"run_{count}_ref", args.config, "reference")
        load = run.config["dataset"]["load_size"]
        rows.append({"pairs": count, "photo": f"{width}x{height}", "config": args.config,
                     "working_size": [run.config["dataset"]["size"], load],
                     "cache_bytes": cache, "model_params": params,
                     "model_training_bytes": params * 4 * 4,      # weights, gradients, 2 Adam moments
                     "peak_rss": ours["peak_rss"], "wall_s": ours["wall_s"], "libraries_rss": framework_rss,
                     "reference_peak_rss": theirs["peak_rss"], "reference_wall_s": theirs["wall_s"],
                     "preload_float_estimate": count * 7 * load * load * 4})
        r = rows[-1]
        print(f"{count:>6} pairs: peak RSS {r['peak_rss'] / 2**20:7.0f} MiB ({r['wall_s']:.0f} s); "
              f"reference-style loader {r['reference_peak_rss'] / 2**20:7.0f} MiB ({r['reference_wall_s']:.0f} s); "
              f"data at the working size {cache / 2**20:.0f} MiB (RUN/cache); model {params / 1e6:.2f} M "
              f"parameters = {r['model_training_bytes'] / 2**20:.0f} MiB with gradients and Adam; "
              f"a float preload at {load} px would hold {r['preload_float_estimate'] / 2**20:.0f} MiB", flush=True)
    _write_json(args.json, {"machine": platform.machine(), "cpus": os.cpu_count(), "rows": rows})
    return 0


# -- inference start-up ----------------------------------------------------------------------------
def startup(args) -> int:
    from proc_ml.runtime.textures import TextureGenerator
    from proc_ml.textures.images import write_png

    work = Path(args.work)
    palette = TextureGenerator(args.startup, device="cpu").palette
    rng = np.random.default_rng(0)
    folder = work / "labels"
    for i in range(args.count):
        classes = rng.integers(0, len(palette), size=(8, 8)).repeat(32, 0).repeat(32, 1)
        write_png(folder / f"f{i:04d}.png", palette.rgb(classes))
    cli = [sys.executable, "-m", "proc_ml", "predict", "texture", "--model", str(args.startup)]
    singles = []
    for i in range(min(5, args.count)):
        start = time.perf_counter()
        subprocess.run(cli + ["--input", str(folder / f"f{i:04d}.png"), "--out", str(work / "one" / f"f{i:04d}.png")],
                       check=True, capture_output=True)
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run(cli + ["--input", str(folder), "--out", str(work / "all")], check=True, capture_output=True)
    folder_s = time.perf_counter() - start
    result = {"count": args.count, "size": [256, 256], "per_image_process_s": float(np.mean(singles)),
              "folder_total_s": folder_s, "folder_per_image_s": folder_s / args.count}
    print(f"one process per image: {result['per_image_process_s']:.2f} s per image; folder mode: "
          f"{folder_s:.1f} s for {args.count} = {result['folder_per_image_s']:.3f} s per image")
    _write_json(args.json, result)
    return 0


def _write_json(path, result) -> None:
    if path:
        from proc_ml.fileio import write_text
        write_text(path, json.dumps(result, indent=1) + "\n")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_train-child"]:
        return _train_child(*argv[1:5])
    if argv[:1] == ["--_framework-child"]:
        return _framework_child()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="run folder from 'proc-ml train pix2pix' (scores)")
    p.add_argument("--data", help="the paired dataset to score on (any layout)")
    p.add_argument("--split", default="test", help="held-out split (default test)")
    p.add_argument("--checkpoint", default="best", help="best (default) or last")
    p.add_argument("--grid", help="write input | baseline | output | target rows to this PNG")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--memory", type=int, nargs="+", metavar="PAIRS",
                   help="peak RSS of one training epoch on this many synthetic photo pairs")
    p.add_argument("--photo-size", default="768x512", help="synthetic photo size WxH (default 768x512)")
    p.add_argument("--config", default="pix2pix_photo_cpu", help="training config for --memory")
    p.add_argument("--startup", metavar="MODEL", help="pix2pix ONNX model: start-up per image")
    p.add_argument("--count", type=int, default=100, help="label maps for --startup (default 100)")
    p.add_argument("--work", help="folder for the data and runs of --memory / --startup")
    args = p.parse_args(argv)

    from proc_ml.errors import ProcMLError

    try:
        if args.memory or args.startup:
            if not args.work:
                p.error("--memory and --startup need --work")
            return memory(args) if args.memory else startup(args)
        if not args.run or not args.data:
            p.error("scores need RUN and --data")
        return scores(args)
    except ProcMLError as exc:
        print(f"bench_pix2pix: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
