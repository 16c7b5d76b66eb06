"""``proc-ml generate buildings``: write a labelled building dataset."""

from __future__ import annotations

import time


def register(sub) -> None:
    parser = sub.add_parser("generate", help="generate labelled procedural datasets",
                            description="Generate labelled procedural datasets.")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    p = kinds.add_parser("buildings", help="voxel buildings with a part on every exterior face",
                         description="Generate voxel buildings and export them in every dataset "
                                     "format (see docs/formats.md).")
    p.add_argument("--count", type=int, default=200, help="number of buildings (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes byte-identical files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", help="generator YAML config (see sample_data/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set grid.size=[32,32,32] (repeatable)")
    p.add_argument("--formats", default="all",
                   help="comma list of faces,adjacency,grids,meshes,points or 'all' (default)")
    p.add_argument("--layout", default="named", choices=("named", "opara"),
                   help="faces.csv layout: 'named' (header + ids) or 'opara' (headerless 0/1 rows)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from exporters.dataset import generate_dataset, parse_formats
    from proc_ml.procedural import load_generator_config

    cfg = load_generator_config(args.config, args.set)
    formats = parse_formats(args.formats)
    start = time.perf_counter()
    manifest = generate_dataset(cfg, args.count, args.seed, args.out, formats,
                                workers=args.workers, layout=args.layout, progress=not args.quiet)
    took = time.perf_counter() - start
    stats = manifest["stats"]
    print(f"wrote {args.count} buildings ({stats['cells']} cells, {stats['faces']} faces) "
          f"to {args.out} in {took:.1f}s [{', '.join(formats)}]")
    return 0
