"""``proc-ml demo``: the whole product in one command, sized for a 2-core CPU.

generate facade-grammar buildings -> train the street-aware parts U-Net briefly -> export
ONNX (parity-checked, decision rule fitted on the validation split) -> predict parts on
buildings generated with another seed (never seen in training) -> label a real building
(a committed LoD3 CityGML file of the development set) with the model just trained and
with the model installed with proc-ml, beside the geometry-only baseline -> PNG pictures
and a short report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

DEMO_OUT = "proc_ml_demo"
#: The real LoD3 building the demo labels (Ingolstadt development set, CC BY-SA 4.0).
REAL_EXAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "citygml" / "4018265.xml"
#: Demo training: the shipped street-aware config, smaller and shorter.
DEMO_OVERRIDES = ("model.width=8", "training.epochs=6")
#: Everything the demo writes in its output folder: a re-run replaces these, and only into a
#: folder that holds nothing else (a user's folder is never cleared).
OWNED = ("data", "unseen", "run", "model.onnx", "demo.png", "real", "real_pictures",
         "report.json", "report.md")


def register(sub) -> None:
    p = sub.add_parser("demo", help="generate, train, export and predict end to end (a few minutes on CPU)",
                       description="Run the whole pipeline on CPU in a few minutes and write a "
                                   "picture and a report.")
    p.add_argument("--out", default=DEMO_OUT, help=f"output folder (default ./{DEMO_OUT})")
    p.add_argument("--count", type=int, default=1000, help="training buildings (default 1000)")
    p.add_argument("--unseen", type=int, default=100, help="unseen buildings to predict (default 100)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    p.add_argument("--grid", type=int, default=12,
                   help="grid size N of the N^3 buildings (default 12; the demo trains in about "
                        "two minutes on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training data; unseen data uses seed+1")
    p.add_argument("--real", default=None, metavar="CITYGML",
                   help=f"real building(s) to label (default: {REAL_EXAMPLE.name}, a committed "
                        f"development building, when this checkout has it)")
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
    from proc_ml.trainers import fit, load_train_config, resolve_config_path

    out = Path(args.out)
    progress = not args.quiet
    _check_args(args)
    source = Path(args.real) if args.real else REAL_EXAMPLE
    # the real building is read first: a file that cannot be labelled stops the demo before
    # anything is generated or an earlier demo replaced
    real_import = _import_real(source) if args.real or REAL_EXAMPLE.is_file() else None
    gen_cfg = load_generator_config(overrides=[f"grid.size=[{args.grid},{args.grid},{args.grid}]"])
    replaced = _prepare_output(out)
    if replaced:
        print(f"replacing the earlier demo in {out} ({', '.join(replaced)})")
    timings: dict[str, float] = {}

    with _stage("generate", timings):
        generate_dataset(gen_cfg, args.count, args.seed, out / "data", formats=("grids",), progress=progress)
        generate_dataset(gen_cfg, args.unseen, args.seed + 1, out / "unseen", formats=("grids",),
                         progress=progress)
    with _stage("train parts-unet3d (massing + street sides)", timings):
        overrides = list(DEMO_OVERRIDES) + ([f"training.epochs={args.epochs}"] if args.epochs else [])
        config = load_train_config("building-parts", resolve_config_path("parts_unet3d_street"),
                                   overrides)
        summary = fit(config, out / "data", out / "run", progress=progress)
    with _stage("export onnx", timings):
        exported = export_run(out / "run", out / "model.onnx", data_dir=out / "data")
    with _stage("predict unseen buildings", timings):
        result = _predict_unseen(out / "model.onnx", out / "unseen")
    picture = out / "demo.png"
    write_bytes(picture, _picture(result))
    real = None
    if real_import is not None:
        with _stage("label a real building", timings):
            real = _real_building(source, real_import, out / "model.onnx", out)
    report = _report(args, timings, summary, exported, result, picture, real)
    write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(out / "report.md", _report_markdown(report))
    print(_report_markdown(report))
    return 0


def _check_args(args) -> None:
    """The demo's numbers and --real, before anything is written."""
    from proc_ml.errors import ConfigError
    from proc_ml.procedural.config import GRID_SIZE_RANGE

    from .options import MAX_SEED, check_seed

    low, high = GRID_SIZE_RANGE
    if not low <= args.grid <= high:
        raise ConfigError(f"--grid must be between {low} and {high}, got {args.grid}")
    for name in ("count", "unseen", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}")
    check_seed(args.seed, most=MAX_SEED - 1)      # the unseen buildings use seed + 1
    if args.real and not Path(args.real).exists():
        raise ConfigError(f"--real {args.real}: file not found")


