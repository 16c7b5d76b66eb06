"""The ``proc-ml`` command line: one subcommand module per job under ``proc_ml.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func``. Heavy imports (torch, trimesh, ray) happen inside ``func`` so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import ProcMLError
from .fileio import display_name, os_error_text

# Order here is the order in ``proc-ml --help``; a module not present is not offered.
COMMAND_MODULES = ("generate", "importing", "train", "finetune", "evaluate", "export", "info", "predict", "demo", "batch")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get one line naming the command, like every other proc-ml error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="proc-ml",
        description="Procedural content generation + deep learning for DCC pipelines: "
                    "generate labelled data, train, export to ONNX, predict.")
    parser.add_argument("--version", action="version", version=f"proc-ml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = f"proc_ml.commands.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module).register(sub)
    return parser


#: Options whose value may start with "-" (street sides: ``--street -y``), which argparse
#: would otherwise read as an option of its own.
_SIDE_VALUED = ("--street",)
_SIDES = re.compile(r"^[+-][xy](?:[,\s]+[+-][xy])*$")


def _join_side_values(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] in _SIDE_VALUED and i + 1 < len(argv) and _SIDES.match(argv[i + 1]):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_side_values(list(sys.argv[1:] if argv is None else argv)))
    saved = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            _one_line_warnings(args.command)
            return _run(args)
    finally:
        warnings.formatwarning = saved


def _one_line_warnings(command: str) -> None:
    """Warnings print as one line each ("proc-ml train: warning: ..."), never with the
    source line Python adds; numpy's floating-point RuntimeWarnings are dropped (inputs are
    checked for NaN and infinity where they enter, not where arithmetic meets them)."""
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy(\..*)?$")

    def one_line(message, category, filename, lineno, line=None):
        text = " ".join(str(message).split())
        return f"proc-ml {command}: warning: {display_name(text)}\n"

    warnings.formatwarning = one_line


def _run(args) -> int:
    made = _new_output_folders(args)
    code = _run_command(args)
    if code:
        for folder in made:   # a failed command leaves no empty --out it created behind
            try:
                folder.rmdir()
            except OSError:
                break         # not empty (partial results are kept) or not a folder
    return code


def _new_output_folders(args) -> list[Path]:
    """``--out`` and its parents that do not exist yet (the command may create them),
    the deepest first."""
    out = getattr(args, "out", None)
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        return []
    missing = []
    for path in (Path(out), *Path(out).parents):
        if path.exists() or path.is_symlink():
            break
        missing.append(path)
    return missing


def _run_command(args) -> int:
    try:
        result = args.func(args)
    except ProcMLError as exc:
        return _fail(args.command, str(exc))
    except OSError as exc:
        # the file system refused an output (read-only, full disk, a file where a folder
        # belongs...): whatever was written went through temp files and renames
        return _fail(args.command, os_error_text(exc))
    except MemoryError:
        return _fail(args.command, "out of memory; use smaller inputs or lower "
                                   "PROC_ML_MEMORY_BUDGET (docs/reliability.md)")
    except ModuleNotFoundError as exc:   # an optional dependency: say which extra brings it
        from .dependencies import missing_module_message

        message = missing_module_message(exc.name)
        if message is None:
            if os.environ.get("PROC_ML_DEBUG"):
                raise
            message = (f"internal error, please report it (No module named '{exc.name}'); "
                       f"PROC_ML_DEBUG=1 shows where")
        return _fail(args.command, message)
    except KeyboardInterrupt:
        print(f"proc-ml {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last net: a bug, still one line
        if os.environ.get("PROC_ML_DEBUG"):
            raise
        from .validation import library_message

        return _fail(args.command, f"internal error, please report it ({library_message(exc)}); "
                                   f"PROC_ML_DEBUG=1 shows where")
    return int(result or 0)


def _fail(command: str, message: str) -> int:
    """Print one error line (never more, never bytes that stderr cannot encode)."""
    line = " ".join(display_name(message).split())
    print(f"proc-ml {command}: error: {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
