"""Which onnxruntime releases load proc-ml's exports, and do they match PyTorch there?

For each model family it trains a tiny run (the ``tiny_*`` configs, seconds each), exports
it twice (the default export and ``--portable``), and computes PyTorch's outputs on the
export's parity inputs (``Task.parity_inputs``: dataset samples and an unseen size). Then,
for every onnxruntime version asked for, it makes a throwaway virtual environment
(``python -m venv``; ``pip install onnxruntime==VERSION "numpy<2" pyyaml pydantic``), and in it loads every
file with plain onnxruntime (CPU) and through ``proc_ml.runtime`` (this checkout on
PYTHONPATH), runs the parity inputs and reports the largest |onnxruntime - torch|.

    python scripts/check_ort_versions.py --versions 1.16.3 1.17.3 --markdown

The figures in docs/onnx.md ("Portable export") come from this script;
tests/test_portable_onnx.py runs its functions for onnxruntime 1.16.3 (slow).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # this checkout's proc_ml, also in the child environments
    sys.path.insert(0, str(ROOT))
# (name, task, config, dataset kind)
FAMILIES = (
    ("parts-unet3d", "building-parts", "tiny_parts_unet3d", "buildings"),
    ("parts-mlp", "building-parts", "tiny_parts_mlp", "buildings"),
    ("pointnet-cls", "pointnet-cls", "tiny_pointnet_cls", "points"),
    ("dgcnn-seg", "pointnet-seg", "tiny_dgcnn_seg", "points"),
    ("voxnet", "voxnet", "tiny_voxnet", "points"),
    ("pix2pix-unet", "pix2pix", "tiny_pix2pix", "facades"),
)
EXPORTS = {"default": {}, "portable": {"target_ort": "1.16"}}

# Runs inside the throwaway environment: plain onnxruntime, then proc_ml.runtime.
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import onnxruntime as ort
    cases = json.load(open(sys.argv[1]))
    out = {"onnxruntime": ort.__version__, "numpy": np.__version__, "results": []}
    for case in cases:
        inputs, expected = np.load(case["inputs"]), np.load(case["expected"])
        row = {"model": case["model"]}
        try:
            session = ort.InferenceSession(case["model"], providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            row["raw_max_abs_diff"] = max(float(np.abs(session.run(None, {name: inputs[k]})[0]
                                                      - expected[k]).max()) for k in inputs.files)
            row["loads"] = True
        except Exception as exc:
            row["loads"], row["error"] = False, str(exc).strip().splitlines()[-1][-300:]
        if row["loads"]:
            try:
                from proc_ml.runtime.session import ModelSession
                wrapped = ModelSession(case["model"], device="cpu")
                row["runtime_max_abs_diff"] = max(float(np.abs(wrapped.run(inputs[k])
                                                               - expected[k]).max())
                                                  for k in inputs.files)
            except Exception as exc:
                row["runtime_error"] = str(exc).strip().splitlines()[-1][-300:]
        out["results"].append(row)
    print(json.dumps(out))
""")


def make_venv(version: str, root: Path) -> Path:
    """A virtual environment under ``root`` with onnxruntime ``version``, numpy<2 and the
    rest of what ``proc_ml.runtime`` imports (pyyaml, pydantic);
    returns its python (reused when it is already there)."""
    venv = root / f"ort-{version}"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = venv / ".proc-ml-ready"
    if not marker.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"onnxruntime=={version}", "numpy<2", "pyyaml>=6.0",
                        "pydantic>=2.7,<3"], check=True)   # what proc_ml.runtime imports
        marker.write_text(version)
    return python


def reference_case(run_dir, model_path, data_dir, work: Path) -> dict:
    """The export's parity inputs and PyTorch's outputs on them, saved beside ``work``."""
    import torch

    from proc_ml.trainers import load_run

    model, run = load_run(run_dir)
    samples = run.task.parity_inputs(run, data_dir)
    with torch.no_grad():
        expected = {f"s{i}": model(torch.from_numpy(x)).numpy() for i, (_, x) in enumerate(samples)}
    stem = Path(model_path).stem
    inputs_path, expected_path = work / f"{stem}_inputs.npz", work / f"{stem}_expected.npz"
    np.savez(inputs_path, **{f"s{i}": x for i, (_, x) in enumerate(samples)})
    np.savez(expected_path, **expected)
    return {"model": str(model_path), "inputs": str(inputs_path), "expected": str(expected_path)}


