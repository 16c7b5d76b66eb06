"""Pipeline-facing CLI behaviour: ``--json`` streams of generate / train / export / batch,
``generate --overwrite``, ``train --resume`` of a finished run, batch's printed paths, and
one-line messages for missing optional dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from proc_ml.cli import main

ROOT = Path(__file__).resolve().parents[1]


def json_events(capsys, args) -> tuple[int, list[dict], str]:
    """Run the CLI; every stdout line must be one JSON object with an "event"."""
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    events = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) and "event" in e for e in events), captured.out
    return code, events, captured.err


def check_stream(events: list[dict], command: str) -> dict:
    """start first, done last, progress in between; returns the done event."""
    assert events[0]["event"] == "start" and events[0]["command"] == command
    assert events[-1]["event"] == "done"
    assert all(e["event"] == "progress" for e in events[1:-1])
    for path in events[-1]["outputs"]:
        assert Path(path).exists(), path
    return events[-1]


# -- generate ----------------------------------------------------------------------------------
def test_generate_json_stream(tmp_path, capsys):
    out = tmp_path / "ds"
    code, events, err = json_events(capsys, ["generate", "buildings", "--count", "20", "--out", str(out),
                                             "--formats", "grids,faces", "--set", "grid.size=[10,10,10]",
                                             "--workers", "1", "--json"])
    assert code == 0 and err == ""            # no progress bar, no human line
    done = check_stream(events, "generate buildings")
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [16, 20] and {e["total"] for e in progress} == {20}
    assert {Path(p).name for p in done["outputs"]} == {"dataset.yaml", "labels.json",
                                                       "buildings.csv", "faces.csv", "grids"}
    assert done["buildings"] == 20 and done["removed"] == []


def test_generate_facades_json_stream(tmp_path, capsys):
    code, events, err = json_events(capsys, ["generate", "facades", "--count", "1", "--size", "128",
                                             "--out", str(tmp_path / "f"), "--json"])
    assert code == 0 and err == ""
    done = check_stream(events, "generate facades")
    assert done["pairs"] > 0 and {Path(p).name for p in done["outputs"]} == {
        "facades.json", "palette.json", "labels", "images"}


def test_generate_refuses_a_non_empty_folder_and_overwrite_removes_only_its_own(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["generate", "buildings", "--out", str(out), "--formats", "grids", "--quiet",
            "--set", "grid.size=[8,8,8]", "--workers", "1"]
    assert main(args + ["--count", "12"]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "renders").mkdir()
    (out / ".faces.csv.0123456789ab.tmp").write_text("left by a killed run")
    capsys.readouterr()
    assert main(args + ["--count", "5"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty" in err and "--overwrite" in err
    assert len(list((out / "grids").iterdir())) == 12          # nothing touched
    assert main(args + ["--count", "5", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "grids").iterdir()) == [f"b{i:06d}.npz" for i in range(5)]
    assert (out / "notes.txt").read_text() == "mine" and (out / "renders").is_dir()
    assert not (out / ".faces.csv.0123456789ab.tmp").exists()
    # an owned name that is a symlink: the link goes, not what it points at
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    shutil.rmtree(out / "grids")
    (out / "grids").symlink_to(elsewhere, target_is_directory=True)
    assert main(args + ["--count", "3", "--overwrite"]) == 0
    assert (elsewhere / "keep.txt").is_file() and not (out / "grids").is_symlink()
    assert len(list((out / "grids").iterdir())) == 3


# -- train -------------------------------------------------------------------------------------
def test_train_json_stream_then_resume_of_the_finished_run(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    code, events, err = json_events(capsys, ["train", "building-parts", "--data", str(tiny_dataset),
                                             "--out", str(run), "--config", "tiny_parts_unet3d",
                                             "--json"])
    assert code == 0
    done = check_stream(events, "train")
    epochs = [e for e in events if e["event"] == "progress"]
    assert [(e["stage"], e["done"], e["total"]) for e in epochs] == [("epoch", 1, 2), ("epoch", 2, 2)]
    assert all("val_face_accuracy" in e and "train_loss" in e for e in epochs)
    names = {Path(p).name for p in done["outputs"]}
    assert {"best.pt", "last.pt", "config.yaml", "metrics.jsonl"} <= names
    assert done["epochs"] == 2 and done["already_finished"] is False

    last = run / "checkpoints" / "last.pt"
    stamp = last.stat().st_mtime_ns
    metrics = (run / "metrics.jsonl").read_text()
    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(run),
                 "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "training already finished (2 of 2 epochs" in out
    assert "nothing to resume" in out
    assert last.stat().st_mtime_ns == stamp and (run / "metrics.jsonl").read_text() == metrics
    code, events, _ = json_events(capsys, ["train", "building-parts", "--data", str(tiny_dataset),
                                           "--out", str(run), "--resume", "--json"])
    assert code == 0 and check_stream(events, "train")["already_finished"] is True


# -- export ------------------------------------------------------------------------------------
def test_export_json_stream(tiny_massing_unet_run, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, events, _ = json_events(capsys, ["export", "onnx", str(tiny_massing_unet_run), "--out", str(out),
                                           "--data", str(tiny_dataset), "--exporter", "legacy",
                                           "--json"])
    assert code == 0
    done = check_stream(events, "export")
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert stages[0] == "exported" and stages.count("parity") == len(done["parity"]) >= 3
    assert done["outputs"] == [str(out)] and done["max_abs_diff"] <= 1e-4


def test_export_errors_stay_one_line_on_stderr_in_json_mode(tmp_path, capsys):
    code = main(["export", "onnx", str(tmp_path / "missing"), "--out", str(tmp_path / "m.onnx"), "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.err.count("\n") == 1 and "error" in captured.err
    assert all(json.loads(line)["event"] == "start" for line in captured.out.splitlines())


# -- batch -------------------------------------------------------------------------------------
def test_batch_json_stream_and_printed_paths(tiny_dataset, tiny_massing_unet_onnx, tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    for i in (0, 1):
        shutil.copy(tiny_dataset / "grids" / f"b00000{i}.npz", assets)
    (assets / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")
    out = tmp_path / "results"
    code, events, err = json_events(capsys, ["batch", str(assets), "--model", str(tiny_massing_unet_onnx),
                                             "--out", f"{out}/", "--json"])
    assert code == 2                                   # one asset failed
    done = check_stream(events, "batch")
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["done"] for e in progress] == [1, 2, 3] and {e["total"] for e in progress} == {3}
    assert {e["asset"]: e["status"] for e in progress} == {
        "b000000.npz": "ok", "b000001.npz": "ok", "broken.obj": "failed"}
    assert done["counts"] == {"ok": 2, "skipped": 0, "failed": 1} and done["exit_code"] == 2
    assert str(out / "manifest.jsonl") in done["outputs"]
    assert any(p.endswith("parts.ply") for p in done["outputs"])
    assert "broken.obj" in err and "//" not in "".join(done["outputs"])
    # human mode: paths printed without a doubled separator
    assert main(["batch", str(assets), "--model", str(tiny_massing_unet_onnx), "--out", f"{out}/",
                 "--quiet"]) == 2
    text = capsys.readouterr().out
    assert f"manifest: {out / 'manifest.jsonl'} (and manifest.csv)" in text and "//" not in text


# -- missing optional dependencies ---------------------------------------------------------------
BLOCK = textwrap.dedent("""
    import sys
    BLOCKED = {blocked!r}
    class _Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named '{{name}}'", name=name)
            return None
    sys.meta_path.insert(0, _Missing())
    from proc_ml.cli import main
    sys.exit(main({args!r}))
