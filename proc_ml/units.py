"""The cell size: proc-ml's one default and the one order in which every entry point
resolves it.

A cell is ``cell_size`` scene units (metres) on a side. Order, first found wins:

1. the value the user gave (``--cell-size``, a node's "cell size" parameter; 0 or unset
   means "not given");
2. the model's training cell size (its ONNX metadata);
3. the cell size of the dataset the input belongs to (its ``dataset.yaml``);
4. ``DEFAULT_CELL_SIZE``, the generator's default.

``proc-ml predict``, ``proc-ml batch``, the Houdini SOPs and the Blender operators all call
``resolve_cell_size``, so the same mesh becomes the same grid everywhere.
"""

from __future__ import annotations

import math

from .errors import ConfigError

#: Metres per cell: the generator's default and the last fallback everywhere.
DEFAULT_CELL_SIZE = 3.0
#: Cell sizes outside this range are refused (a typo or a unit mix-up: no building is
#: voxelised at a micrometre or a thousand kilometres per cell).
MIN_CELL_SIZE, MAX_CELL_SIZE = 1e-6, 1e6


def check_cell_size(value, what: str = "cell size") -> float:
    """``value`` as a float > 0; ``ConfigError`` naming ``what`` otherwise."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number > 0, got {value!r}") from None
    if not math.isfinite(size) or size <= 0:
        raise ConfigError(f"{what} must be > 0, got {value}")
    if not MIN_CELL_SIZE <= size <= MAX_CELL_SIZE:
        raise ConfigError(f"{what} must be between {MIN_CELL_SIZE:g} and {MAX_CELL_SIZE:g} "
                          f"scene units, got {value}")
    return size


def resolve_cell_size(given=None, *, model: float | None = None, manifest: float | None = None,
                      what: str = "cell size") -> float:
    """The cell size to use: ``given`` (checked; None or 0 = not given), else the model's,
    else the dataset manifest's, else ``DEFAULT_CELL_SIZE``."""
    if given is not None and given != 0:
        return check_cell_size(given, what)
    for value, source in ((model, "the model's cell size"), (manifest, "the dataset's cell size")):
        if value is not None and float(value) > 0:
            return check_cell_size(value, source)
    return DEFAULT_CELL_SIZE
