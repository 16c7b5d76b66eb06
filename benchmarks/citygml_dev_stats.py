"""The CityGML import on the 13 real LoD3 development buildings: the tables of docs/citygml.md.

    python benchmarks/citygml_dev_stats.py                      # per-building table (markdown)
    python benchmarks/citygml_dev_stats.py --compare --coverage # + occupancy methods, coverage
    python benchmarks/citygml_dev_stats.py --images docs/images --image-ids 4018106,4018193,4018265

The data folder defaults to ``shared/real/lod3-ingolstadt-dev`` (next to the repository, or
``/work/shared/...``). Everything is recomputed from the files; nothing is cached. The
buildings are CC BY-SA 4.0 (see the folder's README.md): pictures made from them are too.
Not a ``bench_*.py`` script: it needs the shared data and has no pass/fail target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proc_ml.citygml import read_city_file, voxelize_building  # noqa: E402
from proc_ml.citygml.importer import expand_paths  # noqa: E402
from proc_ml.errors import DatasetError  # noqa: E402
from proc_ml.grid import exterior_faces  # noqa: E402

CANDIDATES = (ROOT / "shared" / "real" / "lod3-ingolstadt-dev",
              Path("/work/shared/real/lod3-ingolstadt-dev"))


def load(folder: Path, cell: float, method: str = "flux"):
    """[(file name, ImportedBuilding, seconds)] and error lines for every building."""
    rows, errors = [], []
    for path in expand_paths([folder]):
        t0 = time.perf_counter()
        try:
            city = read_city_file(path)
        except DatasetError as exc:
            errors.append(str(exc))
            continue
        read_s = (time.perf_counter() - t0) / max(1, len(city.buildings))
        errors += city.errors
        for b in city.buildings:
            t1 = time.perf_counter()
            try:
                imp = voxelize_building(b, cell, method)
            except DatasetError as exc:
                errors.append(str(exc))
                continue
            rows.append((path.name, b, imp, read_s + time.perf_counter() - t1))
    return rows, errors


def _layers(values) -> str:
    return "/".join(str(v) for v in values)


def main_table(rows) -> str:
    head = ("| building | grid X×Y×Z | rotation ° | watertight (open edges m) | cells | wall | "
            "window | door | roof | ground | windows per layer | doors per layer | "
            "opening faces top/bottom | street sides | import s |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    totals = {}
    for name, b, imp, secs in rows:
        s = imp.stats
        faces = s.get("faces_per_part")
        part = (lambda p: str(faces[p])) if faces else (lambda p: "–")
        if faces:
            for k, v in faces.items():
                totals[k] = totals.get(k, 0) + v
        wt = "yes" if s["watertight"] else f"no ({s['open_edge_m']:g})"
        lines.append(
            f"| {imp.building_id} | {'×'.join(map(str, imp.occupancy.shape))} | "
            f"{imp.rotation_deg:.1f} | {wt} | {s['cells']} | {part('wall')} | {part('window')} | "
            f"{part('door')} | {part('roof')} | {part('ground')} | "
            f"{_layers(s['openings_per_layer']['Window'])} | {_layers(s['openings_per_layer']['Door'])} | "
            f"{s.get('opening_faces_top_bottom', '–')} | {' '.join(imp.street_sides) or '–'} | "
            f"{secs:.2f} |")
    n_water = sum(r[2].stats["watertight"] for r in rows)
    lines.append("")
    lines.append(f"{len(rows)} buildings, {n_water} watertight; labelled faces in all: "
                 + ", ".join(f"{k} {v}" for k, v in totals.items() if v) + "; total import "
                 f"{sum(r[3] for r in rows):.1f} s.")
    return "\n".join(lines)


def fmt_un(un) -> str:
    return f"{un['Window']:g} / {un['Door']:g}" if un else "–"


def quality_table(rows) -> str:
    """What the labelling rule had to deal with, per building."""
    out = ["| building | wall share within 4° of the rotation | openings turned round | "
           "openings not facing a side | opening m² no face took (window / door) | "
           "openings with no face | roof-step side faces (labelled wall) | shell vs grid m³ |",
           "|---|---|---|---|---|---|---|---|"]
    for _, _, imp, _ in rows:
        s = imp.stats
        un = s.get("unassigned_opening_m2")
        out.append(f"| {imp.building_id} | {s['rotation_share']:.2f} | "
                   f"{s['openings']['turned_round']} | {s['openings']['not_facing_a_side']} | "
                   f"{fmt_un(un)} | "
                   f"{s.get('openings_without_face', '–')} | {s['roof_step_side_faces']} | "
                   f"{s['shell_volume_m3']:.0f} / {s['grid_volume_m3']:.0f} |")
    return "\n".join(out)


def compare_table(folder: Path, cell: float, rows) -> str:
    """Cells per occupancy method against the shell's own volume (divergence theorem)."""
    out = ["| building | watertight | shell volume m³ | flux cells (m³) | winding cells (m³) | "
           "flood cells (m³) | flux ≠ winding cells | flux / winding / flood s |",
           "|---|---|---|---|---|---|---|---|"]
    for name, b, imp, _ in rows:
        cells, secs = {}, {}
        for method in ("flux", "winding", "flood"):
            t = time.perf_counter()
            other = voxelize_building(b, cell, method, check_watertight=False)
            secs[method] = time.perf_counter() - t
            cells[method] = other.occupancy.astype(bool)
        v = cell ** 3
        out.append(f"| {imp.building_id} | {'yes' if imp.stats['watertight'] else 'no'} | "
                   f"{imp.stats['shell_volume_m3']:.0f} | "
                   + " | ".join(f"{c.sum()} ({c.sum() * v:.0f})" for c in cells.values())
                   + f" | {int((cells['flux'] ^ cells['winding']).sum())} | "
                   + " / ".join(f"{secs[m]:.2f}" for m in secs) + " |")
    return "\n".join(out)


