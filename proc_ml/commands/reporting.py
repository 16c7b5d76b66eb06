"""What a command tells its caller: human lines, or with ``--json`` one JSON object per line.

``--json`` (generate, train, export, batch) is for pipelines (PDG / TOPs, CI, scripts):
stdout carries only JSON lines, each an object with an ``"event"`` key:

* ``{"event": "start", "command": ..., ...}``: once, before the work;
* ``{"event": "progress", "stage": ..., "done": n, "total": N, ...}``: as work finishes
  (buildings generated, epochs trained, parity inputs compared, assets processed);
* ``{"event": "done", "outputs": [paths], ...}``: once, last, when the command succeeded;
  ``outputs`` lists the files and folders it wrote (the command's own figures beside it).

Human lines and progress bars are not printed in this mode; anything else that writes to
``sys.stdout`` meanwhile (libraries, workers) is sent to stderr, so stdout stays parseable.
Errors are unchanged: one line on stderr, exit code 1 (docs/houdini.md, "PDG / TOPs").
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys


class Reporter:
    """``with Reporter(args.json) as report:`` around a command's work."""

    def __init__(self, json_mode: bool = False, stream=None, muted: bool = False):
        self.json = bool(json_mode)
        self.stream = stream
        self.muted = muted          # says and emits nothing (DDP ranks other than 0)
        self._redirect = None

    def __enter__(self) -> "Reporter":
        if self.stream is None:
            self.stream = sys.stdout
        if self.json:
            self._redirect = contextlib.redirect_stdout(sys.stderr)
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        if self._redirect is not None:
            self._redirect.__exit__(*exc)
            self._redirect = None
        return False

    @property
    def progress_bars(self) -> bool:
        """Whether the command may draw progress bars (never in JSON mode)."""
        return not self.json

    def say(self, text: str) -> None:
        """A line for people (not printed with ``--json``)."""
        if not self.json and not self.muted:
            print(text, file=self.stream or sys.stdout, flush=True)

    def event(self, name: str, **fields) -> None:
        """One JSON line (only with ``--json``)."""
        if self.json and not self.muted:
            line = json.dumps({"event": name, **_plain(fields)}, allow_nan=False)
            stream = self.stream or sys.stdout
            stream.write(line + "\n")
            stream.flush()

    def start(self, command: str, **fields) -> None:
        self.event("start", command=command, **fields)

    def progress(self, stage: str, done: int, total: int | None = None, **fields) -> None:
        self.event("progress", stage=stage, done=int(done), total=total, **fields)

    def done(self, outputs, **fields) -> None:
        self.event("done", outputs=[str(p) for p in outputs], **fields)


def _plain(value):
    """JSON-safe values: paths as text, numpy numbers as numbers, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):   # numpy values
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="machine-readable output: one JSON object per line on stdout "
                             "(start, progress, done with the outputs); no human lines or "
                             "progress bars; errors stay one line on stderr")
