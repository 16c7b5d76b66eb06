"""Running work items inside one worker (a local process or a Ray actor).

The worker opens the task's model once, then runs items one after another. Every failure
of an item becomes a one-line error in its result; nothing an asset does stops the worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from .. import budget
from ..errors import ProcMLError
from ..fileio import display_name, file_sha256, safe_join
from .assets import AssetError, Limits, one_line
from .items import FAILED, OK, ItemResult, TaskOutput, WorkItem
from .tasks import resolve_opener


class ItemRunner:
    """One worker's processor (model loaded once) and the per-item error handling."""

    def __init__(self, opener: str, model_path: str, options: dict, limits: Limits):
        # Import mesh IO now: --timeout should time the asset, not the first lazy import.
        import trimesh  # noqa: F401

        logging.getLogger("trimesh").setLevel(logging.CRITICAL)
        self.limits = limits
        # the per-worker memory budget: estimates refuse what would not fit, and the hard
        # limit turns anything they miss into this asset's "out of memory" (docs/reliability.md)
        budget.set_budget(limits.memory_budget)
        self.hard_limit = budget.apply_hard_limit() if _runs_on_cpu(options) else False
        self.processor = resolve_opener(opener)(model_path, dict(options), limits)

    def run(self, item: WorkItem) -> ItemResult:
        start = time.perf_counter()
        try:
            output = self._process(item)
        except MemoryError:
            return _failed(item, f"out of memory while processing the asset (the memory budget "
                                 f"is {budget.format_bytes(budget.memory_budget())} per worker: "
                                 f"--memory-budget)", start)
        except Exception as exc:  # noqa: BLE001 - any asset failure is recorded, never raised
            return _failed(item, one_line(exc), start)
        return ItemResult(item.rel, OK, None, time.perf_counter() - start,
                          sorted(output.files), dict(output.summary))

    def _process(self, item: WorkItem) -> TaskOutput:
        path, out_dir = Path(item.path), Path(item.out_dir)
        self.limits.check_bytes(path.stat().st_size)
        with _utf8_alias(path) as readable:
            output = self.processor(readable, out_dir)
        if not isinstance(output, TaskOutput):
            raise TypeError(f"task processor returned {type(output).__name__}, not TaskOutput")
        for name in output.files:
            if not safe_join(out_dir, name).is_file():
                raise ProcMLError(f"task output '{name}' was not written")
        # The planned hash is what the manifest records; refuse results of a file that was
        # rewritten while it was processed (the next run picks up the new content).
        if file_sha256(path) != item.sha256:
            raise AssetError("the file changed while it was processed; run the batch again")
        return output


@contextlib.contextmanager
def _utf8_alias(path: Path):
    """``path`` itself, or, when its name is not valid UTF-8 (a file from another system),
    a symlink to it under its escaped name in a private temp folder: mesh loaders encode
    paths as UTF-8 and would fail on the name, not the file."""
    try:
        str(path).encode("utf-8")
        yield path
        return
    except UnicodeEncodeError:
        pass
    folder = Path(tempfile.mkdtemp(prefix="proc-ml-name-"))
    alias = folder / display_name(path.name)
    try:
        os.symlink(path.resolve(), alias)
        yield alias
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _runs_on_cpu(options: dict) -> bool:
    """The hard memory limit is for CPU workers: GPU runtimes map device memory into the
    process, which an address-space limit would break."""
    from ..runtime.providers import resolve_device

    try:
        return resolve_device(str(options.get("device", "auto"))) == "cpu"
    except ProcMLError:
        return False


def _failed(item: WorkItem, error: str, start: float) -> ItemResult:
    return ItemResult(item.rel, FAILED, error or "failed", time.perf_counter() - start)


class WorkerSpec:
    """Everything a worker needs to open its processor (picklable for processes and Ray)."""

    def __init__(self, opener: str, model_path: str, options: dict, limits: Limits):
        self.opener, self.model_path, self.options, self.limits = opener, model_path, options, limits

    def runner(self) -> ItemRunner:
        return ItemRunner(self.opener, self.model_path, self.options, self.limits)


def failed_result(item: WorkItem, error: str, seconds: float = 0.0) -> ItemResult:
    return ItemResult(item.rel, FAILED, error, seconds)