def check_in_venv(python: Path, cases: list[dict], work: Path) -> dict:
    """Run ``cases`` with the environment's onnxruntime (``CHILD``)."""
    jobs = work / "cases.json"
    jobs.write_text(json.dumps(cases))
    child = work / "child.py"
    child.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(python), str(child), str(jobs)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{python}: the check failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_and_export(work: Path, families, exports=EXPORTS) -> list[dict]:
    """Tiny runs of ``families`` exported every way of ``exports``, with their reference
    outputs: ``[{"family", "export", "model", "inputs", "expected", "ir_version", "opset"}]``."""
    from proc_ml.cli import main as cli
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.procedural import load_generator_config
    from proc_ml.procedural.config import default_config
    from proc_ml.textures.pairs import write_facade_pairs

    data = {"buildings": work / "buildings", "points": work / "points", "facades": work / "facades"}
    generate_dataset(load_generator_config(None, ["grid.size=[12,12,12]"]), 16, 3,
                     data["buildings"], ("faces", "adjacency", "grids"), workers=1, progress=False)
    generate_dataset(load_generator_config(None, ["grid.size=[10,10,10]", "points.per_building=256"]),
                     16, 5, data["points"], ("grids", "points"), workers=1, progress=False)
    write_facade_pairs(default_config(), 6, 11, data["facades"], size=128)
    cases = []
    for name, task, config, kind in families:
        run = work / "runs" / name
        with contextlib.redirect_stdout(sys.stderr):      # stdout is the report
            if cli(["train", task, "--data", str(data[kind]), "--out", str(run), "--config",
                    config, "--quiet"]) != 0:
                raise RuntimeError(f"training {name} failed")
        for label, options in exports.items():
            out = work / "models" / f"{name}-{label}.onnx"
            report = export_run(run, out, data_dir=data[kind] if kind != "facades" else None,
                                log=lambda line: None, **options)
            case = reference_case(run, out, data[kind] if kind != "facades" else None, work)
            cases.append({**case, "family": name, "export": label,
                          "ir_version": report["ir_version"], "opset": report["opset"],
                          "export_max_abs_diff": report["max_abs_diff"]})
    return cases


def markdown(rows: list[dict]) -> str:
    lines = ["| onnxruntime | family | export | IR | opset | loads | max abs diff (plain ORT) | "
             "max abs diff (proc_ml.runtime) |", "|---|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        loads = "yes" if r["loads"] else f"no: {r.get('error', '')[-90:]}"
        raw = f"{r['raw_max_abs_diff']:.1e}" if "raw_max_abs_diff" in r else "-"
        wrapped = (f"{r['runtime_max_abs_diff']:.1e}" if "runtime_max_abs_diff" in r
                   else r.get("runtime_error", "-")[-60:])
        lines.append(f"| {r['onnxruntime']} | {r['family']} | {r['export']} | {r['ir_version']} | "
                     f"{r['opset']} | {loads} | {raw} | {wrapped} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=["1.16.3"],
                        help="onnxruntime versions to check (default 1.16.3)")
    parser.add_argument("--families", nargs="+", default=[f[0] for f in FAMILIES],
                        choices=[f[0] for f in FAMILIES])
    parser.add_argument("--venvs", type=Path, default=None,
                        help="keep the environments here (default: a temporary folder)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="proc-ml-ort-") as tmp:
        work = Path(tmp)
        venvs = args.venvs or work / "venvs"
        cases = train_and_export(work, [f for f in FAMILIES if f[0] in args.families])
        rows = []
        for version in args.versions:
            try:
                python = make_venv(version, venvs)
            except subprocess.CalledProcessError:
                print(f"onnxruntime {version}: cannot be installed for Python "
                      f"{sys.version_info.major}.{sys.version_info.minor} here; skipped",
                      file=sys.stderr)
                continue
            result = check_in_venv(python, cases, work)
            for case, row in zip(cases, result["results"]):
                rows.append({**row, "onnxruntime": result["onnxruntime"], "family": case["family"],
                             "export": case["export"], "ir_version": case["ir_version"],
                             "opset": case["opset"],
                             "export_max_abs_diff": case["export_max_abs_diff"]})
        print(markdown(rows) if args.markdown else json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
