"""The ``proc-ml`` command line: one subcommand module per job under ``proc_ml.commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func``. Heavy imports (torch, trimesh, ray) happen inside ``func`` so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys

from . import __version__
from .errors import ProcMLError

# Order here is the order in ``proc-ml --help``; a module not present is not offered.
COMMAND_MODULES = ("generate", "importing", "train", "evaluate", "export", "info", "predict", "demo", "batch")


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
    try:
        result = args.func(args)
    except ProcMLError as exc:
        print(f"proc-ml {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:   # an optional dependency: say which extra brings it
        from .dependencies import missing_module_message

        message = missing_module_message(exc.name)
        if message is None:
            raise
        print(f"proc-ml {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"proc-ml {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
