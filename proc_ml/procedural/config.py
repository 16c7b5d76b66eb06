"""Generator configuration: defaults, YAML loading and validation."""

from __future__ import annotations

import copy
import os
import re

from ..config import load_config_sources, source_of
from ..errors import ConfigError
from ..units import DEFAULT_CELL_SIZE
from .parts import DEFAULT_PARTS, Vocabulary

ARCHETYPES = ("slab", "tower", "setback", "l_block", "t_block", "u_block",
              "courtyard", "pagoda", "row_houses")

DEFAULTS = {
    "grid": {"size": [16, 16, 16], "cell_size": DEFAULT_CELL_SIZE},
    "parts": list(DEFAULT_PARTS),
    "archetypes": {name: 1.0 for name in ARCHETYPES},
    "style": {
        "window_periods": [1, 2, 3],
        "shopfront_probability": 0.4,
        "balcony_probability": 0.5,
    },
    "noise": 0.0,
    "points": {"per_building": 2048},
    "split": {"val": 0.1, "test": 0.1},
}


_PART_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _fail(key: str, why: str, source: str) -> ConfigError:
    return ConfigError(f"{source_of(source, key)}: config key '{key}' {why}")


def validate(cfg: dict, source: str = "config") -> dict:
    """Check values beyond their types; return the config unchanged."""
    size = cfg["grid"]["size"]
    if (len(size) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) for n in size)
            or min(size) < 4 or max(size) > 256):
        raise _fail("grid.size", f"must be 3 integers between 4 and 256, got {size}", source)
    if cfg["grid"]["cell_size"] <= 0:
        raise _fail("grid.cell_size", f"must be > 0, got {cfg['grid']['cell_size']}", source)
    if not all(isinstance(p, str) and _PART_NAME.fullmatch(p) for p in cfg["parts"]):
        raise _fail("parts", "must be a list of part names made of letters, digits, '_' "
                             f"and '-' (they become CSV columns and mesh object names), "
                             f"got {cfg['parts']}", source)
    Vocabulary(tuple(cfg["parts"]))
    weights = cfg["archetypes"]
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
            raise _fail(f"archetypes.{name}", f"must be a weight >= 0, got {w!r}", source)
    if sum(weights.values()) <= 0:
        raise _fail("archetypes", "needs at least one weight > 0", source)
    periods = cfg["style"]["window_periods"]
    if (not periods or not all(isinstance(p, int) and not isinstance(p, bool) for p in periods)
            or not set(periods) <= {1, 2, 3}):
        raise _fail("style.window_periods", f"must be a non-empty subset of [1, 2, 3], got {periods}", source)
    for key in ("shopfront_probability", "balcony_probability"):
        p = cfg["style"][key]
        if not 0.0 <= p <= 1.0:
            raise _fail(f"style.{key}", f"must be in [0, 1], got {p}", source)
    if not 0.0 <= cfg["noise"] <= 1.0:
        raise _fail("noise", f"must be in [0, 1], got {cfg['noise']}", source)
    if not 1 <= cfg["points"]["per_building"] <= 1_000_000:
        raise _fail("points.per_building", f"must be >= 1 and <= 1000000, got "
                                           f"{cfg['points']['per_building']}", source)
    split = cfg["split"]
    if split["val"] < 0 or split["test"] < 0 or split["val"] + split["test"] >= 1:
        raise _fail("split", f"val and test must be >= 0 and sum below 1, got {split}", source)
    return cfg


def load_generator_config(path: str | os.PathLike | None = None, overrides=()) -> dict:
    """Defaults <- YAML <- ``--set`` overrides, validated. Unknown archetypes are refused."""
    cfg, sources = load_config_sources(DEFAULTS, path, overrides)
    # without a file every non-default value came from --set: errors say "config"
    return validate(cfg, sources if path else "config")


def default_config() -> dict:
    return copy.deepcopy(DEFAULTS)
