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

    f = kinds.add_parser("facades", help="facade label maps + procedural textures (pix2pix pairs)",
                         description="Render every side facade of generated buildings as a label "
                                     "map (labels/*.png, palette.json) and a matching procedural "
                                     "texture (images/*.png), with facades.json (see docs/pix2pix.md).")
    f.add_argument("--count", type=int, default=200, help="number of buildings (default 200)")
    f.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--size", type=int, default=256, choices=(128, 256), help="image size in pixels (default 256)")
    f.add_argument("--module-px", type=int, default=16,
                   help="pixels per facade module (default 16; facades larger than the image "
                        "are cropped to their bottom centre)")
    f.add_argument("--config", help="generator YAML config (see sample_data/configs/)")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a generator config key (repeatable)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=run_facades)


#: Most buildings one generate writes (ids index file names and C ints downstream).
MAX_COUNT = 10_000_000


def _check_args(args) -> None:
    """Argument values before any work: counts in range, --out a writable folder."""
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_output_folder

    if args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    if args.count > MAX_COUNT:
        raise ConfigError(f"--count must be <= {MAX_COUNT}, got {args.count}")
    if not 0 <= args.seed <= 2 ** 32 - 1:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}" if args.seed < 0
                          else f"--seed must be < 2^32, got {args.seed}")
    if getattr(args, "workers", None) is not None and not 1 <= args.workers <= 256:
        raise ConfigError(f"--workers must be between 1 and 256, got {args.workers}")
    if getattr(args, "module_px", None) is not None and not 1 <= args.module_px <= 256:
        raise ConfigError(f"--module-px must be between 1 and 256, got {args.module_px}")
    check_output_folder(args.out)


def run_facades(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.procedural import load_generator_config
    from proc_ml.textures.pairs import write_facade_pairs

    if args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    cfg = load_generator_config(args.config, args.set)
    _check_args(args)
    start = time.perf_counter()
    manifest = write_facade_pairs(cfg, args.count, args.seed, args.out, args.size, args.module_px,
                                  progress=not args.quiet)
    splits = ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
    print(f"wrote {manifest['count']} facade pairs of {args.count} buildings ({splits}; "
          f"{args.size} px, {manifest['module_px']} px per module) to {args.out} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def run(args) -> int:
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.formats import parse_formats
    from proc_ml.procedural import load_generator_config

    cfg = load_generator_config(args.config, args.set)
    formats = parse_formats(args.formats)
    _check_args(args)
    start = time.perf_counter()
    manifest = generate_dataset(cfg, args.count, args.seed, args.out, formats,
                                workers=args.workers, layout=args.layout, progress=not args.quiet)
    took = time.perf_counter() - start
    stats = manifest["stats"]
    print(f"wrote {args.count} buildings ({stats['cells']} cells, {stats['faces']} faces) "
          f"to {args.out} in {took:.1f}s [{', '.join(formats)}]")
    return 0
