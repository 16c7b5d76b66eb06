"""Run proc-ml commands from Houdini PDG / TOPs work items (docs/houdini.md, "PDG / TOPs").

A Python Script TOP's script is one call::

    from proc_ml.pdg import run_cli
    run_cli(work_item, ["train", "building-parts", "--data", data, "--out", run])

``run_cli`` runs the proc-ml command line of the training environment (``$PROC_ML_CLI``,
else ``proc-ml`` on PATH: Houdini's own Python has no torch) with ``--json``, writes its
progress events to the work item's log, and when it succeeds attaches every path of the
``done`` event as an output file and sets work item attributes: ``proc_ml_<command>_out``
(the command's ``--out``) and ``proc_ml_<command>_<key>`` for the done event's numbers and
text (e.g. ``proc_ml_export_max_abs_diff``, ``proc_ml_batch_counts_failed``,
``proc_ml_train_best_value``). A failed command
fails the work item with proc-ml's one-line error. Downstream work items inherit the
attributes, so the next stage reads ``work_item.stringAttribValue("proc_ml_train_out")``.

Only the standard library is used here (no torch, no onnxruntime).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading

from .errors import ProcMLError

#: Environment variable naming the proc-ml executable (or command line) to run.
CLI_VARIABLE = "PROC_ML_CLI"
#: Output file tag the work items' outputs get.
OUTPUT_TAG = "file/proc-ml"


def cli_command(cli=None) -> list[str]:
    """The proc-ml command line: ``cli`` (a string or list), ``$PROC_ML_CLI``, or ``proc-ml``."""
    if cli is None:
        cli = os.environ.get(CLI_VARIABLE) or "proc-ml"
    return shlex.split(cli) if isinstance(cli, str) else [str(part) for part in cli]


def run_cli(work_item, args, cli=None, fail_on_failed_assets: bool = False,
            tag: str = OUTPUT_TAG, env: dict | None = None) -> dict:
    """Run ``proc-ml ARGS --json`` for ``work_item``; returns the ``done`` event.

    ``batch`` exits 2 when some assets failed: the work item still succeeds (the failures
    are in its log and ``proc_ml_batch_counts_failed``) unless ``fail_on_failed_assets``."""
    args = [str(a) for a in args]
    command = [*cli_command(cli), *args, *([] if "--json" in args else ["--json"])]
    name = args[0] if args else "proc-ml"
    log = _logger(work_item)
    log(f"proc-ml: {' '.join(shlex.quote(c) for c in command)}")
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=env)
    except OSError as exc:
        _fail(work_item, f"cannot run {command[0]} ({exc.strerror or exc}); set "
                         f"${CLI_VARIABLE} to the proc-ml of the training environment")
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)
    reader.start()
    done = None
    for line in process.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            log(line.rstrip())
            continue
        if event.get("event") == "done":
            done = event
        log(_describe(name, event))
    code = process.wait()
    reader.join()
    for line in errors:
        log(line.rstrip())
    if done is None or code not in (0, 2) or (code == 2 and fail_on_failed_assets):
        message = next((ln.strip() for ln in reversed(errors) if ln.strip()), "")
        _fail(work_item, message or f"proc-ml {name} exited with code {code}")
    for path in done.get("outputs", []):
        work_item.addOutputFile(path, tag)
    out = _option(args, "--out")
    if out is not None:
        work_item.setStringAttrib(f"proc_ml_{name}_out", out)
    for key, value in done.items():
        _set_attribute(work_item, f"proc_ml_{name}_{key}", value)
    return done


def _option(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _set_attribute(work_item, name: str, value) -> None:
    """Numbers and text become int / float / string attributes, maps with plain keys one
    attribute per key (``proc_ml_batch_counts_ok``, ``proc_ml_train_best_value``), lists of
    failures their count; other values are left out."""
    if name.endswith(("_event", "_outputs")) or value is None:
        return
    if isinstance(value, bool):
        work_item.setIntAttrib(name, int(value))
    elif isinstance(value, int):
        work_item.setIntAttrib(name, value)
    elif isinstance(value, float):
        work_item.setFloatAttrib(name, value)
    elif isinstance(value, str):
        work_item.setStringAttrib(name, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.isidentifier():
                _set_attribute(work_item, f"{name}_{key}", item)
    elif isinstance(value, list) and name.endswith("_failed"):
        work_item.setIntAttrib(name, len(value))


def _describe(name: str, event: dict) -> str:
    kind = event.get("event")
    if kind == "progress":
        total = event.get("total")
        where = f"{event.get('done')}/{total}" if total else str(event.get("done"))
        detail = event.get("asset") or event.get("input") or ""
        status = event.get("status") or ""
        return f"proc-ml {name}: {event.get('stage')} {where} {detail} {status}".rstrip()
    if kind == "done":
        return f"proc-ml {name}: done, {len(event.get('outputs', []))} outputs"
    return f"proc-ml {name}: {kind}"


def _logger(work_item):
    """The work item's log (``addMessage``) when it has one, else stdout (the log of an
    in-process script)."""
    add = getattr(work_item, "addMessage", None)
    return add if callable(add) else print


def _fail(work_item, message: str):
    add_error = getattr(work_item, "addError", None)
    if callable(add_error):
        add_error(message)
    raise ProcMLError(message)
