"""Checkpoints: plain tensors/dicts/lists/numbers only, so ``torch.load(weights_only=True)``
reads them; written atomically (a killed run never leaves a half-written file)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from proc_ml.errors import ModelError
from proc_ml.fileio import atomic_path

FORMAT = "proc-ml-checkpoint"
FORMAT_VERSION = 1


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


def save(path: Path, payload: dict) -> None:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise ModelError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a proc-ml checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format_version {payload.get('format_version')} "
                         f"is not supported (this proc-ml reads {FORMAT_VERSION})")
    return payload
