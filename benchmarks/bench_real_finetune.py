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
    python benchmarks/bench_real_finetune.py --corrections 5 20   # the correction loop

``--corrections K``: the artist's correction loop on real buildings (docs/few-shot.md). The
training labels are then not the real ones but the installed model's own predictions, with
``K`` faces per building that it got wrong (among the faces the scan saw, drawn at random,
seeded) set to the real label and marked in ``label_fixed``, as the Houdini / Blender export
writes a building an artist corrected. Two measurements per K: **new buildings**, the same
leave-one-file-out folds trained on the corrected predictions of the other files; and **the
same buildings**, one fine-tune on every building's corrected predictions, re-predicting
them and scored on the faces nobody corrected (the installed model on the same faces).

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
    p.add_argument("--corrections", type=int, nargs="+", default=[], metavar="K",
                   help="the correction loop instead of the real labels: K faces corrected per "
                        "building, one run per value (e.g. 5 20)")
    p.add_argument("--correction-seed", type=int, default=3000, help="which wrong faces get corrected")
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


def corrected_dataset(real_dir: Path, real, predicted: list, k: int, seed: int, folder: Path) -> dict:
    """A copy of the imported dataset (grids only) labelled by a model's predictions
    (``predicted``: labels per building of ``real``, in its vocabulary; the installed model's
    with the street sides given, as the artist predicts), but ``k`` faces per building it got
    wrong, among the faces the scan saw, set to the real label and marked in ``label_fixed``.
    Returns ``{building id: bool mask of the corrected faces}`` (the dataset is reused when
    written before)."""
    from few_shot_rules import fixed_faces

    from proc_ml.datasets.buildings import BuildingDataset
    from proc_ml.datasets.writer import BuildingArrays, DatasetIndex, index_rows
    from proc_ml.formats import grid_npz, grid_path, manifest

    source = BuildingDataset(real_dir)
    ids = [int(i) for i in source.ids()]
    fixed_masks = {}
    labels_of = {}
    for building_id, b, guess in zip(ids, real.buildings, predicted):
        faces = b.labels >= 0
        seen = faces if b.known is None else faces & b.known
        fixed = fixed_faces(seen & (guess != b.labels), k, seed, building_id)
        fixed_masks[building_id] = fixed
        labels_of[building_id] = np.where(fixed, b.labels, guess).astype(np.int8)
    if (folder / "dataset.yaml").is_file():
        return fixed_masks
    base = manifest.read(real_dir)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with DatasetIndex(tmp, real.parts, ("grids",)) as index:
        for building_id in ids:
            rec = grid_npz.read(grid_path(real_dir, building_id))
            labels = labels_of[building_id]
            extras = {**rec.extras, "label_fixed": fixed_masks[building_id]}
            grid_npz.write(grid_path(tmp, building_id), building_id, rec.archetype,
                           rec.occupancy, labels, rec.style, **extras)
            index.add(index_rows(BuildingArrays(building_id, rec.archetype, rec.occupancy,
                                                labels, rec.style), len(real.parts), ("grids",)))
    index.finish(cell_size=base["cell_size"], grid_size=base["grid_size"], seed=base["seed"],
                 source=f"{base.get('source', 'citygml')}: installed model's predictions, {k} "
                        f"corrected faces per building",
                 style_present=False, archetypes=base["archetypes"],
                 extra={"split": {"train": ids, "val": ids, "test": []}, "labelled": True,
                        "corrections": {"per_building": int(k), "seed": int(seed),
                                        "fixed": [int(fixed_masks[i].sum()) for i in ids]}})
    tmp.rename(folder)
    return fixed_masks


def without_faces(real, masks: list):
    """``real`` with the faces of ``masks`` (one bool mask per building) left unscored."""
    from dataclasses import replace

    from proc_ml import real_buildings
    from proc_ml.grid import NO_PART

    return real_buildings.RealSet(real.root, real.parts, [
        replace(b, labels=np.where(m, np.int8(NO_PART), b.labels).astype(b.labels.dtype))
        for b, m in zip(real.buildings, masks)])


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


def leave_one_file_out(train_dir: Path, folds_dir: Path, real, ids, groups, args, label="fold"):
    """Fine-tune on every file's buildings but one (labels of ``train_dir``) and predict that
    file's: ``({building id: labels}, {file: seconds})``."""
    from proc_ml import real_buildings
    from proc_ml.runtime import PartsPredictor

    predicted: dict[int, np.ndarray] = {}
    times = {}
    for name, held_out in groups.items():
        base = folds_dir / name
        data = fold_dataset(train_dir, base / "data", held_out, ids)
        seconds = times[name] = finetune(data, base / "run", base / "model.onnx", args)
        model = PartsPredictor.open(base / "model.onnx", device="cpu")
        for building_id in held_out:
            b = real.buildings[ids.index(building_id)]
            labels, _ = real_buildings.predict_model(model, b, with_street=True)
            predicted[building_id] = real_buildings.to_truth_vocabulary(labels, model.parts, real.parts)
        print(f"{label} {name}: fine-tuned on {len(ids) - len(held_out)} buildings in "
              f"{seconds:.0f} s, predicted {len(held_out)}", flush=True)
    return predicted, times


