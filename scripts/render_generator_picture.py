"""docs/images/generator_facade.png: buildings of the default facade grammar, one view each.

Draws buildings of seed 0 with the default generator config, in order, and keeps the first
of each kind until the panels are full (every house block, the island lots with three and
with four street sides, then archetype massings); each is turned by quarter turns so its
first street side faces the viewer's left, as in docs/generator.md.

    python scripts/render_generator_picture.py [--out docs/images/generator_facade.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: Panels: the house blocks first (an island with three and one with four street sides),
#: then the first archetype massings drawn.
WANTED = ("row", "row_end", "corner", "detached", "island:3", "island:4")
PANELS = 8


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "docs" / "images" / "generator_facade.png"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from proc_ml.colours import part_colours
    from proc_ml.fileio import write_bytes
    from proc_ml.grid import NO_PART
    from proc_ml.meshing import quad_mesh
    from proc_ml.procedural import generate_building, load_generator_config
    from proc_ml.render import render_parts
    from proc_ml.symmetry import turn, turn_faces, turn_sides

    cfg = load_generator_config(None, [])
    first = {}                                 # kind -> (index, building, street sides)
    for index in range(400):
        b = generate_building(cfg, args.seed, index)
        street = tuple(s for s, on in zip(("+x", "-x", "+y", "-y"), b.extras["street"]) if on)
        kind = f"island:{len(street)}" if b.archetype == "island" else b.archetype
        first.setdefault(kind, (index, b, street))
        massings = [k for k in first if k.split(":")[0] not in cfg["facade"]["blocks"]]
        if all(k in first for k in WANTED) and len(massings) >= PANELS - len(WANTED):
            break                              # every panel has its building
    chosen = [first[k] for k in WANTED if k in first]
    massings = sorted((v for k, v in first.items() if k.split(":")[0] not in cfg["facade"]["blocks"]),
                      key=lambda v: v[0])
    chosen += massings[:PANELS - len(chosen)]
    meshes, titles = [], []
    for index, b, street in sorted(chosen, key=lambda c: c[0]):
        k = next(k for k in range(4) if turn_sides(street[:1], k) == ("-y",))
        occ, labels = turn(b.occupancy, k), turn_faces(b.labels, k)
        meshes.append(quad_mesh(occ, np.where(labels >= 0, labels, NO_PART)))
        titles.append(f"#{index} {b.archetype} (street {' '.join(street)})")
    parts = list(cfg["parts"])
    write_bytes(args.out, render_parts(meshes, parts, part_colours(parts), titles, size=3.4,
                                       columns=4))
    print(f"wrote {args.out}: " + ", ".join(titles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
