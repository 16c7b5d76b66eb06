"""``proc-ml import citygml PATH... --out D``: real buildings (CityGML / CityJSON) as
proc-ml datasets (``proc_ml.citygml``; docs/citygml.md has the rules)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

#: Notes and skipped buildings printed before "... N more in import.json".
SHOWN = 10


def register(sub) -> None:
    parser = sub.add_parser("import", help="real buildings in: CityGML / CityJSON to datasets",
                            description="Import data from other tools as proc-ml datasets.")
    kinds = parser.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    p = kinds.add_parser(
        "citygml", help="CityGML 1.0-3.0 (.gml/.xml/.citygml) and CityJSON (.json/.city.json/.city.jsonl) "
                        "buildings",
        description="Voxelise real buildings into proc-ml datasets. Buildings with windows and "
                    "doors (LoD3) become a labelled dataset in OUT (a part on every exterior face, "
                    "by the opening-coverage rule of docs/citygml.md); LoD1/LoD2 buildings become a "
                    "massing-to-label dataset in OUT/massing. Each building is turned about z so "
                    "its walls run along the grid axes (recorded in its grid file). OUT/import.json "
                    "lists every building's notes and statistics. A building that cannot be "
                    "imported is one line on stderr and the import goes on; one smaller than half "
                    "a cell is skipped.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="city files or folders of them")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--cell-size", type=float, default=None,
                   help="metres per cell (default 3, the generator's)")
    p.add_argument("--method", choices=("flux", "winding", "flood"), default="flux",
                   help="occupancy of open shells (default flux; docs/citygml.md compares them)")
    p.add_argument("--crs", default=None,
                   help="CRS to assume when a file names none, e.g. EPSG:25832 (projected metres)")
    p.add_argument("--licence", default=None,
                   help="licence of the source data, recorded in dataset.yaml (e.g. 'CC BY-SA 4.0')")
    p.add_argument("--attribution", default=None,
                   help="attribution the licence requires, recorded in dataset.yaml")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the dataset in a non-empty --out (removes only what import "
                        "writes there, once the import has succeeded)")
    p.set_defaults(func=run)


def owned_names() -> tuple[str, ...]:
    """What ``import citygml`` writes at the top of its output folder."""
    from proc_ml.citygml.dataset import IMPORT_REPORT, MASSING_DIR

    from .generate import owned_names as generated

    return generated("buildings") + (MASSING_DIR, IMPORT_REPORT)


def run(args) -> int:
    from proc_ml.citygml import import_city_files
    from proc_ml.citygml.dataset import write_city_datasets, write_import_report
    from proc_ml.citygml.importer import GML_SUFFIXES, JSON_SUFFIXES, expand_paths
    from proc_ml.errors import DatasetError
    from proc_ml.fileio import check_output_folder
    from proc_ml.units import resolve_cell_size

    from .generate import prepare_output
    from .options import check_seed

    check_seed(args.seed)                     # before --overwrite can remove anything
    cell_size = resolve_cell_size(args.cell_size, what="--cell-size")
    if not args.overwrite:
        prepare_output(args.out, "import", False, owned_names())   # a non-empty --out: refused now
    check_output_folder(args.out, create=False)
    suffixes = ", ".join(GML_SUFFIXES + JSON_SUFFIXES)
    files = expand_paths(args.paths)          # listed once: the import reads these
    if not files:
        raise DatasetError("; ".join(no_city_files(p, suffixes) for p in args.paths))
    empty = [p for p in args.paths if Path(p).is_dir() and not any(f.parent == Path(p) for f in files)]
    start = time.perf_counter()
    result = import_city_files(files, cell_size=cell_size, method=args.method, crs=args.crs)
    buildings = result.buildings
    errors = [no_city_files(p, suffixes) for p in empty] + result.errors
    result.errors = errors
    written, report = {}, None
    if buildings:
        # --overwrite: the new dataset is written beside the old one and swapped in once it
        # is complete, so a failure while writing leaves the old dataset as it was
        staging = _staging_folder(args.out) if args.overwrite else None
        target = staging or Path(args.out)
        try:
            written = write_city_datasets(buildings, target, cell_size, licence=args.licence,
                                          attribution=args.attribution, seed=args.seed)
            report = write_import_report(target, result, cell_size, args.method)
        except BaseException:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if staging is not None:
            prepare_output(args.out, "import", True, owned_names())
            _swap_in(staging, Path(args.out))
            written = {str(Path(args.out) / Path(f).relative_to(staging)): m
                       for f, m in written.items()}
            report = Path(args.out) / report.relative_to(staging)
    labelled = sum(b.labels is not None for b in buildings)
    rotated = sum(abs(b.rotation_deg) > 0.5 for b in buildings)
    skipped = f"{len(result.skipped)} skipped (smaller than half a cell), " if result.skipped else ""
    print(f"imported {len(buildings)} buildings ({labelled} labelled, {len(buildings) - labelled} "
          f"massing to label, {rotated} turned to align their walls) at {cell_size:g} m cells "
          f"in {time.perf_counter() - start:.1f}s; {skipped}{len(errors)} failed")
    for folder, manifest in written.items():
        faces = manifest["stats"]["faces_per_part"]
        counts = ", ".join(f"{n} {c}" for n, c in faces.items() if c) or "no labels"
        print(f"  {folder}: {manifest['count']} buildings ({counts})")
    notes = [f"{b.source}: building {b.building_id}: {note}" for b in buildings for note in b.notes]
    _listed("note", notes, report)
    _listed("skipped", result.skipped, report)
    for line in errors:
        print(line, file=sys.stderr)
    return 2 if errors else 0


#: Prefix of the folder an ``--overwrite`` import writes into before swapping it in.
STAGING_PREFIX = ".import-staging."


def _staging_folder(out) -> Path:
    """A new hidden folder in ``out`` for the import to write into; earlier ones a killed
    import left there are removed first."""
    import secrets

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(STAGING_PREFIX + "*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
    staging = out / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
    staging.mkdir()
    return staging


def _swap_in(staging: Path, out: Path) -> None:
    """Move what the import wrote in ``staging`` into ``out`` (one rename per entry, on the
    same file system), then remove the empty staging folder."""
    import os

    for entry in sorted(staging.iterdir()):
        os.replace(entry, out / entry.name)
    staging.rmdir()


def no_city_files(folder, suffixes: str) -> str:
    """The line for a folder without city files, naming any archives it holds."""
    from proc_ml.citygml.importer import ARCHIVES

    folder = Path(folder)
    archives = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in ARCHIVES) \
        if folder.is_dir() else []
    hint = f"; unpack {', '.join(archives[:3])}{', ...' if len(archives) > 3 else ''} first" \
        if archives else ""
    return f"{folder}: no CityGML / CityJSON files ({suffixes}){hint}"


def _listed(what: str, lines: list[str], report, most: int = SHOWN) -> None:
    """The first ``most`` lines, then how many more the report holds."""
    for line in lines[:most]:
        print(f"  {what}: {line}")
    if len(lines) > most:
        print(f"  ... {len(lines) - most} more {what} lines in {report}")
