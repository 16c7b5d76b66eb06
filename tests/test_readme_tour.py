"""The README's command-line tour works as written.

The tour is the ```bash block under "## A tour of the command line" in README.md. Each
line is one command (``a && b`` is two); ``#`` starts a comment.

* Fast: every ``proc-ml`` line parses with the real CLI parser, every file or folder a
  command reads was written by an earlier line (``--out`` of generate / train / export, or a
  shell line's target), models handed to ``predict`` / ``batch`` are exported ONNX files (not
  run folders), and meshes are only labelled by models that need no style (the default
  street-aware config, massing-only configs, the installed model).
* Slow: the whole tour runs in an empty folder at a tiny scale. ``scale_down`` is the only
  change: ``--count`` becomes 16 (buildings) or 6 (facades, the fewest with a validation split), and every ``train`` line gets
  ``--set training.epochs=1``. ``proc-ml`` runs as ``python -m proc_ml`` and ``torchrun`` as
  ``python -m torch.distributed.run`` of this interpreter, with this checkout on PYTHONPATH;
  shell lines (``mkdir``, ``cp``) run in bash.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOUR_HEADING = "## A tour of the command line"
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


def tour_commands() -> list[list[str]]:
    """The tour's commands as argument lists (comments and empty lines dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(TOUR_HEADING):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens:
            cut = tokens.index("&&") if "&&" in tokens else len(tokens)
            commands.append(tokens[:cut])
            tokens = tokens[cut + 1:]
    return commands


def proc_ml_args(command: list[str]) -> list[str] | None:
    """The proc-ml arguments of a ``proc-ml`` or ``torchrun ... -m proc_ml`` command."""
    if command[0] == "proc-ml":
        return command[1:]
    if command[0] == "torchrun":
        return command[command.index("proc_ml") + 1:]
    return None


def scale_down(command: list[str]) -> list[str]:
    """The tiny-scale version of a tour command (see the module docstring)."""
    args = proc_ml_args(command)
    if args is None:
        return command
    out = list(command)
    if "--count" in out:
        at = out.index("--count") + 1
        out[at] = "6" if args[:2] == ["generate", "facades"] else "16"
    if args[0] == "train":
        out += ["--set", "training.epochs=1"]
    return out


def _under(path: str, folders) -> bool:
    p = Path(os.path.normpath(path))
    return any(p == Path(f) or Path(f) in p.parents for f in folders)


def test_the_tour_parses_and_reads_only_what_it_wrote():
    from proc_ml.cli import _join_side_values, build_parser

    commands = tour_commands()
    assert len(commands) > 20
    parser = build_parser()
    written: list[str] = []
    run_config: dict[str, str] = {}      # run folder -> --config
    model_run: dict[str, str] = {}       # exported .onnx -> run folder

    def needs(path: str, line: str) -> None:
        assert _under(path, written), f"'{line}' reads {path}, which no earlier line writes"

    for command in commands:
        line = shlex.join(command)
        args = proc_ml_args(command)
        if args is None:               # shell lines: mkdir -p X, cp SRC... DST
            if command[0] == "mkdir":
                written += [a for a in command[1:] if not a.startswith("-")]
            elif command[0] == "cp":
                for source in command[1:-1]:
                    needs(os.path.dirname(source), line)
                written.append(command[-1])
            else:
                pytest.fail(f"unexpected shell command in the tour: {line}")
            continue
        try:
            ns = parser.parse_args(_join_side_values(args))   # as main() does
        except SystemExit:
            pytest.fail(f"the CLI does not parse '{line}'")
        for name in ("data", "model", "parts_model", "input", "building", "asset_dir"):
            value = getattr(ns, name, None)
            if value:
                needs(value, line)
        if ns.command in ("export", "evaluate", "info"):
            needs(ns.run if ns.command != "info" else ns.model, line)
        if ns.command == "train":
            if ns.resume:
                needs(ns.out, line)
            else:
                run_config[os.path.normpath(ns.out)] = ns.config or "default"
        if ns.command == "export":
            model_run[os.path.normpath(ns.out)] = os.path.normpath(ns.run)
        if ns.command == "finetune":            # train --init, then export --export
            run_config[os.path.normpath(ns.out)] = ns.config
            model_run[os.path.normpath(ns.export)] = os.path.normpath(ns.out)
            written.append(ns.export)
        for name in ("model", "parts_model"):
            value = getattr(ns, name, None)
            if value and ns.command in ("predict", "batch"):
                assert value.endswith(".onnx") and os.path.normpath(value) in model_run, \
                    f"'{line}': {value} is not a model exported by an earlier line"
        if not getattr(ns, "style", None):
            for parts_model in _mesh_labelling_models(ns):
                if parts_model is None:      # the installed model: massing + street sides
                    continue
                config = run_config[model_run[os.path.normpath(parts_model)]]
                assert config not in STYLE_AWARE_CONFIGS, \
                    f"'{line}': meshes carry no style; {parts_model} comes from a style-aware run"
        if getattr(ns, "out", None) and not (ns.command == "train" and ns.resume):
            written.append(ns.out)


#: Shipped building-parts configs that need the legacy style features (meshes have none).
STYLE_AWARE_CONFIGS = ("parts_unet3d", "parts_mlp")


def _mesh_labelling_models(ns) -> list[str]:
    """Parts models a parsed command runs on meshes (batch assets may be meshes)."""
    if ns.command == "predict" and ns.kind == "building-parts":
        return [ns.model] if ns.input.lower().endswith(MESH_SUFFIXES) else []
    if ns.command == "predict" and ns.kind == "texture" and ns.building and ns.parts_model:
        return [ns.parts_model] if ns.building.lower().endswith(MESH_SUFFIXES) else []
    if ns.command == "batch":
        return [ns.model] if ns.task == "parts" else [m for m in [ns.parts_model] if m]
    return []


def test_scale_down_changes_only_counts_and_epochs():
    commands = {shlex.join(c): shlex.join(scale_down(c)) for c in tour_commands()}
    changed = {k: v for k, v in commands.items() if k != v}
    assert all("--count" in k or " train " in f" {k} " for k in changed)
    assert any("--count 16" in v for v in changed.values())
    assert any("--count 6 " in v for v in changed.values())
    assert all(v.endswith("--set training.epochs=1") for k, v in changed.items() if " train " in k)


@pytest.mark.slow
def test_the_readme_tour_runs_end_to_end(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "RAY_USAGE_STATS_ENABLED": "0"}
    for command in tour_commands():
        tiny = scale_down(command)
        if tiny[0] == "proc-ml":
            argv = [sys.executable, "-m", "proc_ml", *tiny[1:]]
        elif tiny[0] == "torchrun":
            argv = [sys.executable, "-m", "torch.distributed.run", *tiny[1:]]
        else:
            argv = ["bash", "-c", " ".join(tiny)]     # globs (b00000?.obj) expand here
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, (f"'{shlex.join(tiny)}' exited {done.returncode}:\n"
                                      f"{done.stderr[-3000:]}")
    assert (tmp_path / "pred" / "mesh" / "parts.ply").is_file()
    assert (tmp_path / "pred" / "textured.glb").is_file()
    manifest = (tmp_path / "results" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 20          # 10 assets processed, then 10 skipped with Ray
    assert (tmp_path / "textured" / "manifest.jsonl").is_file()
