"""Helpers of the fuzz suite (tests/test_fuzz_*.py): run a command on a crafted input and
check the reliability contract every case shares:

* the exit code is the documented one (1: the command refused, 2: batch assets failed);
* stderr holds exactly one line per error ("proc-ml CMD: error: ..."), no traceback;
* nothing was written outside the output folder (the sandbox is snapshotted around the run,
  including an ``outside`` folder that planted symlinks point into).

Commands run in-process (``proc_ml.cli.main``, fast); ``run_limited`` runs one in a
subprocess under a hard memory limit, for memory bombs (a regression then fails the test
instead of taking the machine down).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Address space a memory-bomb subprocess may use (the default budget is 4 GiB).
BOMB_LIMIT = 6 << 30


@dataclass
class Sandbox:
    """A tmp folder: ``inp`` (crafted inputs), ``out`` (the command's output) and ``outside``
    (where a planted symlink points; must stay untouched)."""
    root: Path

    @property
    def inp(self) -> Path:
        return self.root / "in"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @classmethod
    def make(cls, tmp_path: Path) -> "Sandbox":
        box = cls(tmp_path / "box")
        for folder in (box.inp, box.outside):
            folder.mkdir(parents=True, exist_ok=True)
        (box.outside / "keep.txt").write_text("must not change\n")
        return box

    def snapshot(self) -> dict:
        """Every entry outside ``out`` (files with size and mtime, links with target)."""
        found = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            if here == self.out or self.out in here.parents:
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                path = here / name
                rel = str(path.relative_to(self.root))
                if path == self.out:
                    continue
                if path.is_symlink():
                    found[rel] = ("link", os.readlink(path))
                elif path.is_file():
                    info = path.stat()
                    found[rel] = ("file", info.st_size, info.st_mtime_ns)
                else:
                    found[rel] = ("dir",)
        return found


def run(capfd, box: Sandbox, *args) -> tuple[int, str, str]:
    """``proc-ml ARGS`` in-process; ``(exit code, stdout, stderr)``; fails the test when
    anything outside ``box.out`` changed."""
    from proc_ml.cli import main

    before = box.snapshot()
    capfd.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:              # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capfd.readouterr()
    after = box.snapshot()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"written outside OUT: {changed}"
    return code, out, err


def assert_refused(result, *words, code: int = 1, command: str | None = None) -> str:
    """The run failed with ``code`` and exactly one stderr line containing every word
    (case-insensitive); returns the line."""
    exit_code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_code == code, f"exit {exit_code}, stderr: {err!r}"
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    line = lines[0]
    assert "Traceback" not in err and "Error:" not in line.split("error:", 1)[0]
    assert "internal error" not in line, f"an unexpected exception reached the CLI: {line}"
    if command:
        assert line.startswith(f"proc-ml {command}: error: "), line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def manifest_records(out: Path) -> dict[str, dict]:
    """The latest batch record per asset (``OUT/manifest.jsonl`` must be strict JSON)."""
    records = {}
    for line in (out / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line, parse_constant=_refuse_constant)
        records[record["asset"]] = record
    return records


def _refuse_constant(name):
    raise AssertionError(f"manifest holds a bare {name} (not JSON)")


def run_limited(args, *, cwd: Path, limit: int = BOMB_LIMIT, env: dict | None = None,
                timeout: float = 300) -> tuple[int, str, str]:
    """``proc-ml ARGS`` in a subprocess whose data memory is capped at ``limit`` bytes."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_DATA, ({int(limit)}, {int(limit)}))\n"
        "from proc_ml.cli import main\n"
        f"sys.exit(main({[str(a) for a in args]!r}))\n")
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def peak_rss_of(result_stderr: str) -> int | None:
    """``Maximum resident set size (kbytes)`` from ``/usr/bin/time -v`` output, in bytes."""
    for line in result_stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[-1]) * 1024
    return None
