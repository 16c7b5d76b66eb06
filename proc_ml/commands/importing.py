"""``proc-ml import citygml PATH... --out D``: real buildings (CityGML / CityJSON) as
proc-ml datasets (``proc_ml.citygml``; docs/citygml.md has the rules)."""

from __future__ import annotations

import sys
import time


def register(sub) -> None:
    parser = sub.add_parser("import", help="real buildings in: CityGML / CityJSON to datasets",
                            description="Import data from other tools as proc-ml datasets.")
    kinds = parser.add_subparsers(dest="kind", metavar="FORMAT", required=True)
    p = kinds.add_parser(
        "citygml", help="CityGML 1.0-3.0 (.gml/.xml) and CityJSON (.json/.city.json) buildings",
        description="Voxelise real buildings into proc-ml datasets. LoD3 buildings with windows "
                    "and doors become a labelled dataset in OUT (a part on every exterior face, by "
                    "the opening-coverage rule of docs/citygml.md); LoD1/LoD2 buildings become a "
                    "massing-to-label dataset in OUT/massing. Each building is turned about z so "
                    "its walls run along the grid axes (recorded in its grid file). A building that "
                    "cannot be imported is one line on stderr and the import goes on.")
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
    p.set_defaults(func=run)


def run(args) -> int:
    from proc_ml.citygml import import_city_files
    from proc_ml.citygml.dataset import write_city_datasets
    from proc_ml.units import resolve_cell_size

    cell_size = resolve_cell_size(args.cell_size, what="--cell-size")
    start = time.perf_counter()
    buildings, errors = import_city_files(args.paths, cell_size=cell_size, method=args.method,
                                          crs=args.crs)
    written = write_city_datasets(buildings, args.out, cell_size, licence=args.licence,
                                  attribution=args.attribution, seed=args.seed) if buildings else {}
    labelled = sum(b.labels is not None for b in buildings)
    rotated = sum(abs(b.rotation_deg) > 0.5 for b in buildings)
    print(f"imported {len(buildings)} buildings ({labelled} labelled, {len(buildings) - labelled} "
          f"massing to label, {rotated} turned to align their walls) at {cell_size:g} m cells "
          f"in {time.perf_counter() - start:.1f}s; {len(errors)} failed")
    for folder, manifest in written.items():
        faces = manifest["stats"]["faces_per_part"]
        counts = ", ".join(f"{n} {c}" for n, c in faces.items() if c) or "no labels"
        print(f"  {folder}: {manifest['count']} buildings ({counts})")
    for line in errors:
        print(line, file=sys.stderr)
    return 2 if errors else 0
