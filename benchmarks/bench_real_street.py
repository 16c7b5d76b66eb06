"""Several real buildings in one grid: labelled in one pass, mass by mass, or piece by piece.

A street exported as one mesh (or a Houdini SOP fed a block) gives the parts model several
buildings in one grid. Each development building (``../shared/real/lod3-ingolstadt-dev``,
imported at 3 m cells as ``bench_real_buildings.py`` does) is put in a grid beside the next
one along x, ``--gap`` empty cells between them (0: touching, as row houses), itself raised by
``--raise`` cells (the street on a slope), and labelled with its own street sides by the
installed model (averaged over its turns, entrance rule on), four ways: alone (its own
grid), the whole grid as one building (``separate=False``, proc-ml before masses were
labelled apart), mass by mass (``separate=True``, the default) and piece by piece (each
building's cells numbered, ``buildings=``, as the Houdini node's Piece Attribute gives
them). Scored on the building's own faces that are outside faces of the grid (touching,
the faces against the neighbour are inside the block) against its real labels
(``proc_ml.real_buildings.score``), the same faces for every way.

    python benchmarks/bench_real_street.py              # gaps 0, 1 and 2, raised 0 and 1
    python benchmarks/bench_real_street.py --gap 0 --raise 1 --model my.onnx
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_buildings import DEV_SET, import_real  # noqa: E402

SYSTEMS = ("alone", "one pass", "mass by mass", "piece by piece")


def side_by_side(b, c, gap: int, raise_by: int):
    """A grid holding building ``b`` raised by ``raise_by`` and ``c`` ``gap`` cells beyond it
    along x, each cell's building (0: ``b``, 1: ``c``), and the slices of ``b`` in it."""
    (bx, by, bz), (cx, cy, cz) = b.occupancy.shape, c.occupancy.shape
    shape = (bx + gap + cx, max(by, cy), max(bz + raise_by, cz))
    grid, ids = np.zeros(shape, np.uint8), np.full(shape, -1, np.int64)
    where = (slice(0, bx), slice(0, by), slice(raise_by, raise_by + bz))
    grid[where] = b.occupancy
    ids[where][b.occupancy > 0] = 0
    grid[bx + gap:, :cy, :cz] |= c.occupancy
    ids[bx + gap:, :cy, :cz][c.occupancy > 0] = 1
    return grid, ids, where


def run(real, predictor, gap: int, raise_by: int) -> dict:
    from proc_ml.grid import exterior_faces
    from proc_ml.real_buildings import score

    preds = {name: [] for name in SYSTEMS}
    scored = copy.copy(real)
    scored.buildings = []
    for i, b in enumerate(real.buildings):
        c = real.buildings[(i + 1) % len(real.buildings)]
        grid, ids, where = side_by_side(b, c, gap, raise_by)
        outside = copy.copy(b)                  # the faces still outside faces in the grid
        outside.labels = np.where(exterior_faces(grid)[where], b.labels, -1)
        scored.buildings.append(outside)
        preds["alone"].append(predictor.predict(b.occupancy, street=b.street)[0])
        for name, kwargs in (("one pass", {"separate": False}), ("mass by mass", {}),
                             ("piece by piece", {"buildings": ids})):
            labels = predictor.predict(grid, street=b.street, **kwargs)[0]
            preds[name].append(labels[where])
    rows = {}
    for name, labels in preds.items():
        every, street = score(scored, labels, "all"), score(scored, labels, "street")
        door = street["per_class"]["door"]
        rows[name] = {"faces": every["faces"], "accuracy": every["accuracy"],
                      "street_accuracy": street["accuracy"],
                      "street_window_f1": street["per_class"]["window"]["f1"],
                      "door_precision": door["precision"], "door_recall": door["recall"]}
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gap", type=int, nargs="+", default=[0, 1, 2],
                   help="empty cells between (0: touching)")
    p.add_argument("--raise", dest="raise_by", type=int, nargs="+", default=[0, 1],
                   help="cells the scored building stands higher than its neighbour")
    p.add_argument("--model", default="default", help="a parts model (.onnx); default: installed")
    p.add_argument("--work", default="bench_work/real", help="cache of the import")
    args = p.parse_args(argv)
    from proc_ml.real_buildings import load_real
    from proc_ml.runtime import PartsPredictor, default_model

    real = load_real(import_real([str(DEV_SET)], Path(args.work), 3.0))
    real.buildings = [b for b in real.buildings if b.street]
    predictor = PartsPredictor(default_model("building-parts") if args.model == "default"
                               else args.model)
    print(f"{len(real.buildings)} real buildings, each beside the next; street sides given\n")
    print("| gap (cells) | raised (cells) | labelled | faces | face accuracy | street facades: "
          "accuracy | window F1 | door P / R |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for gap in args.gap:
        for raise_by in args.raise_by:
            for name, r in run(real, predictor, gap, raise_by).items():
                print(f"| {gap} | {raise_by} | {name} | {r['faces']} | {r['accuracy']:.3f} | "
                      f"{r['street_accuracy']:.3f} | {r['street_window_f1']:.3f} | "
                      f"{r['door_precision']:.2f} / {r['door_recall']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
