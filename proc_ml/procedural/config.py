"""Generator configuration: defaults, YAML loading and validation."""

from __future__ import annotations

import copy
import os
import re

from ..config import key_error, load_config_sources, same_value
from ..errors import ConfigError
from ..units import DEFAULT_CELL_SIZE
from .facades import DENSITIES, ENTRANCES, GROUND_FLOORS
from .lots import BLOCKS
from .parts import DEFAULT_PARTS, Vocabulary
from .roofs import ROOFS

ARCHETYPES = ("slab", "tower", "setback", "l_block", "t_block", "u_block",
              "courtyard", "pagoda", "row_houses")

RULES = ("facade", "legacy")

#: The facade grammar (``lots.py``, ``facades.py``; docs/generator.md). Lengths in metres;
#: ``[lo, hi]`` ranges are drawn uniformly; ``{name: weight}`` choices by relative weight.
FACADE_DEFAULTS = {
    "blocks": {"row": 0.3, "row_end": 0.15, "corner": 0.15, "detached": 0.2, "island": 0.1,
               "archetype": 0.2},
    "frontage": [5.0, 30.0],
    "depth": [7.0, 16.0],
    "floors": [1, 6],
    "ground_floor_height": [3.0, 4.2],
    "shop_floor_height": [3.6, 5.0],
    "floor_height": [2.7, 3.6],
    "roof": {"flat": 0.25, "gable": 0.45, "hip": 0.15, "mansard": 0.15},
    "roof_pitch_deg": [25.0, 55.0],
    "max_roof_rise": 8.0,
    "ridge_along_street": 0.7,
    "rear_wing": 0.3,
    "protrusions": 0.15,
    "corner_archetypes": 0.2,
    "ground_floor": {"shop": 0.3, "residential": 0.5, "plinth": 0.2},
    "entrance": {"centre": 0.4, "end": 0.3, "group": 0.15, "any": 0.15},
    "back": {"regular": 0.3, "sparse": 0.3, "blank": 0.4},
    "side": {"regular": 0.15, "sparse": 0.25, "blank": 0.6},
    "bay_width": [2.2, 4.2],
    "window_width": [0.8, 1.5],
    "window_height": [1.2, 1.9],
    "sill": [0.7, 1.0],
    "ground_sill": [0.8, 1.4],
    "door_width": [1.0, 1.8],
    "door_height": [2.1, 2.6],
    "windowless_bay": 0.2,
    "attic_windows": 0.4,
    "back_door": 0.3,
    "opening_noise": 0.05,
    "rotation_probability": 0.3,
    "rotation_deg": 8.0,
    "half_cell_offsets": 0.3,
    "shopfront_part": "window",
    "voxelizer": "height_field",
}
_FACADE_CHOICES = {"blocks": BLOCKS, "roof": ROOFS,
                   "ground_floor": GROUND_FLOORS, "entrance": ENTRANCES,
                   "back": DENSITIES, "side": DENSITIES}
_FACADE_PROBABILITIES = ("ridge_along_street", "rear_wing", "protrusions", "corner_archetypes",
                         "windowless_bay", "attic_windows", "back_door", "opening_noise",
                         "rotation_probability", "half_cell_offsets")

DEFAULTS = {
    "rules": "facade",
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
    "facade": FACADE_DEFAULTS,
}


_PART_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: Cells per grid axis a generated building may have.
GRID_SIZE_RANGE = (4, 256)


def _changed(section: dict, defaults: dict) -> list[str]:
    """Dotted paths of the keys of ``section`` whose values differ from ``defaults`` (into
    nested mappings; lists and tuples alike)."""
    out = []
    for key, value in section.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            out += [f"{key}.{sub}" for sub in _changed(value, default)]
        elif not same_value(value, default):
            out.append(key)
    return out


def _check_rules_keys(cfg: dict, source: str) -> None:
    """Refuse a changed ``style:`` key under the facade grammar and a changed ``facade:`` key
    under the legacy rules: each set of rules ignores the other's keys."""
    if cfg["rules"] == "facade":
        changed = _changed(cfg["style"], DEFAULTS["style"])
        if changed:
            raise _fail(f"style.{changed[0]}", "is for rules: legacy only (the facade grammar "
                        "draws its facades from the facade: keys)", source)
    else:
        changed = _changed(cfg["facade"], DEFAULTS["facade"])
        if changed:
            raise _fail(f"facade.{changed[0]}", f"is for rules: facade only (rules: "
                        f"{cfg['rules']} ignores it)", source)


