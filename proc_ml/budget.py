"""The memory budget: how much memory one proc-ml process may use for one input, estimated
*before* anything large is allocated (docs/reliability.md).

The default, ``DEFAULT_BUDGET`` = 4 GiB per process, is sized for the smallest machine
proc-ml supports in production: 2 cores and 24 GB with two batch workers (2 x 4 GiB for
the workers, the rest for the driver, the OS and a DCC application). Set another with the
``PROC_ML_MEMORY_BUDGET`` environment variable (``6G``, ``4096M``, bytes) or, for batch,
``--memory-budget``; ``set_budget`` does it from Python.

Estimates (bytes) of the steps that grow with the input, each checked with ``check``:

* reading a mesh file: ``parse_bytes`` (a multiple of the file size, by format);
* predicting parts on a grid: ``parts_grid_bytes`` (per padded cell: the encoded input,
  the model's activations, the logits and the probabilities over 6 x K face classes);
* predicting on points: ``points_bytes`` (per point and feature; quadratic in the points
  for DGCNN's neighbour search);
* a grid of a given shape for the voxeliser and outputs: ``grid_bytes``.

Batch workers also get the budget as a hard limit (``apply_hard_limit``: ``RLIMIT_DATA``
on Linux), so an input the estimates miss fails as "out of memory" in its own worker
instead of growing past the budget: the per-worker peak stays bounded.
"""

from __future__ import annotations

import math
import os
import re

from .errors import ConfigError, LimitError

ENV = "PROC_ML_MEMORY_BUDGET"
DEFAULT_BUDGET = 4 << 30
#: What the interpreter, numpy, onnxruntime and trimesh take before any input (measured
#: about 330 MB of private data in a batch worker); not available to inputs.
BASELINE = 512 << 20
#: Smallest budget accepted (below it not even the libraries fit).
MIN_BUDGET = 1 << 30
#: Resident memory that is not private data (the libraries' code and read-only data,
#: mapped from their files): the hard limit leaves it out, so the peak RSS stays within
#: the budget.
MAPPED_CODE = 256 << 20

_budget: int | None = None
_hard_limit = False


def parse_size(text, what: str = ENV) -> int:
    """``"4G"``, ``"512M"``, ``"4096 MiB"`` or a number of bytes -> bytes."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not found:
        raise ConfigError(f"{what}: '{text}' is not a size (e.g. 4G, 4096M or bytes)")
    value = float(found.group(1)) * 1024 ** " KMGT".index(found.group(2).upper() or " ")
    if not math.isfinite(value) or value < MIN_BUDGET:
        raise ConfigError(f"{what}: {text} is below the smallest memory budget "
                          f"({format_bytes(MIN_BUDGET)})")
    if value > 1 << 50:
        raise ConfigError(f"{what}: {text} is not a plausible memory size")
    return int(value)


def memory_budget() -> int:
    """The budget in bytes: ``set_budget``'s value, else ``PROC_ML_MEMORY_BUDGET``, else
    ``DEFAULT_BUDGET``."""
    if _budget is not None:
        return _budget
    text = os.environ.get(ENV)
    return parse_size(text) if text else DEFAULT_BUDGET


def set_budget(nbytes: int | None) -> None:
    """Use ``nbytes`` as this process's budget (None: back to the environment/default)."""
    global _budget
    _budget = None if nbytes is None else int(nbytes)


def format_bytes(nbytes: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def check(nbytes: float, what: str, hint: str = "") -> None:
    """``LimitError`` (one line) when ``what`` needs more than the budget leaves for inputs."""
    budget = memory_budget()
    available = budget - BASELINE
    if nbytes > available:
        extra = f"; {hint}" if hint else ""
        raise LimitError(f"{what} needs about {format_bytes(nbytes)}, over the memory budget "
                         f"of {format_bytes(budget)} per process ({ENV} or --memory-budget)"
                         f"{extra}")


# -- estimates ------------------------------------------------------------------------------------
#: Peak memory of trimesh reading a file, as a multiple of the file size (measured on
#: trimesh 4.x: text formats hold the text, its split lines and the arrays at once).
PARSE_FACTORS = {"obj": 14, "off": 14, "ply": 6, "stl": 6, "glb": 5, "gltf": 10, "3mf": 16,
                 "3dxml": 16, "xaml": 16, "xyz": 14, "pcd": 6, "dae": 16}
DEFAULT_PARSE_FACTOR = 16


def parse_bytes(file_bytes: int, ext: str) -> int:
    """Peak memory of reading a mesh file of ``file_bytes`` (after decompression)."""
    return int(file_bytes * PARSE_FACTORS.get(ext, DEFAULT_PARSE_FACTOR))


#: Bytes per padded cell the grid models' activations may take on top of their in- and
#: outputs (measured on the shipped parts-unet3d widths; wider models fall back on the
#: hard limit).
ACTIVATION_BYTES_PER_CELL = 320
#: Bytes per cell of a grid outside the model: occupancy, face masks, labels, the
#: voxeliser's column counts, the output meshes' share.
GRID_BYTES_PER_CELL = 96


def parts_grid_bytes(shape, n_inputs: int, n_parts: int, stride: int = 1,
                     input_kind: str = "grid") -> int:
    """Peak memory of predicting parts on one grid of ``shape`` (see the module doc)."""
    padded = [int(math.ceil(int(n) / stride) * stride) for n in shape]
    cells = math.prod(padded)
    per_cell = (4 * 3 * n_inputs                  # encoded channels, padded, batched
                + 4 * 6 * n_parts * 2.2           # logits and probabilities
                + ACTIVATION_BYTES_PER_CELL + GRID_BYTES_PER_CELL)
    if input_kind == "cells":                     # per occupied cell only, but the
        per_cell = 4 * 6 * n_parts * 2.2 + 4 * 2 * n_inputs + GRID_BYTES_PER_CELL
    return int(cells * per_cell)


def grid_bytes(shape, n_parts: int = 8) -> int:
    """Generic peak of labelling a grid of ``shape`` when the model is not known yet
    (a parts model with ``n_parts`` parts and the shipped widths)."""
    return parts_grid_bytes(shape, 16, n_parts, 4)


def points_bytes(n_points: int, n_features: int, family: str = "", batch: int = 1) -> int:
    """Peak memory of a point network on ``n_points`` points: per-point activations up to
    1024 channels, and for DGCNN the n x n distance matrix of its neighbour search."""
    n = int(n_points) * int(batch)
    total = n * (4 * n_features * 3 + 4 * 1024 * 3)
    if "dgcnn" in family:
        total += int(batch) * int(n_points) ** 2 * 4 * 3
    return int(total)


# -- the hard limit of worker processes ---------------------------------------------------------
def apply_hard_limit(nbytes: int | None = None) -> bool:
    """Limit this process's private memory to the budget less ``MAPPED_CODE``
    (``RLIMIT_DATA``, Linux): an allocation beyond it raises ``MemoryError`` (onnxruntime:
    an allocation failure) instead of growing the process, so its resident size stays
    within the budget. True when the limit was set."""
    try:
        import resource
    except ImportError:       # Windows
        return False
    limit = int(nbytes if nbytes is not None else memory_budget()) - MAPPED_CODE
    global _hard_limit
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ValueError, OSError):
        return False
    _hard_limit = True
    return True


def hard_limit_active() -> bool:
    """True in a process that ``apply_hard_limit`` limited (a batch worker)."""
    return _hard_limit
