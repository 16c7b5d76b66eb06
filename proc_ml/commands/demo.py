"""``proc-ml demo``: the whole product in one command, sized for a 2-core CPU.

generate a dataset -> train parts-unet3d briefly -> export ONNX (parity-checked) ->
predict parts on buildings generated with another seed (never seen in training) ->
write a PNG picture (prediction next to ground truth) and a short report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

DEMO_OUT = "proc_ml_demo"


def register(sub) -> None:
    p = sub.add_parser("demo", help="generate, train, export and predict end to end (a few minutes on CPU)",
                       description="Run the whole pipeline on CPU in a few minutes and write a "
                                   "picture and a report.")
    p.add_argument("--out", default=DEMO_OUT, help=f"output folder (default ./{DEMO_OUT})")
    p.add_argument("--count", type=int, default=1500, help="training buildings (default 1500)")
    p.add_argument("--unseen", type=int, default=100, help="unseen buildings to predict (default 100)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    p.add_argument("--grid", type=int, default=16,
                   help="grid size N of the N^3 buildings (default 16; the demo trains in about a "
                        "minute on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training data; unseen data uses seed+1")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _stage(name: str, timings: dict):
    class _Timer:
        def __enter__(self):
            print(f"== {name}", flush=True)
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.start, 1)
    return _Timer()


def run(args) -> int:
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.fileio import write_bytes, write_text
    from proc_ml.procedural import load_generator_config
    from proc_ml.trainers import fit, load_train_config
    from proc_ml.trainers.config import default_config_path

    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_output_folder

    for name, value, low, high in (("--count", args.count, 10, 1_000_000),
                                   ("--unseen", args.unseen, 1, 100_000),
                                   ("--grid", args.grid, 8, 64),
                                   ("--epochs", args.epochs or 1, 1, 10_000)):
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    out = check_output_folder(args.out)
    progress = not args.quiet
    gen_cfg = load_generator_config(overrides=[f"grid.size=[{args.grid},{args.grid},{args.grid}]"])
    timings: dict[str, float] = {}

    with _stage("generate", timings):
        generate_dataset(gen_cfg, args.count, args.seed, out / "data", formats=("grids",), progress=progress)
        generate_dataset(gen_cfg, args.unseen, args.seed + 1, out / "unseen", progress=progress)
    with _stage("train parts-unet3d", timings):
        overrides = [f"training.epochs={args.epochs}"] if args.epochs else []
        config = load_train_config("building-parts", default_config_path("building-parts"), overrides)
        summary = fit(config, out / "data", out / "run", progress=progress)
    with _stage("export onnx", timings):
        exported = export_run(out / "run", out / "model.onnx", data_dir=out / "data")
    with _stage("predict unseen buildings", timings):
        result = _predict_unseen(out / "model.onnx", out / "unseen")
    picture = out / "demo.png"
    write_bytes(picture, _picture(result))
    report = _report(args, timings, summary, exported, result, picture)
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "report.md", _report_markdown(report))
    print(_report_markdown(report))
    return 0


def _predict_unseen(model_path: Path, data_dir: Path) -> dict:
    """Predict every unseen building with the torch-free runtime; pool the face accuracy."""
    import numpy as np

    from proc_ml.datasets import open_dataset
    from proc_ml.runtime import PartsPredictor

    predictor = PartsPredictor(model_path)
    dataset = open_dataset(data_dir)
    records = [dataset.building(i) for i in dataset.ids()]
    start = time.perf_counter()
    predictions = predictor.predict_many([r.occupancy for r in records], [r.style for r in records])
    seconds = time.perf_counter() - start
    K = len(predictor.parts)
    confusion = np.zeros((K, K), dtype=np.int64)
    perfect = 0
    for record, (labels, _) in zip(records, predictions):
        mask = record.labels >= 0
        np.add.at(confusion, (record.labels[mask], labels[mask]), 1)
        perfect += bool((labels[mask] == record.labels[mask]).all())
    return {"parts": predictor.parts, "records": records, "predictions": predictions,
            "confusion": confusion, "perfect": perfect, "seconds": seconds,
            "provider": predictor.model.providers[0]}


def _picture(result: dict) -> bytes:
    """Predicted vs true parts for a few unseen buildings of different archetypes."""
    from proc_ml.meshing import quad_mesh
    from proc_ml.procedural import Vocabulary
    from proc_ml.render import render_parts

    shown, seen = [], set()
    for record, (labels, _) in zip(result["records"], result["predictions"]):
        if record.archetype not in seen and len(shown) < 3:
            seen.add(record.archetype)
            shown.append((record, labels))
    meshes, titles = [], []
    for record, labels in shown:
        meshes += [quad_mesh(record.occupancy, labels), quad_mesh(record.occupancy, record.labels)]
        titles += [f"{record.archetype}: predicted", f"{record.archetype}: generated"]
    colours = Vocabulary(tuple(result["parts"])).colours()
    return render_parts(meshes, result["parts"], colours, titles=titles, columns=2)


def _report(args, timings, summary, exported, result, picture) -> dict:
    from proc_ml.metrics import per_class_scores

    confusion = result["confusion"]
    total = int(confusion.sum())
    per_part = {name: {"faces": c["support"], "f1": round(c["f1"], 4)}
                for name, c in per_class_scores(confusion, result["parts"]).items() if c["support"]}
    n = len(result["records"])
    return {
        "unseen_face_accuracy": round(float(confusion.trace() / total), 5),
        "unseen_buildings": n,
        "unseen_buildings_all_faces_right": round(result["perfect"] / n, 4),
        "unseen_faces": total,
        "per_part": per_part,
        "best_validation": summary.get("best"),
        "onnx": {"path": exported["out"], "max_abs_diff": exported["max_abs_diff"],
                 "exporter": exported["exporter"]},
        "inference": {"provider": result["provider"], "buildings": n,
                      "ms_per_building": round(1000 * result["seconds"] / n, 2)},
        "timings_s": {**timings, "total": round(sum(timings.values()), 1)},
        "training_buildings": args.count,
        "grid_size": [args.grid] * 3,
        "picture": str(picture),
    }


def _report_markdown(report: dict) -> str:
    lines = [
        "# proc-ml demo report", "",
        f"- unseen buildings: {report['unseen_buildings']} ({report['unseen_faces']} faces), "
        f"face accuracy **{report['unseen_face_accuracy']:.2%}**, every face right on "
        f"{report['unseen_buildings_all_faces_right']:.0%} of buildings",
        f"- ONNX: {report['onnx']['path']} (max |onnxruntime - torch| = {report['onnx']['max_abs_diff']:.1e})",
        f"- inference: {report['inference']['ms_per_building']} ms per building on "
        f"{report['inference']['provider']}",
        f"- picture: {report['picture']}",
        "- time: " + ", ".join(f"{k} {v}s" for k, v in report["timings_s"].items()),
        "", "| part | faces | F1 |", "|---|---:|---:|",
    ]
    lines += [f"| {name} | {v['faces']} | {v['f1']:.3f} |" for name, v in report["per_part"].items()]
    return "\n".join(lines) + "\n"
