"""Warm cook latency of the DCC prediction paths, 16^3 and 32^3 buildings, p50/p95.

* Houdini: ``hda_scripts/predict_parts_sop.py`` cooked against the in-repo fake ``hou``
  (tests/fake_hou): adapter reads, voxel grid, features + inference, per-prim arrays and
  the bulk attribute writes; for voxel-point input and polygon-massing input. The stage
  breakdown times the same functions the script calls, one by one.
* Blender: ``bpy.ops.object.proc_ml_predict_parts`` on a massing mesh (real bpy), when
  bpy is installed.

Warm = the model session is already loaded (the node's cached user data / the add-on's
session cache); the first cook, which loads the model, is excluded.

    python benchmarks/bench_dcc.py                      # trains + exports a model first
    python benchmarks/bench_dcc.py --model model.onnx   # any exported parts model
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fake_hou"))
GOAL_MS = 10.0
CELL = 3.0
#: The street side the artist gives a street-aware model (as the SOP's Street Sides / the
#: operator's Street sides); a model without a street input gets none.
STREET = "-y"


def build_model(work: Path, config: str) -> Path:
    """A massing-only model from a one-epoch run (latency does not depend on the weights)."""
    run = [sys.executable, "-m", "proc_ml"]
    steps = [["generate", "buildings", "--count", "16", "--seed", "1", "--out", str(work / "ds"),
              "--formats", "grids", "--workers", "1", "--quiet"],
             ["train", "building-parts", "--data", str(work / "ds"), "--out", str(work / "run"),
              "--config", config, "--set", "dataset.use_style=false", "--set", "training.epochs=1",
              "--set", "dataset.max_buildings=8", "--quiet"],
             ["export", "onnx", str(work / "run"), "--out", str(work / "model.onnx")]]
    for args in steps:
        subprocess.run(run + args, check=True, capture_output=True)
    return work / "model.onnx"


def buildings() -> dict:
    from proc_ml.procedural import generate_building, load_generator_config

    out = {}
    for side in (16, 32):
        cfg = load_generator_config(None, [f"grid.size=[{side},{side},{side}]"])
        # The tallest of a few seeds, so the building fills its grid.
        candidates = [generate_building(cfg, 7, i) for i in range(6)]
        out[side] = max(candidates, key=lambda b: int(b.occupancy.sum()))
    return out


def street_of(model: Path) -> tuple[str, ...]:
    """``(STREET,)`` for a street-aware model, else no street side (the cook's settings)."""
    from proc_ml.runtime import PartsPredictor

    return (STREET,) if PartsPredictor.open(model, "cpu").with_street else ()


def percentiles(times) -> tuple[float, float]:
    ms = np.asarray(times) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()                              # warm-up (loads, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return percentiles(times)


def massing_mesh(occupancy):
    """The building's surface as a modelled massing: quads sharing their corner points."""
    from proc_ml.meshing import quad_mesh

    quads = quad_mesh(occupancy, None, CELL)
    vertices, index = np.unique(np.round(quads.vertices, 6), axis=0, return_inverse=True)
    return vertices, index.reshape(-1, 4)


# -- Houdini (fake hou) -------------------------------------------------------------------
def houdini_inputs(occupancy):
    import hou
    from proc_ml.dcc.geometry import from_z_up

    cells = np.stack(np.nonzero(occupancy), axis=1)
    points = hou.Geometry()
    points.createPoints(from_z_up((cells + 0.5) * CELL, "y").tolist())
    vertices, faces = massing_mesh(occupancy)
    polygons = hou.Geometry()
    polygons.createPoints(from_z_up(vertices, "y").tolist())
    polygons.createPolygons(faces[:, ::-1].tolist())
    return {"voxel points": points, "polygons": polygons}


def bench_houdini(model: Path, occupancy, repeats: int,
                  symmetry: str = "model") -> list[tuple[str, float, float]]:
    import hou

    code = compile((REPO / "hda_scripts" / "predict_parts_sop.py").read_text(),
                   "predict_parts_sop.py", "exec")
    rows = []
    inputs = houdini_inputs(occupancy)
    runs = [(kind, geo, 0) for kind, geo in inputs.items()] + [("voxel points", inputs["voxel points"], 1)]
    for kind, geo, threads in runs:
        node = hou.make_sop_node({"model": str(model), "device": "cpu", "cellsize": CELL,
                                  "inputtype": "auto", "upaxis": "y", "threads": threads,
                                  "symmetry": symmetry, "street": " ".join(street_of(model))}, geo)
        label = f"houdini cook, {kind}" + (f", threads={threads}" if threads else "")
        rows.append((label, *timed(lambda: hou.cook(node, code), repeats)))
    rows += houdini_stages(model, houdini_inputs(occupancy)["voxel points"], repeats, symmetry)
    return rows


def houdini_stages(model: Path, geo, repeats: int,
                   symmetry: str = "model") -> list[tuple[str, float, float]]:
    """The voxel-points cook split into the calls the script makes."""
    import hou
    from proc_ml.dcc import houdini as hgeo
    from proc_ml.dcc.geometry import grid_from_cell_points, to_z_up
    from proc_ml.dcc.predict import open_session, symmetry_choice
    from proc_ml.dcc.prims import labelled_prims

    session = open_session(model, "cpu")
    points = hgeo.point_positions(geo)
    grid = grid_from_cell_points(to_z_up(points, "y"), CELL)
    chosen = session.predictor.check_symmetry(symmetry_choice(symmetry))
    street = street_of(model) or None
    labels, probs = session.predictor.predict(grid.occupancy, street=street, symmetry=chosen)
    prims = labelled_prims(grid, labels, probs, session.parts, session.colours, "y", True)
    out = hou.Geometry()
    stages = {
        "  read P (adapter)": lambda: hgeo.point_positions(geo),
        "  voxel grid from points": lambda: grid_from_cell_points(to_z_up(points, "y"), CELL),
        f"  features + inference (runtime, symmetry {chosen})":
            lambda: session.predictor.predict(grid.occupancy, street=street, symmetry=chosen),
        "  per-prim arrays (quads, probs, Cd)": lambda: labelled_prims(
            grid, labels, probs, session.parts, session.colours, "y", True),
        "  attribute write (adapter + fake hou)": lambda: hgeo.write_labelled_prims(out, prims),
    }
    if chosen != "none":            # side by side: what averaging over the turns costs
        stages["  features + inference (runtime, one network run)"] = \
            lambda: session.predictor.predict(grid.occupancy, street=street, symmetry="none")
    return [(name, *timed(fn, repeats)) for name, fn in stages.items()]


# -- Blender (real bpy) -------------------------------------------------------------------
def bench_blender(model: Path, blds: dict, repeats: int,
                  symmetry: str = "model") -> list[tuple[str, float, float]]:
    try:
        import bpy
    except ImportError:
        return []
    sys.path.insert(0, str(REPO / "blender_addon"))
    import proc_ml_parts

    bpy.ops.wm.read_factory_settings(use_empty=True)
    proc_ml_parts.register()
    rows = []
    try:
        for side, b in blds.items():
            vertices, faces = massing_mesh(b.occupancy)
            mesh = bpy.data.meshes.new(f"massing{side}")
            mesh.from_pydata(vertices.tolist(), [], faces.tolist())
            obj = bpy.data.objects.new(f"massing{side}", mesh)
            bpy.context.scene.collection.objects.link(obj)
            for other in bpy.context.scene.objects:
                other.select_set(other is obj)
            bpy.context.view_layer.objects.active = obj

            def run():
                result = bpy.ops.object.proc_ml_predict_parts(
                    model_path=str(model), device="cpu", cell_size=CELL,
                    street_sides=set(street_of(model)),
                    symmetry="MODEL" if symmetry == "model" else symmetry)
                assert result == {"FINISHED"}, result

            rows.append((f"blender operator {side}^3, polygons", *timed(run, repeats)))
    finally:
        proc_ml_parts.unregister()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="exported parts model (default: train + export one)")
    parser.add_argument("--config", default="parts_unet3d_massing",
                        help="training config for the built model (default parts_unet3d_massing)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-blender", action="store_true")
    parser.add_argument("--symmetry", default="model", choices=("model", "none", "rotate", "dihedral"),
                        help="the SOP's / operator's symmetry averaging (default: the model's own)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_dcc_") as tmp:
        model = Path(args.model) if args.model else build_model(Path(tmp), args.config)
        from proc_ml.runtime import load_model
        meta = load_model(model, "cpu").metadata
        blds = buildings()
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; model {meta.family} "
              f"(inputs {len(meta.input_names)}, parts {len(meta.info.parts)}, symmetry "
              f"{meta.info.symmetry}; cooked with {args.symmetry}), CPU provider")
        print(f"{'path':48s} {'cells':>6s} {'faces':>6s} {'p50 ms':>8s} {'p95 ms':>8s}")
        rows16 = None
        for side, b in blds.items():
            from proc_ml.grid import exterior_faces
            cells, faces = int(b.occupancy.sum()), int(exterior_faces(b.occupancy).sum())
            rows = bench_houdini(model, b.occupancy, args.repeats, args.symmetry)
            rows16 = rows if side == 16 else rows16
            for name, p50, p95 in rows:
                print(f"{name + f' [{side}^3]':48s} {cells:6d} {faces:6d} {p50:8.2f} {p95:8.2f}")
        if not args.no_blender:
            for name, p50, p95 in bench_blender(model, blds, max(10, args.repeats // 5), args.symmetry):
                print(f"{name:48s} {'':6s} {'':6s} {p50:8.2f} {p95:8.2f}")
        cook = dict((n, p50) for n, p50, _ in rows16)["houdini cook, voxel points"]
        print(f"goal: warm 16^3 Houdini cook <= {GOAL_MS:g} ms on CPU: p50 {cook:.2f} ms "
              f"({'met' if cook <= GOAL_MS else 'NOT met'}; ratio {cook / GOAL_MS:.2f} of the goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
