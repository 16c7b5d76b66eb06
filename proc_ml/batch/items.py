"""Work items, content hashes and per-item results shared by the runner and every executor."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

#: Bumped when the batch output layout changes, so older outputs are redone.
BATCH_FORMAT_VERSION = 1
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class WorkItem:
    rel: str            # asset path relative to the asset folder ('/'-separated)
    path: str           # absolute path of the file to read
    sha256: str         # content hash when the item was planned
    size: int
    out_dir: str        # absolute folder for this asset's outputs (checked to be inside OUT)


@dataclass
class ItemResult:
    rel: str
    status: str                                  # ok | failed
    error: str | None = None                     # one line when failed
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)   # outputs written, relative to out_dir
    summary: dict = field(default_factory=dict)


@dataclass
class TaskOutput:
    """What a task's processor returns for one asset, after writing its files atomically."""
    files: list[str]             # names of the files it wrote, relative to the item's out_dir
    summary: dict                # short, JSON-able prediction summary


def settings_sha256(task: str, task_version: int, options: dict) -> str:
    """Hash of everything besides the asset and the model that changes an item's outputs."""
    doc = {"task": task, "task_version": task_version, "batch_format": BATCH_FORMAT_VERSION,
           "options": options}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def item_out_dir(out_dir, asset_rel: str) -> Path:
    """The output folder of one asset, mirroring it: ``a/b.obj`` -> ``OUT/a/b.obj/``.

    ``safe_join`` refuses any result outside OUT ('..', absolute names, symlinked folders).
    """
    from ..fileio import safe_join

    return safe_join(out_dir, asset_rel)


def output_rel(asset_rel: str, name: str) -> str:
    """An output's path relative to OUT, as the manifest records it."""
    return f"{asset_rel}/{name}"
