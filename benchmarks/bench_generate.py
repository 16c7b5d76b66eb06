"""Generation speed: buildings per second through ``generate_dataset`` (the CLI's path), and
the vectorised generator against the per-cell Python reference of the same rules.

    python benchmarks/bench_generate.py                # default sizes, ~1 minute on 2 cores
    python benchmarks/bench_generate.py --check        # exit 1 if a target is missed

Targets (issue 2): grids-only generation >= 2,000 buildings/minute with 2 workers, and the
vectorised generator >= 20x the reference (same rules, same building ids). Both sides of the
ratio are timed in the same run, interleaved in blocks of 10 buildings so that a busy machine
slows both alike; dataset rates are the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from proc_ml.exporters.dataset import generate_dataset
from proc_ml.formats import FORMATS
from proc_ml.procedural import generate_building, load_generator_config
from proc_ml.procedural.reference import generate_building_reference

MIN_BUILDINGS_PER_MINUTE = 2000
MIN_SPEEDUP = 20.0


def dataset_rate(cfg: dict, count: int, formats, workers: int, repeats: int) -> float:
    """Best buildings/second over ``repeats`` full ``generate_dataset`` runs into a temp folder."""
    best = float("inf")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="proc_ml_bench_") as tmp:
            start = time.perf_counter()
            generate_dataset(cfg, count, 0, Path(tmp) / "ds", formats, workers=workers, progress=False)
            best = min(best, time.perf_counter() - start)
    return count / best


def _seconds(fn, cfg: dict, ids) -> float:
    start = time.perf_counter()
    for i in ids:
        fn(cfg, 0, i)
    return time.perf_counter() - start


def generator_speedup(cfg: dict, count: int, repeats: int, block: int = 10) -> tuple[float, float, float]:
    """(vectorised ms, reference ms, speed-up) per building on the same ids.

    The two are interleaved in blocks of ``block`` buildings so that load from other processes
    hits both alike; times are the best round, the speed-up the median of the rounds' ratios.
    """
    ids = list(range(count))
    _seconds(generate_building, cfg, ids[:block])              # warm caches and imports
    rounds = []
    for _ in range(repeats):
        fast = slow = 0.0
        for start in range(0, count, block):
            chunk = ids[start:start + block]
            fast += _seconds(generate_building, cfg, chunk)
            slow += _seconds(generate_building_reference, cfg, chunk)
        rounds.append((fast / count * 1e3, slow / count * 1e3))
    ratios = sorted(s / f for f, s in rounds)
    return min(f for f, _ in rounds), min(s for _, s in rounds), ratios[len(ratios) // 2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="buildings per grids-only run")
    parser.add_argument("--count-all", type=int, default=200, help="buildings per all-formats run")
    parser.add_argument("--ref-count", type=int, default=150, help="buildings for the reference ratio")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", type=int, nargs=3, default=[16, 16, 16], metavar=("X", "Y", "Z"))
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    cfg = load_generator_config(None, [f"grid.size={list(args.grid)}"])
    grids = dataset_rate(cfg, args.count, ("grids",), args.workers, args.repeats)
    every = dataset_rate(cfg, args.count_all, FORMATS, args.workers, args.repeats)
    fast, slow, speedup = generator_speedup(cfg, args.ref_count, args.repeats)

    grid = "x".join(map(str, args.grid))
    rows = [
        ("generate_dataset, grids only", f"{grids:,.0f} bldg/s", f"{grids * 60:,.0f} bldg/min",
         f">= {MIN_BUILDINGS_PER_MINUTE:,} bldg/min", grids * 60 >= MIN_BUILDINGS_PER_MINUTE),
        ("generate_dataset, all formats", f"{every:,.0f} bldg/s", f"{every * 60:,.0f} bldg/min", "", None),
        ("generate_building (vectorised)", f"{fast:.3f} ms/bldg", "", "", None),
        ("generate_building_reference", f"{slow:.3f} ms/bldg", "", "", None),
        ("speed-up (median of rounds)", f"{speedup:.1f}x", "", f">= {MIN_SPEEDUP:.0f}x",
         speedup >= MIN_SPEEDUP),
    ]
    print(f"proc-ml generation benchmark: grid {grid}, {args.workers} workers, best of {args.repeats}")
    print(f"{'measure':34s} {'value':>16s} {'':>16s}  {'target':>20s}")
    for name, value, extra, target, ok in rows:
        status = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name:34s} {value:>16s} {extra:>16s}  {target:>20s}{status}")
    missed = [r[0] for r in rows if r[4] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