def _prepare_output(out: Path) -> list[str]:
    """Make ``out`` ready: a new or empty folder, or an earlier demo's (only ``OWNED`` names
    and temp files in it), whose files are removed (``generate``'s ``prepare_output``).
    Anything else there: one line, nothing touched. Returns the names removed."""
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import TEMP_FILE, check_output_folder

    from .generate import prepare_output

    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir()
                         if p.name not in OWNED and not TEMP_FILE.match(p.name))
        if foreign:
            shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
            raise ConfigError(f"--out {out}: holds files the demo did not write ({shown}); "
                              f"choose another --out (a demo re-run replaces only its own "
                              f"{', '.join(OWNED)})")
    check_output_folder(out)
    return prepare_output(out, "demo", True, OWNED)


def _import_real(source: Path) -> list:
    """The labelled buildings of the real city file(s) ``source`` (read before the demo
    writes anything); one line naming the file when none can be labelled."""
    from proc_ml.citygml import import_city_files
    from proc_ml.citygml.importer import GML_SUFFIXES, JSON_SUFFIXES, expand_paths
    from proc_ml.errors import ConfigError

    from .importing import no_city_files

    if not expand_paths([source]):
        raise ConfigError(f"--real {no_city_files(source, ', '.join(GML_SUFFIXES + JSON_SUFFIXES))}")
    result = import_city_files([source])
    labelled = [b for b in result.buildings if b.labels is not None]
    if not labelled:
        why = "; ".join(result.errors + result.skipped) or (
            "no building with modelled windows or doors (LoD3) to label and score")
        raise ConfigError(f"--real {source}: {why}")
    return labelled


def _real_building(source: Path, labelled: list, trained: Path, out: Path) -> dict:
    """Score the demo's model and the installed one on the imported real building(s)
    ``labelled`` (with their street sides), beside the geometry-only baseline; a picture per
    building. The committed example's licence is recorded; a user's file keeps the licence
    its own metadata states, if any."""
    from proc_ml import real_buildings
    from proc_ml.citygml.dataset import write_city_datasets
    from proc_ml.errors import ProcMLError
    from proc_ml.runtime import PartsPredictor, default_model

    licence = ("CC BY-SA 4.0 (see the source's LICENSE)"
               if source.resolve() == REAL_EXAMPLE.resolve() else None)
    write_city_datasets(labelled, out / "real", labelled[0].cell_size, licence=licence)
    models = {"demo model": PartsPredictor(trained, device="cpu")}
    try:
        models["installed model"] = PartsPredictor(default_model("building-parts"), device="cpu")
    except ProcMLError:
        pass
    real = real_buildings.load_real(out / "real")
    result = real_buildings.evaluate(real, models, pictures=out / "real_pictures")
    scores = {name: round(r["all"]["accuracy"], 4) for name, r in result["systems"].items()
              if "without street" not in name}
    return {"source": str(source), "buildings": result["buildings"],
            "street": [list(b.street) for b in real.buildings], "face_accuracy": scores,
            "pictures": result["pictures"]}


def _predict_unseen(model_path: Path, data_dir: Path) -> dict:
    """Predict every unseen building with the torch-free runtime; pool the face accuracy."""
    import numpy as np

    from proc_ml.datasets import open_dataset
    from proc_ml.metrics import confusion_matrix
    from proc_ml.runtime import PartsPredictor

    predictor = PartsPredictor(model_path)
    dataset = open_dataset(data_dir)
    records = [dataset.building(i) for i in dataset.ids()]
    start = time.perf_counter()
    predictions = predictor.predict_many([r.occupancy for r in records], [r.style for r in records],
                                         [r.street_sides for r in records])
    seconds = time.perf_counter() - start
    K = len(predictor.parts)
    confusion = np.zeros((K, K), dtype=np.int64)
    perfect = 0
    for record, (labels, _) in zip(records, predictions):
        mask = record.labels >= 0
        confusion += confusion_matrix(record.labels[mask], labels[mask], K)
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


def _report(args, timings, summary, exported, result, picture, real=None) -> dict:
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
        "real_building": real,
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
    real = report.get("real_building")
    if real:
        lines += ["", f"Real building {', '.join(real['buildings'])} ({real['source']}, street "
                      f"{', '.join(' '.join(s) for s in real['street'])}): face accuracy "
                  + ", ".join(f"{name} {acc:.3f}" for name, acc in real["face_accuracy"].items())
                  + f"; pictures: {', '.join(real['pictures'])}"]
    return "\n".join(lines) + "\n"
