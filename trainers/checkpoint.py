"""Checkpoints: plain tensors/dicts/lists/numbers only, so ``torch.load(weights_only=True)``
reads them; written atomically (a killed run never leaves a half-written file)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import os
import re
import zipfile
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from proc_ml.errors import ModelError, OutputError
from proc_ml.fileio import write_bytes
from proc_ml.validation import Name, check, library_message

FORMAT = "proc-ml-checkpoint"
FORMAT_VERSION = 1


#: The checkpoints folder of a run (``last.pt``, ``best.pt``; ``trainers.runs``).
CHECKPOINT_DIR = "checkpoints"


def rng_state() -> dict:
    """torch, numpy and python RNG states as tensors and lists (no pickled objects)."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                       "pos": int(np_pos), "has_gauss": int(np_gauss), "cached": float(np_cached)},
             "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict, also=()) -> None:
    """Write a checkpoint atomically, and the same bytes to each path of ``also`` (serialised
    once: the loop writes ``last.pt`` and ``best.pt`` of an improved epoch); a failed write (a
    full disk) is one ``OutputError`` line and leaves that file's previous version."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    for target in (path, *also):
        try:
            write_bytes(target, data)
        except (OSError, RuntimeError) as exc:
            reason = ("No space left on device" if _disk_full(Path(target).parent)
                      else library_message(exc))
            raise OutputError(f"cannot write the checkpoint {target}: {reason}") from None


def _disk_full(folder: Path) -> bool:
    try:
        info = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return info.f_bavail * info.f_frsize < (4 << 20)


class Payload(BaseModel):
    """What the training loop, ``load_run`` and export read from a checkpoint (types and
    ranges, strict); the tensors inside ``models``/``optimizers`` are checked by loading
    them into the networks."""
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow",
                              arbitrary_types_allowed=True)

    format: Literal[FORMAT]
    format_version: Literal[FORMAT_VERSION]
    epoch: int = Field(ge=0, le=10 ** 9)
    global_step: int = Field(ge=0, le=2 ** 62)
    task: Name
    family: Name
    model_kwargs: dict
    info: dict
    config: dict
    models: dict
    optimizers: dict = Field(default_factory=dict)
    schedulers: dict = Field(default_factory=dict)
    scaler: dict = Field(default_factory=dict)
    rng: dict = Field(default_factory=dict)
    history: list[dict] = Field(default_factory=list)
    best: dict | None = None


def _torch_message(exc: Exception) -> str:
    """torch.load's failure without its advice to re-run with weights_only=False (loading
    pickled objects from a file is exactly what proc-ml refuses)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if found:
        return f"it holds a pickled Python object ({found.group(1)}), which proc-ml never loads"
    return library_message(exc)


_CUT_SHORT = ("the file is cut short or corrupt: a zip archive without its end; copy or "
              "download it again")


def _cut_short(path: Path) -> bool:
    """A zip archive (what ``torch.save`` writes) whose end is missing: a truncated copy
    (torch reports it as ``OSError: [Errno 22] Invalid argument`` or a miniz error)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
        return head == b"PK\x03\x04" and not zipfile.is_zipfile(path)
    except OSError:
        return False


def load(path: str | Path) -> dict:
    """A checkpoint's plain data (``weights_only``: no pickled objects are run), checked
    against ``Payload``; one ``ModelError`` line naming the file and field otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        reason = (_CUT_SHORT if _cut_short(path) else _torch_message(exc))
        raise ModelError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a proc-ml checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format_version {payload.get('format_version')} "
                         f"is not supported (this proc-ml reads {FORMAT_VERSION})")
    check(Payload, payload, source=str(path), what="checkpoint field", error=ModelError)
    return payload
