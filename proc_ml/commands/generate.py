"""``proc-ml generate buildings|facades``: write a labelled dataset into an output folder.

An output folder that is not empty is refused unless ``--overwrite``, which first removes
only what generate writes there (``owned_names``; other files stay), so a smaller ``--count``
never leaves stale buildings of an earlier run behind. The one exception: a folder that holds
only a killed ``generate buildings``' unfinished output (its lock file, no ``dataset.yaml``)
is replaced by a rerun without ``--overwrite``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from .reporting import Reporter, add_json_flag

OVERWRITE_HELP = ("replace the dataset in a non-empty --out: first remove what generate "
                  "writes there ({}); other files are kept")


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
    p.add_argument("--overwrite", action="store_true",
                   help=OVERWRITE_HELP.format(", ".join(owned_names("buildings"))))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
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
    f.add_argument("--overwrite", action="store_true",
                   help=OVERWRITE_HELP.format(", ".join(owned_names("facades"))))
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(f)
    f.set_defaults(func=run_facades)


def owned_names(kind: str) -> tuple[str, ...]:
    """The files and folders ``generate KIND`` writes at the top of its output folder."""
    from proc_ml import formats
    from proc_ml.formats import facades

    if kind == "facades":
        return (facades.MANIFEST, facades.PALETTE_FILE, facades.LABELS_DIR, facades.IMAGES_DIR)
    return (formats.MANIFEST, formats.LEGEND, *formats.TABLES.values(), formats.GRIDS_DIR,
            formats.MESHES_DIR, formats.POINTS_DIR)


def prepare_output(out, kind: str, overwrite: bool, owned=None) -> list[str]:
    """Refuse a non-empty ``out`` unless ``overwrite``; then remove what the command owns
    there (``owned``, default ``owned_names(kind)``) and temp files of its atomic writes,
    never following symlinks. Returns what it removed."""
    from proc_ml.errors import ConfigError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return []
    owned = tuple(owned or owned_names(kind))
    temp = re.compile(r"^\.(" + "|".join(re.escape(n) for n in owned) + r")\.[0-9a-f]+\.tmp$")
    if not overwrite and kind == "buildings" and _interrupted(out, owned, temp):
        overwrite = True     # a killed generate's own unfinished output: replace it
    if not overwrite:
        present = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
        shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
        raise ConfigError(f"--out {out}: the folder is not empty ({shown}); pass --overwrite to "
                          f"replace the dataset there (removes only {', '.join(owned)}) or "
                          f"choose an empty folder")
    removed = []
    for entry in sorted(out.iterdir()):
        if entry.name not in owned and not temp.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


def _interrupted(out: Path, owned, temp) -> bool:
    """True when ``out`` holds only what a killed ``generate buildings`` left: its lock file
    (a finished run removes it), no ``dataset.yaml``, and nothing generate does not write.
    A generate still running there holds the lock: that is refused, never cleaned."""
    from proc_ml.exporters.dataset import LOCK_NAME
    from proc_ml.fileio import FolderLock
    from proc_ml.formats import MANIFEST

    names = {p.name for p in out.iterdir()}
    if LOCK_NAME not in names or MANIFEST in names:
        return False
    if any(n not in owned and n != LOCK_NAME and not temp.match(n) for n in names):
        return False
    with FolderLock(out, LOCK_NAME, "generate"):      # raises when one is running
        return True


#: Most buildings one generate writes (ids index file names and C ints downstream).
MAX_COUNT = 10_000_000


def _check_args(args) -> None:
    """Argument values before any work: counts in range, --out a writable folder."""
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_output_folder

    from .options import check_seed

    if args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")
    if args.count > MAX_COUNT:
        raise ConfigError(f"--count must be <= {MAX_COUNT}, got {args.count}")
    check_seed(args.seed)
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
    if not 1 <= args.module_px <= args.size:    # checked before --overwrite removes anything
        raise ConfigError(f"--module-px must be between 1 and the image size {args.size}, "
                          f"got {args.module_px}")
    cfg = load_generator_config(args.config, args.set)
    _check_args(args)
    with Reporter(args.json) as report:
        report.start("generate facades", out=args.out, count=args.count, seed=args.seed)
        removed = prepare_output(args.out, "facades", args.overwrite)
        start = time.perf_counter()
        manifest = write_facade_pairs(cfg, args.count, args.seed, args.out, args.size,
                                      args.module_px, progress=report.progress_bars and not args.quiet)
        took = time.perf_counter() - start
        splits = ", ".join(f"{k} {v}" for k, v in manifest["splits"].items())
        report.say(f"wrote {manifest['count']} facade pairs of {args.count} buildings ({splits}; "
                   f"{args.size} px, {manifest['module_px']} px per module) to {args.out} "
                   f"in {took:.1f}s")
        report.done([Path(args.out) / name for name in owned_names("facades")],
                    pairs=manifest["count"], buildings=args.count, splits=manifest["splits"],
                    removed=removed, seconds=round(took, 2))
    return 0


def run(args) -> int:
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.formats import parse_formats
    from proc_ml.procedural import load_generator_config


    cfg = load_generator_config(args.config, args.set)
    formats = parse_formats(args.formats)
    _check_args(args)                        # checked before --overwrite removes anything
    with Reporter(args.json) as report:
        report.start("generate buildings", out=args.out, count=args.count, seed=args.seed,
                     formats=list(formats))
        removed = prepare_output(args.out, "buildings", args.overwrite)
        start = time.perf_counter()
        manifest = generate_dataset(
            cfg, args.count, args.seed, args.out, formats, workers=args.workers,
            layout=args.layout, progress=report.progress_bars and not args.quiet,
            on_progress=lambda done, total: report.progress("generate", done, total))
        took = time.perf_counter() - start
        stats = manifest["stats"]
        report.say(f"wrote {args.count} buildings ({stats['cells']} cells, {stats['faces']} faces) "
                   f"to {args.out} in {took:.1f}s [{', '.join(formats)}]")
        report.done(_written(args.out, formats), buildings=args.count, cells=stats["cells"],
                    faces=stats["faces"], removed=removed, seconds=round(took, 2))
    return 0


def _written(out, formats) -> list[Path]:
    """The files and folders a buildings dataset of ``formats`` holds (docs/formats.md)."""
    from proc_ml import formats as names

    out = Path(out)
    paths = [out / names.MANIFEST, out / names.LEGEND, out / names.BUILDINGS_CSV]
    paths += [out / names.TABLES[f] for f in ("faces", "adjacency") if f in formats]
    paths += [out / folder for f, folder in (("grids", names.GRIDS_DIR), ("meshes", names.MESHES_DIR),
                                             ("points", names.POINTS_DIR)) if f in formats]
    return [p for p in paths if p.exists()]
