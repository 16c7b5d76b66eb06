"""Few-shot rules: fine-tune the installed building-parts model on N buildings of a rule set
it never saw, beside the same network trained from scratch on the same N.

For each rule set of ``few_shot_rules.py`` (docs/few-shot.md, "The benchmark's rule sets")
and each N: (a) ``proc-ml train building-parts --init default --config parts_finetune``,
(b) ``--config parts_unet3d_street`` from scratch with the same number of epochs, batch
size, best-checkpoint metric and ``dataset.symmetry`` (the fine-tuning config's, stated in
the output), its own one-cycle schedule over the whole budget (no early stopping), both with ``training.threads`` = ``--threads``
on the CPU. Each run's best checkpoint is exported to ONNX (``RUN/model.onnx``, as
``proc-ml finetune --export`` does) and scored through the runtime on a held-out test folder
of the rule (face accuracy, per-part F1), as it predicts (averaged over the turns of its
``symmetry``) and in one network run; the wall time of each ``proc-ml train`` call
(what a user waits for: start-up, data loading, validation and checkpoints included) is
recorded. The correction loop: 5 new buildings labelled by the installed model's predictions,
except K faces per building that it got wrong, set to the rule and marked in ``label_fixed``;
the installed model fine-tuned on them, scored on the held-out folder before and after.

    python benchmarks/bench_few_shot.py                        # everything (the issue's figures)
    python benchmarks/bench_few_shot.py --quick                # N = 1, 3; 20 test buildings; 2 epochs
    python benchmarks/bench_few_shot.py --rules cornice odd_floors --sizes 10 --methods finetune scratch

Writes ``few_shot.md``, ``few_shot.json`` and ``few_shot_accuracy.png`` into ``--out``;
datasets and runs are cached in ``--work`` (a run is reused only when its command matches and,
for fine-tuning, the installed model is the one it started from).
Targets (the issue's acceptance, checked when N = 10 was run): fine-tuning on 10 buildings
>= 98% held-out face accuracy on every rule set; from scratch on the same 10 clearly below
(at least 3 points under fine-tuning); fine-tuning 10 buildings in under 2 minutes on 2
cores. Each prints met / NOT met; the exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import few_shot_rules as fs  # noqa: E402
from bench_real_buildings import init_digest  # noqa: E402

FINETUNE_CONFIG = "parts_finetune"
SCRATCH_CONFIG = "parts_unet3d_street"
METHODS = ("finetune", "scratch", "correction")
TARGET_N = 10
TARGET_ACCURACY = 0.98
#: "clearly below": from scratch at least this far under fine-tuning (face accuracy)
CLEAR_MARGIN = 0.03
TARGET_SECONDS = 120.0
QUICK = {"sizes": [1, 3], "test_count": 20, "epochs": 2, "corrections": [5]}
FULL = {"sizes": [1, 3, 10, 30], "test_count": 200, "epochs": None, "corrections": [5, 20]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", nargs="+", choices=list(fs.RULES), default=list(fs.RULES),
                   help="rule sets (default: all)")
    p.add_argument("--sizes", nargs="+", type=int, help="training buildings N (default 1 3 10 30)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                   help="what to run (default: all)")
    p.add_argument("--test-count", type=int, help="held-out buildings per rule set (default 200)")
    p.add_argument("--epochs", type=int,
                   help=f"epochs of every run (default: those of {FINETUNE_CONFIG}; --quick: 2)")
    p.add_argument("--corrections", nargs="+", type=int, metavar="K",
                   help="faces corrected per building in the correction loop (default 5 20)")
    p.add_argument("--correction-count", type=int, default=5, help="buildings of the correction loop (default 5)")
    p.add_argument("--train-seed", type=int, default=1000, help="massing seed of the training folders")
    p.add_argument("--test-seed", type=int, default=2000, help="massing seed of the held-out folders")
    p.add_argument("--correction-seed", type=int, default=3000, help="massing seed of the correction loop")
    p.add_argument("--threads", type=int, default=2, help="training.threads (default 2)")
    p.add_argument("--device", default="cpu", help="training.device (default cpu)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training config override for every run (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="tiny: N = 1, 3, 20 test buildings, 2 epochs, K = 5 (tests, CI)")
    p.add_argument("--work", default="bench_work/few_shot", help="cache of datasets and runs")
    p.add_argument("--out", default="bench_out/few_shot", help="few_shot.md, few_shot.json, the plot")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.sizes) < 1 or args.test_count < 1 or args.correction_count < 1:
        p.error("--sizes, --test-count and --correction-count must be >= 1")
    if args.corrections and min(args.corrections) < 1:
        p.error("--corrections: K must be >= 1")
    return args


# -- training and scoring ----------------------------------------------------------------------

def finetune_training(overrides=()) -> dict:
    """The ``training`` section of the shipped fine-tuning config (with ``overrides``), and
    its ``dataset.symmetry`` as ``symmetry``."""
    from proc_ml.trainers import load_train_config, resolve_config_path

    config = load_train_config("building-parts", resolve_config_path(FINETUNE_CONFIG), overrides)
    return {**config["training"], "symmetry": config["dataset"]["symmetry"],
            "inputs": config["dataset"]["inputs"]}


def train_command(method: str, data, run, overrides) -> list[str]:
    """The ``proc-ml train`` call of one run (``finetune`` or ``scratch``)."""
    cmd = [sys.executable, "-m", "proc_ml", "train", "building-parts", "--data", str(data),
           "--out", str(run), "--quiet"]
    if method == "finetune":
        cmd += ["--init", "default", "--config", FINETUNE_CONFIG]
    elif method == "scratch":
        cmd += ["--config", SCRATCH_CONFIG]
    else:
        raise ValueError(f"unknown training method '{method}'")
    for item in overrides:
        cmd += ["--set", item]
    return cmd


def train(method: str, data, run: Path, overrides, init: str | None = None) -> float:
    """Train (or reuse a cached run made by the same command from the same pretrained model,
    ``init``: its digest, for fine-tuning); return its wall seconds."""
    cmd = train_command(method, data, run, overrides)
    stamp = run / "bench_few_shot.json"
    if stamp.is_file():
        cached = json.loads(stamp.read_text())
        if cached.get("command") == cmd[1:] and cached.get("init") == init:
            return float(cached["seconds"])
    if run.exists():
        shutil.rmtree(run)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd[1:])} failed (exit {done.returncode}):\n{tail}")
    stamp.write_text(json.dumps({"command": cmd[1:], "init": init, "seconds": seconds}) + "\n")
    return seconds


def exported(run: Path, data: Path) -> Path:
    """The run's best checkpoint exported to ``RUN/model.onnx`` (what the artist's
    ``proc-ml finetune --export`` writes; reused while newer than the checkpoint)."""
    from proc_ml.exporters.onnx_export import export_run

    model, best = run / "model.onnx", run / "checkpoints" / "best.pt"
    if not (model.is_file() and model.stat().st_mtime >= best.stat().st_mtime):
        export_run(run, model, data_dir=data, log=lambda line: None)
    return model


def score_run(run: Path, data: Path, test_dir: Path, threads: int = 1) -> dict:
    """The run's exported model on the test split of ``test_dir`` as it predicts (averaged
    over the turns of its ``symmetry``), and in one network run (``one_run``)."""
    from proc_ml.runtime import PartsPredictor

    predictor = PartsPredictor.open(exported(run, data), device="cpu", intra_op_threads=threads)
    result = summary(fs.score_predictor(predictor, test_dir))
    one_run = (result if predictor.symmetry == "none" else
               summary(fs.score_predictor(predictor, test_dir, symmetry="none")))
    return {**result, "symmetry": predictor.symmetry,
            "one_run_accuracy": one_run["face_accuracy"], "one_run_f1": one_run["f1"]}


def summary(scores: dict) -> dict:
    """score_predictor's result in score_run's shape."""
    return {"face_accuracy": scores["face_accuracy"], "macro_f1": scores["macro_f1"],
            "f1": {name: c["f1"] for name, c in scores["per_class"].items()},
            "faces": scores["faces"]}


def dataset(path: Path, build) -> Path:
    """``path``, built by ``build(path)`` unless a finished dataset is already there."""
    if not (path / "dataset.yaml").is_file():
        if path.exists():
            shutil.rmtree(path)
        build(path)
    return path


# -- report -------------------------------------------------------------------------------------

def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _with_one_run(scores: dict | None) -> str:
    """Face accuracy as predicted, and in brackets in one network run when that differs."""
    if not scores:
        return "-"
    one = scores.get("one_run_accuracy")
    if one is None or scores.get("symmetry", "none") == "none":
        return _pct(scores["face_accuracy"])
    return f"{_pct(scores['face_accuracy'])} ({100 * one:.1f})"


def _f1s(scores: dict | None) -> str:
    if not scores:
        return "-"
    return ", ".join(f"{name} {f1:.2f}" for name, f1 in scores["f1"].items()
                     if name not in ("roof", "ground"))


def check_targets(result: dict) -> list[tuple[str, bool]]:
    """``(line, met)`` per target that the runs made can check."""
    lines = []
    for rule_name, rows in result["rules"].items():
        row = rows["sizes"].get(str(TARGET_N))
        if not row:
            continue
        ft, sc = row.get("finetune"), row.get("scratch")
        if ft:
            acc = ft["face_accuracy"]
            ok = acc >= TARGET_ACCURACY
            lines.append((f"{rule_name}: fine-tuned on {TARGET_N} buildings, held-out face accuracy "
                          f"{_pct(acc)} (target >= {_pct(TARGET_ACCURACY)}): "
                          f"{'met' if ok else 'NOT met'}", ok))
            ok = ft["seconds"] < TARGET_SECONDS
            lines.append((f"{rule_name}: fine-tuning {TARGET_N} buildings took {ft['seconds']:.0f} s "
                          f"(target < {TARGET_SECONDS:.0f} s): {'met' if ok else 'NOT met'}", ok))
        if ft and sc:
            gap = ft["face_accuracy"] - sc["face_accuracy"]
            ok = gap >= CLEAR_MARGIN
            lines.append((f"{rule_name}: from scratch on the same {TARGET_N}: {_pct(sc['face_accuracy'])}, "
                          f"{100 * gap:.1f} points under fine-tuning (target: clearly below, >= "
                          f"{100 * CLEAR_MARGIN:.0f} points): {'met' if ok else 'NOT met'}", ok))
    return lines


def markdown(result: dict) -> str:
    head = result["setup"]
    lines = [f"Few-shot rules: {head['machine']}, {head['threads']} threads, torch {head['torch']}; "
             f"{head['epochs']} epochs for fine-tuning ({FINETUNE_CONFIG}, --init default) and from "
             f"scratch ({SCRATCH_CONFIG}); held-out: {head['test_count']} buildings per rule set "
             f"(seed {head['test_seed']}); training seed {head['train_seed']}.", "",
             "Held-out face accuracy of each run's exported best checkpoint (train = val = the N "
             "buildings) as it predicts: averaged over the turns of its `symmetry` (the "
             "training config's `dataset.symmetry`), in brackets one network run; wall time "
             "of `proc-ml train`; per-part F1 of the side-face parts (roof and ground left out).", "",
             "| rule set | N | fine-tuned (one run) | from scratch (one run) | fine-tune s | scratch s | fine-tuned F1 | from-scratch F1 |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for rule_name, rows in result["rules"].items():
        for n, row in rows["sizes"].items():
            ft, sc = row.get("finetune"), row.get("scratch")
            cells = [f"`{rule_name}`", n, _with_one_run(ft), _with_one_run(sc),
                     f"{ft['seconds']:.0f}" if ft else "-", f"{sc['seconds']:.0f}" if sc else "-",
                     _f1s(ft), _f1s(sc)]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "The installed model before any training (N = 0), on the same held-out buildings, "
                  "scored by part name (a part it predicts that the rule set lacks counts as wrong):", "",
              "| rule set | installed model (one run) | F1 |", "|---|---:|---|"]
    for rule_name, rows in result["rules"].items():
        zero = rows["pretrained"]
        lines.append(f"| `{rule_name}` | {_with_one_run(zero)} | {_f1s(zero)} |")
    corrections = [(r, rows["correction"]) for r, rows in result["rules"].items() if rows.get("correction")]
    if corrections:
        lines += ["", f"Correction loop: {head['correction_count']} new buildings (seed "
                      f"{head['correction_seed']}) labelled by the installed model, K wrong faces per "
                      f"building corrected and marked in `label_fixed`, fine-tuned with --init default; "
                      f"held-out face accuracy before (the installed model) and after.", "",
                  "| rule set | K | faces fixed | before | after | change | fine-tune s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for rule_name, rows in corrections:
            for k, row in rows.items():
                change = 100 * (row["after"]["face_accuracy"] - row["before"]["face_accuracy"])
                lines.append(f"| `{rule_name}` | {k} | {row['fixed']} | {_pct(row['before']['face_accuracy'])} | "
                             f"{_pct(row['after']['face_accuracy'])} | {change:+.1f} | {row['seconds']:.0f} |")
    targets = result.get("targets") or []
    lines += ["", "Targets:" if targets else f"Targets: not checked (they need N = {TARGET_N} fine-tuned)."]
    lines += [f"* {t['line']}" for t in targets]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (rule_name, rows) in enumerate(result["rules"].items()):
        for method, style in (("finetune", "-o"), ("scratch", "--s")):
            points = [(int(n), row[method]["face_accuracy"]) for n, row in rows["sizes"].items()
                      if row.get(method)]
            if points:
                xs, ys = zip(*sorted(points))
                label = f"{rule_name}, {'fine-tuned' if method == 'finetune' else 'from scratch'}"
                ax.plot(xs, ys, style, color=colours[i % len(colours)], label=label)
    ax.axhline(TARGET_ACCURACY, color="grey", linestyle=":", linewidth=1, label=f"target {_pct(TARGET_ACCURACY)}")
    ax.set_xscale("log")
    sizes = sorted({int(n) for rows in result["rules"].values() for n in rows["sizes"]})
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training buildings N")
    ax.set_ylabel("held-out face accuracy")
    ax.set_title(f"Few-shot rules ({result['setup']['epochs']} epochs, {result['setup']['threads']} threads)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- main -----------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args, argv)
    except RuntimeError as exc:           # a training run that failed: its command and error
        print(f"bench_few_shot: {exc}", file=sys.stderr)
        return 2


def run(args, argv=None) -> int:
    import torch
    from proc_ml.formats import manifest
    from proc_ml.runtime import PartsPredictor, default_model

    torch.set_num_threads(args.threads)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    from proc_ml.errors import ConfigError
    try:
        finetune = finetune_training(args.set)
    except ConfigError as exc:
        if args.epochs is None:
            raise RuntimeError(f"{exc} (--epochs sets the epochs without it)") from None
        finetune = None           # fine-tuning runs will say why they cannot start
    epochs = args.epochs or int(finetune["epochs"])
    # both methods: the same epoch budget, batch size, model selection, symmetry and inputs
    # (fine-tuning's). From scratch keeps its own one-cycle schedule and runs the whole budget:
    # early stopping inside a one-cycle warm-up stopped a 3-building run after 11 epochs,
    # before BatchNorm's statistics had settled (9.7 % held-out).
    def same(patience):
        return ([f"training.batch_size={finetune['batch_size']}",
                 f"training.patience={patience}",
                 f"training.best_metric={finetune['best_metric']}",
                 f"dataset.symmetry={finetune['symmetry']}",
                 f"dataset.inputs={finetune['inputs']}"] if finetune else [])
    base = [f"training.threads={args.threads}", f"training.device={args.device}",
            f"training.epochs={epochs}"]
    overrides = [*base, *same(finetune["patience"] if finetune else 0), *args.set]
    method_overrides = {"finetune": overrides, "scratch": [*base, *same(0), *args.set]}
    pretrained = PartsPredictor(default_model("building-parts"), device="cpu",
                                intra_op_threads=args.threads)
    digest = init_digest("default")      # runs and correction data belong to this model
    inits = {"finetune": digest, "scratch": None}
    result = {"setup": {"machine": f"{platform.processor() or platform.machine()} "
                                   f"({os.cpu_count()} CPUs seen)",
                        "torch": torch.__version__, "python": sys.version.split()[0],
                        "threads": args.threads, "epochs": epochs, "finetune_training": finetune, "test_count": args.test_count,
                        "test_seed": args.test_seed, "train_seed": args.train_seed,
                        "correction_count": args.correction_count,
                        "correction_seed": args.correction_seed, "overrides": method_overrides,
                        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                                       else sys.argv[1:])])},
              "rules": {}}
    print(f"few-shot: rules {' '.join(args.rules)}, N {args.sizes}, {epochs} epochs, methods "
          f"{' '.join(args.methods)}; work {work}", flush=True)
    for rule_name in args.rules:
        rows = result["rules"][rule_name] = {"sizes": {}}
        test_dir = dataset(work / f"{rule_name}_test{args.test_count}_seed{args.test_seed}",
                           lambda p: fs.build_rule_dataset(rule_name, args.test_count, args.test_seed, p, "test"))
        rows["pretrained"] = {**summary(fs.score_predictor(pretrained, test_dir)),
                              "symmetry": pretrained.symmetry,
                              "one_run_accuracy": fs.score_predictor(pretrained, test_dir, symmetry="none")
                              ["face_accuracy"]}
        for n in args.sizes:
            train_dir = dataset(work / f"{rule_name}_n{n}_seed{args.train_seed}",
                                lambda p: fs.build_rule_dataset(rule_name, n, args.train_seed, p, "train"))
            row = rows["sizes"][str(n)] = {}
            for method in ("finetune", "scratch"):
                if method not in args.methods:
                    continue
                run = work / "runs" / rule_name / f"{method}_n{n}"
                seconds = train(method, train_dir, run, method_overrides[method], inits[method])
                row[method] = {**score_run(run, train_dir, test_dir, args.threads), "seconds": seconds}
                print(f"{rule_name} N={n} {method}: {_pct(row[method]['face_accuracy'])} held-out, "
                      f"{seconds:.0f} s", flush=True)
        if "correction" in args.methods:
            parts = fs.correction_parts(pretrained.parts, rule_name)
            union_test = dataset(work / f"{rule_name}_test{args.test_count}_seed{args.test_seed}_model_parts",
                                 lambda p: fs.build_rule_dataset(rule_name, args.test_count, args.test_seed,
                                                                 p, "test", parts=parts))
            before = summary(fs.score_predictor(pretrained, union_test))
            rows["correction"] = {}
            for k in args.corrections:
                data = dataset(work / f"{rule_name}_correct{args.correction_count}_k{k}_seed{args.correction_seed}"
                                      f"_model{digest}",
                               lambda p: fs.build_correction_dataset(rule_name, pretrained, args.correction_count,
                                                                     k, args.correction_seed, p))
                fixed = sum(manifest.read(data)["few_shot"]["fixed"])
                run = work / "runs" / rule_name / f"correction_k{k}"
                seconds = train("finetune", data, run, overrides, digest)
                rows["correction"][str(k)] = {"fixed": fixed, "before": before,
                                              "after": score_run(run, data, union_test, args.threads),
                                              "seconds": seconds}
                print(f"{rule_name} correction K={k}: {_pct(before['face_accuracy'])} -> "
                      f"{_pct(rows['correction'][str(k)]['after']['face_accuracy'])}", flush=True)
    result["targets"] = [{"line": line, "met": ok} for line, ok in check_targets(result)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "few_shot.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (out / "few_shot.md").write_text(text)
    if any(rows["sizes"] for rows in result["rules"].values()) and (
            "finetune" in args.methods or "scratch" in args.methods):
        plot(result, out / "few_shot_accuracy.png")
    print("\n" + text, end="")
    print(f"wrote {out / 'few_shot.md'}, {out / 'few_shot.json'}, {out / 'few_shot_accuracy.png'}")
    return 0 if all(t["met"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