def coverage_report(rows) -> str:
    """Distribution of window / door coverage over the side faces that have any."""
    win, door = [], []
    for _, _, imp, _ in rows:
        if imp.opening_cover is None:
            continue
        ext = exterior_faces(imp.occupancy)[..., :4]
        c = imp.opening_cover[..., :4, :][ext]
        win.append(c[:, 0])
        door.append(c[:, 1])
    win, door = np.concatenate(win), np.concatenate(door)
    edges = [0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.16, 0.20, 0.30, 0.40, 0.60, 1.0001]
    wh = np.histogram(win[win > 0], bins=edges)[0]
    dh = np.histogram(door[door > 0], bins=edges)[0]
    lines = ["| coverage | " + " | ".join(f"{a:.2f}–{min(b, 1):.2f}" for a, b in zip(edges, edges[1:]))
             + " |", "|---" * (len(edges)) + "|",
             "| side faces with windows | " + " | ".join(map(str, wh)) + " |",
             "| side faces with doors | " + " | ".join(map(str, dh)) + " |"]
    return "\n".join(lines)


def render(rows, ids, out_dir: Path) -> list[Path]:
    """One PNG per building: labelled faces in 3D, and the street side with its openings."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from proc_ml.meshing import quad_mesh
    from proc_ml.procedural.parts import DEFAULT_COLOURS

    out_dir.mkdir(parents=True, exist_ok=True)
    kind_colour = {"WallSurface": "0.55", "RoofSurface": "tab:red", "GroundSurface": "k",
                   "Window": "tab:blue", "Door": "saddlebrown", "OuterCeilingSurface": "tab:green",
                   "OuterFloorSurface": "tab:green", "ClosureSurface": "m"}
    written = []
    for name, b, imp, _ in rows:
        if imp.building_id not in ids or imp.labels is None:
            continue
        fig = plt.figure(figsize=(11, 4.6))
        ax = fig.add_subplot(1, 2, 1, projection="3d")
        mesh = quad_mesh(imp.occupancy, imp.labels, imp.cell_size)
        quads = mesh.vertices.reshape(-1, 4, 3)
        colours = [np.array(DEFAULT_COLOURS[imp.parts[p]]) / 255 for p in mesh.parts]
        ax.add_collection3d(Poly3DCollection(quads, facecolors=colours, edgecolors="0.3",
                                             linewidths=0.4))
        size = np.array(imp.occupancy.shape) * imp.cell_size
        ax.set_xlim(0, size.max()); ax.set_ylim(0, size.max()); ax.set_zlim(0, size.max())
        # the side with the most window / door faces
        opening = np.isin(imp.labels[..., :4], [imp.parts.index("window"), imp.parts.index("door")])
        street = ("+x", "-x", "+y", "-y")[int(np.argmax(opening.sum(axis=(0, 1, 2))))]
        view = {"+x": 20, "-x": 200, "+y": 110, "-y": -70}[street]
        ax.view_init(elev=22, azim=view)
        ax.set_title(f"{imp.building_id}: labelled faces (street {' '.join(imp.street_sides)})",
                     fontsize=9)
        ax.set_axis_off()
        # the street side, face on: grid faces of that direction and the source polygons
        ax2 = fig.add_subplot(1, 2, 2)
        d = ("+x", "-x", "+y", "-y").index(street)
        u = 1 if d < 2 else 0
        faces = np.argwhere(imp.labels[..., d] >= 0)
        depth_axis = 0 if d < 2 else 1
        order = np.argsort(faces[:, depth_axis] * (1 if d % 2 else -1))   # nearest drawn last
        for f in faces[order[::-1]]:
            part = imp.parts[imp.labels[tuple(f) + (d,)]]
            ax2.add_patch(plt.Rectangle((f[u] * imp.cell_size, f[2] * imp.cell_size),
                                        imp.cell_size, imp.cell_size,
                                        fc=np.array(DEFAULT_COLOURS[part]) / 255, ec="0.3", lw=0.6,
                                        alpha=0.85))
        for s in b.surfaces:
            if s.kind not in kind_colour:
                continue
            for p in s.polygons:
                g = imp.world_to_grid(p.exterior)
                n = np.cross(g[1] - g[0], g[2] - g[0])
                if s.kind == "WallSurface" and abs(n[depth_axis]) < 0.5 * np.linalg.norm(n):
                    continue
                ax2.plot(np.r_[g[:, u], g[0, u]], np.r_[g[:, 2], g[0, 2]],
                         color=kind_colour[s.kind], lw=0.7 if s.kind in ("Window", "Door") else 0.4)
        ax2.set_aspect("equal")
        ax2.set_xlabel(f"grid {'xy'[u]} (m)")
        ax2.set_ylabel("height above lowest point (m)")
        ax2.set_title(f"{street} side: grid faces and source polygons "
                      f"(blue windows, brown doors)", fontsize=9)
        fig.text(0.01, 0.01, "Data: LOD3 Road Space Models (Ingolstadt), CC BY-SA 4.0",
                 fontsize=7, color="0.4")
        fig.tight_layout()
        path = out_dir / f"citygml_{imp.building_id}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=None,
                        help="folder of CityGML / CityJSON files (default: the dev set)")
    parser.add_argument("--cell-size", type=float, default=3.0)
    parser.add_argument("--compare", action="store_true", help="occupancy methods table")
    parser.add_argument("--coverage", action="store_true", help="opening coverage histogram")
    parser.add_argument("--images", type=Path, default=None, help="write PNGs into this folder")
    parser.add_argument("--image-ids", default="4018106,4018193,4018265")
    args = parser.parse_args(argv)
    folder = args.data or next((c for c in CANDIDATES if c.is_dir()), None)
    if folder is None or not folder.is_dir():
        print(f"citygml_dev_stats: no data folder (tried {', '.join(map(str, CANDIDATES))})",
              file=sys.stderr)
        return 2
    rows, errors = load(folder, args.cell_size)
    print(f"## {folder} at {args.cell_size:g} m cells\n")
    print(main_table(rows))
    for e in errors:
        print("error:", e)
    print("\n### What the rule had to deal with\n")
    print(quality_table(rows))
    if args.compare:
        print("\n### Occupancy methods\n")
        print(compare_table(folder, args.cell_size, rows))
    if args.coverage:
        print("\n### Opening coverage of side faces\n")
        print(coverage_report(rows))
    if args.images:
        for p in render(rows, set(args.image_ids.split(",")), args.images):
            print("wrote", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
