"""Fine-tuning on real buildings, scored on buildings it never saw: leave-one-file-out.

"I give examples, you figure out the rules" with real examples: a studio that has labelled
some of its real buildings fine-tunes the installed model on them (``proc-ml finetune``, the
shipped ``parts_finetune`` recipe, nothing tuned on these buildings) and predicts the rest.
On the real development set that is measured by cross-validation: for each source file,
the installed model is fine-tuned on the buildings of every other file and predicts the
buildings of that file, so each building is labelled by a model that never saw it (nor its
neighbours in the same file). The predictions are then scored exactly as
``bench_real_buildings.py`` scores a model (``proc_ml.real_buildings``: all faces and the
street facades, the street sides given), beside the installed model and the two baselines
on the same faces, and checked against the real-building targets.

    python benchmarks/bench_real_finetune.py                  # the 13 development files
    python benchmarks/bench_real_finetune.py --threads 2 --set training.epochs=60

Writes ``real_finetune.md`` and ``real_finetune.json`` into ``--out``; folds, runs and
models are cached in ``--work`` (a fold is retrained when its command or the model it starts
from changes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_buildings import (DEV_SET, check_targets, default_model_path, import_real,  # noqa: E402
                                  init_digest)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--citygml", nargs="+", default=[str(DEV_SET)],
                   help="city files or folders (default: the development set)")
    p.add_argument("--init", default="default", help="model to fine-tune (default: the installed one)")
    p.add_argument("--config", default="parts_finetune", help="fine-tuning config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every fold (repeatable)")
    p.add_argument("--threads", type=int, default=2, help="training.threads (default 2)")
    p.add_argument("--cell-size", type=float, default=3.0)
    p.add_argument("--work", default="bench_work/real", help="cache of imports, folds and runs")
    p.add_argument("--out", default="bench_out/real_finetune", help="real_finetune.md / .json")
    return p.parse_args(argv)


def folds(real_dir: Path) -> dict[str, list[int]]:
    """Source file -> the building ids imported from it (a file's buildings stay together)."""
    from proc_ml.datasets.buildings import BuildingDataset

    data = BuildingDataset(real_dir)
    groups: dict[str, list[int]] = {}
    for building_id in data.ids():
        extras = data.building(building_id).extras
        source = str(extras.get("source_file", extras.get("source_id", building_id)))
        groups.setdefault(Path(source).stem, []).append(int(building_id))
    return groups


def fold_dataset(real_dir: Path, folder: Path, held_out: list[int], all_ids: list[int]) -> Path:
    """A copy of the imported dataset whose train and val splits are every building but
    ``held_out`` (the test split)."""
    from proc_ml.formats import manifest

    if not (folder / "dataset.yaml").is_file():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(real_dir, tmp)
        path = tmp / "dataset.yaml"
        doc = yaml.safe_load(path.read_text())
        train = [i for i in all_ids if i not in held_out]
        doc["split"] = {"train": train, "val": train, "test": list(held_out)}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        manifest.read(tmp)                                  # still a valid dataset
        tmp.rename(folder)
    return folder


def finetune(data: Path, run: Path, model: Path, args) -> float:
    """``proc-ml finetune`` into ``run`` / ``model`` (reused when the command matches)."""
    cmd = [sys.executable, "-m", "proc_ml", "finetune", "--data", str(data), "--out", str(run),
           "--export", str(model), "--init", args.init, "--config", args.config,
           "--set", f"training.threads={args.threads}", "--set", "training.device=cpu",
           "--set", "training.progress=false"]
    for item in args.set:
        cmd += ["--set", item]
    stamp = run.with_name(run.name + ".json")
    init = init_digest(args.init)
    if stamp.is_file() and model.is_file():
        cached = json.loads(stamp.read_text())
        if cached["command"] == cmd[1:] and cached.get("init") == init:
            return float(cached["seconds"])
    shutil.rmtree(run, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise SystemExit(f"{' '.join(cmd[1:])} failed (exit {done.returncode}):\n{tail}")
    stamp.write_text(json.dumps({"command": cmd[1:], "init": init, "seconds": seconds}) + "\n")
    return seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    from proc_ml import real_buildings
    from proc_ml.fileio import write_text
    from proc_ml.runtime import PartsPredictor

    work, out = Path(args.work), Path(args.out)
    real_dir = import_real(args.citygml, work, args.cell_size)
    real = real_buildings.load_real(real_dir)
    from proc_ml.datasets.buildings import BuildingDataset
    ids = [int(i) for i in BuildingDataset(real_dir).ids()]
    groups = folds(real_dir)
    print(f"{len(ids)} buildings in {len(groups)} source files: one fold per file", flush=True)
    installed = PartsPredictor.open(default_model_path(), device="cpu")
    predicted: dict[int, np.ndarray] = {}
    times = {}
    for name, held_out in groups.items():
        base = work / "finetune_folds" / name
        data = fold_dataset(real_dir, base / "data", held_out, ids)
        seconds = times[name] = finetune(data, base / "run", base / "model.onnx", args)
        model = PartsPredictor.open(base / "model.onnx", device="cpu")
        for building_id in held_out:
            b = real.buildings[ids.index(building_id)]
            labels, _ = real_buildings.predict_model(model, b, with_street=True)
            predicted[building_id] = real_buildings.to_truth_vocabulary(labels, model.parts, real.parts)
        print(f"fold {name}: fine-tuned on {len(ids) - len(held_out)} buildings in {seconds:.0f} s, "
              f"predicted {len(held_out)}", flush=True)
    systems = {name: [fn(b.occupancy, real.parts) for b in real.buildings]
               for name, fn in real_buildings.BASELINE_FUNCTIONS.items()}
    systems["installed (with street)"] = [
        real_buildings.to_truth_vocabulary(real_buildings.predict_model(installed, b, True)[0],
                                            installed.parts, real.parts) for b in real.buildings]
    systems["fine-tuned, leave-one-file-out (with street)"] = [predicted[i] for i in ids]
    result = {"dataset": str(real_dir), "buildings": [b.name for b in real.buildings],
              "parts": real.parts, "folds": groups, "fold_seconds": times,
              "init": args.init, "config": args.config, "overrides": args.set,
              "systems": {name: {scope: real_buildings.score(real, labels, scope)
                                 for scope in real_buildings.SCOPES}
                          for name, labels in systems.items()},
              "per_building": {name: [real_buildings.score(real_buildings.RealSet(real.root, real.parts, [b]),
                                                           [x], "all")["accuracy"]
                                      for b, x in zip(real.buildings, labels)]
                               for name, labels in systems.items()}}
    table = real_buildings.markdown({**result, "not_run": {}, "calibration_ece": {}})
    write_text(out / "real_finetune.json", json.dumps(result, indent=2) + "\n")
    write_text(out / "real_finetune.md", table)
    print(table, end="")
    lines = check_targets(result, "fine-tuned, leave-one-file-out (with street)")
    print("\n".join(lines))
    return 0 if all(line.endswith(": met") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