""")


def _without(blocked: list[str], args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked, args=args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("blocked, command, extra", [
    (["torch"], ["train", "building-parts", "--data", "{data}", "--out", "run"], "train"),
    (["torch"], ["export", "onnx", "{run}", "--out", "m.onnx"], "train"),
    (["matplotlib"], ["batch", "{grids}", "--model", "{model}", "--out", "b", "--pictures"], "train"),
    (["ray"], ["batch", "{grids}", "--model", "{model}", "--out", "b", "--executor", "ray"], "ray"),
])
def test_a_missing_optional_dependency_names_the_extra(blocked, command, extra, tiny_dataset,
                                                       tiny_massing_unet_run, tiny_massing_unet_onnx,
                                                       tmp_path):
    values = {"data": tiny_dataset, "run": tiny_massing_unet_run, "model": tiny_massing_unet_onnx,
              "grids": tiny_dataset / "grids", "grid": tiny_dataset / "grids" / "b000000.npz"}
    done = _without(blocked, [part.format(**values) for part in command], tmp_path)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"proc-ml[{extra}]" in lines[0] and blocked[0] in lines[0].lower()


def test_predict_parts_without_matplotlib_writes_everything_but_the_picture(
        tiny_dataset, tiny_massing_unet_onnx, tmp_path):
    """A base / [dcc] install has no matplotlib: predict still labels the building and says
    in one note line why there is no parts.png."""
    import json as json_

    done = _without(["matplotlib"], ["predict", "building-parts", "--model",
                                     str(tiny_massing_unet_onnx), "--input",
                                     str(tiny_dataset / "grids" / "b000000.npz"), "--out", "p"],
                    tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json_.loads((tmp_path / "p" / "summary.json").read_text())
    assert "parts.png" not in summary["files"] and "parts.glb" in summary["files"]
    assert any('no parts.png: matplotlib is not installed (pip install "proc-ml[train]")' in n
               for n in summary["notes"])


def test_unknown_missing_modules_are_not_disguised():
    from proc_ml.dependencies import missing_module_message

    assert missing_module_message("not_a_dependency") is None
    assert 'pip install "proc-ml[points]"' in missing_module_message("open3d.io")
    assert "pip install pyyaml" in missing_module_message("yaml")