def _fail(key: str, why: str, source: str) -> ConfigError:
    return key_error(source, key, why)


def validate(cfg: dict, source: str = "config") -> dict:
    """Check values beyond their types; return the config unchanged."""
    size = cfg["grid"]["size"]
    if (len(size) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) for n in size)
            or min(size) < GRID_SIZE_RANGE[0] or max(size) > GRID_SIZE_RANGE[1]):
        low, high = GRID_SIZE_RANGE
        raise _fail("grid.size", f"must be 3 integers between {low} and {high}, got {size}", source)
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
    if cfg["rules"] not in RULES:
        raise _fail("rules", f"must be one of {', '.join(RULES)}, got {cfg['rules']!r}", source)
    _validate_facade(cfg["facade"], source)
    _check_rules_keys(cfg, source)
    split = cfg["split"]
    if split["val"] < 0 or split["test"] < 0 or split["val"] + split["test"] >= 1:
        raise _fail("split", f"val and test must be >= 0 and sum below 1, got {split}", source)
    return cfg


def _validate_facade(fc: dict, source: str) -> None:
    for key, names in _FACADE_CHOICES.items():
        weights = fc[key]
        for name, w in weights.items():
            if name not in names:
                raise _fail(f"facade.{key}.{name}", f"is not one of {', '.join(names)}", source)
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise _fail(f"facade.{key}.{name}", f"must be a weight >= 0, got {w!r}", source)
        if sum(weights.values()) <= 0:
            raise _fail(f"facade.{key}", "needs at least one weight > 0", source)
    for key, default in FACADE_DEFAULTS.items():
        value = fc[key]
        if isinstance(default, list):
            ok = (isinstance(value, list) and len(value) == 2
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                  and 0 <= value[0] <= value[1])
            if not ok:
                raise _fail(f"facade.{key}", f"must be a range [lo, hi] with 0 <= lo <= hi, "
                                             f"got {value!r}", source)
    lo, hi = fc["floors"]
    if not (isinstance(lo, int) and isinstance(hi, int) and lo >= 1):
        raise _fail("facade.floors", f"must be whole numbers of floors >= 1, got {fc['floors']}", source)
    for key in ("frontage", "depth", "floor_height", "ground_floor_height", "shop_floor_height",
                "bay_width"):
        if fc[key][0] <= 0:
            raise _fail(f"facade.{key}", f"must be > 0, got {fc[key]}", source)
    for key in _FACADE_PROBABILITIES:
        if not 0.0 <= fc[key] <= 1.0:
            raise _fail(f"facade.{key}", f"must be in [0, 1], got {fc[key]}", source)
    if not 0 <= fc["rotation_deg"] <= 45:
        raise _fail("facade.rotation_deg", f"must be in [0, 45], got {fc['rotation_deg']}", source)
    if not fc["roof_pitch_deg"][1] < 90:
        raise _fail("facade.roof_pitch_deg", "must be pitches in degrees below 90 (a roof "
                                             f"slope from the eaves), got {fc['roof_pitch_deg']}",
                    source)
    if fc["max_roof_rise"] < 0:
        raise _fail("facade.max_roof_rise", f"must be >= 0, got {fc['max_roof_rise']}", source)
    if fc["voxelizer"] not in ("height_field", "mesh"):
        raise _fail("facade.voxelizer", "must be height_field (the real-building import's "
                                        "half-volume rule) or mesh (proc-ml predict's "
                                        f"voxeliser on the sloped mesh), got {fc['voxelizer']!r}", source)
    if fc["shopfront_part"] not in ("window", "shopfront"):
        raise _fail("facade.shopfront_part", "must be window (what a CityGML survey records) "
                                             f"or shopfront, got {fc['shopfront_part']!r}", source)


def load_generator_config(path: str | os.PathLike | None = None, overrides=()) -> dict:
    """Defaults <- YAML <- ``--set`` overrides, validated. Unknown archetypes are refused."""
    cfg, sources = load_config_sources(DEFAULTS, path, overrides)
    # errors name the --set or the file that gave the bad value ("config" for a default)
    return validate(cfg, sources)


def default_config() -> dict:
    return copy.deepcopy(DEFAULTS)