def scores(real, systems: dict) -> dict:
    """Every system's scores (both scopes) and its face accuracy per building."""
    from proc_ml import real_buildings

    return {"systems": {name: {scope: real_buildings.score(real, labels, scope)
                               for scope in real_buildings.SCOPES}
                        for name, labels in systems.items()},
            "per_building": {name: [real_buildings.score(real_buildings.RealSet(real.root, real.parts, [b]),
                                                         [x], "all")["accuracy"]
                                    for b, x in zip(real.buildings, labels)]
                             for name, labels in systems.items()}}


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
    systems = {name: [fn(b.occupancy, real.parts) for b in real.buildings]
               for name, fn in real_buildings.BASELINE_FUNCTIONS.items()}
    systems["installed (with street)"] = [
        real_buildings.to_truth_vocabulary(real_buildings.predict_model(installed, b, True)[0],
                                            installed.parts, real.parts) for b in real.buildings]
    result = {"dataset": str(real_dir), "buildings": [b.name for b in real.buildings],
              "parts": real.parts, "folds": groups, "init": args.init, "config": args.config,
              "overrides": args.set}
    tables = []
    checked = "fine-tuned, leave-one-file-out (with street)"
    if not args.corrections:
        predicted, times = leave_one_file_out(real_dir, work / "finetune_folds", real, ids, groups, args)
        systems[checked] = [predicted[i] for i in ids]
        result["fold_seconds"] = times
    else:
        checked = None
        result["corrections"] = {}
        for k in args.corrections:
            tag = f"correct_k{k}_seed{args.correction_seed}_model{init_digest(args.init)[:12]}"
            corrected = work / "corrections" / tag
            masks = corrected_dataset(real_dir, real, systems["installed (with street)"], k,
                                      args.correction_seed, corrected / "data")
            predicted, times = leave_one_file_out(corrected / "data", corrected / "folds", real, ids, groups,
                                                 args, label=f"K = {k}, fold")
            systems[f"fine-tuned on corrected predictions, K = {k}, leave-one-file-out (with street)"] = [
                predicted[i] for i in ids]
            # the same buildings: one fine-tune on all of them, scored on the faces left uncorrected
            data = fold_dataset(corrected / "data", corrected / "all" / "data", [], ids)
            seconds = finetune(data, corrected / "all" / "run", corrected / "all" / "model.onnx", args)
            model = PartsPredictor.open(corrected / "all" / "model.onnx", device="cpu")
            same = {"installed (with street)": systems["installed (with street)"],
                    f"fine-tuned on its own corrected predictions, K = {k} (with street)": [
                        real_buildings.to_truth_vocabulary(
                            real_buildings.predict_model(model, b, True)[0], model.parts, real.parts)
                        for b in real.buildings]}
            unfixed = without_faces(real, [masks[i] for i in ids])
            result["corrections"][str(k)] = {
                "fixed": [int(masks[i].sum()) for i in ids], "fold_seconds": times,
                "same_buildings_seconds": round(seconds, 1), "same_buildings": scores(unfixed, same)}
            fixed = sum(int(m.sum()) for m in masks.values())
            print(f"K = {k}: {fixed} faces corrected; same buildings fine-tuned in {seconds:.0f} s", flush=True)
            tables.append(f"\n**The same buildings, K = {k}** (fine-tuned on all {len(ids)} buildings' "
                          f"corrected predictions; scored on the faces left uncorrected, {fixed} "
                          f"corrected faces out)\n\n"
                          + real_buildings.markdown({**result, **result["corrections"][str(k)]["same_buildings"],
                                                     "not_run": {}, "calibration_ece": {}}))
    result.update(scores(real, systems))
    table = real_buildings.markdown({**result, "not_run": {}, "calibration_ece": {}}) + "".join(tables)
    write_text(out / "real_finetune.json", json.dumps(result, indent=2) + "\n")
    write_text(out / "real_finetune.md", table)
    print(table, end="")
    if checked is None:
        return 0
    lines = check_targets(result, checked)
    print("\n".join(lines))
    return 0 if all(line.endswith(": met") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
