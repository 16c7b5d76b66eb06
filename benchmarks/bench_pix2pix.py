"""pix2pix facade textures: a trained run against the mean-colour-per-label baseline.

Evaluates a ``proc-ml train pix2pix`` run (eval mode, as exported) and the baseline that
paints every pixel with the mean training-target colour of its label class, side by side
on a held-out split, and prints L1 (0..1 scale), PSNR, SSIM, facade-only L1 and the
baseline/model L1 ratios. Also measures the data's noise floor: the facade L1 between two
texture draws of the same layouts (what no model can predict from the labels alone).

    python benchmarks/bench_pix2pix.py RUN --data FACADES [--grid docs/images/pix2pix_cpu_test.png]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder from 'proc-ml train pix2pix'")
    p.add_argument("--data", required=True, help="facade pairs folder (proc-ml generate facades)")
    p.add_argument("--split", default="test", help="held-out split (default test)")
    p.add_argument("--checkpoint", default="best", help="best (default) or last")
    p.add_argument("--grid", help="write input | baseline | output | target rows to this PNG")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = p.parse_args(argv)

    import torch
    from proc_ml.trainers.pix2pix import evaluate_pix2pix, format_pix2pix_table

    torch.set_num_threads(args.threads)
    result = evaluate_pix2pix(args.run, args.data, args.split, args.checkpoint, grid_path=args.grid)
    with open(f"{args.data}/facades.json", encoding="utf-8") as fh:
        module_px = json.load(fh)["module_px"]
    result["noise_floor_l1_facade"] = noise_floor(module_px)
    print(f"machine: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
          f"torch {torch.__version__}")
    print(format_pix2pix_table(result))
    print(f"noise floor (facade L1 between two texture draws of one layout): "
          f"{result['noise_floor_l1_facade']:.4f}")
    if args.json:
        from proc_ml.fileio import write_text
        write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
