"""YAML configuration: safe loading, strict merging over defaults, ``a.b.c=value`` overrides.

Every config in proc-ml is a nested dict whose defaults define the allowed keys and their
types. Unknown keys and wrongly typed values stop with one line naming the key.
"""

from __future__ import annotations

import copy
import difflib
import os
from typing import Any, Iterable, Mapping

import yaml

from .errors import ConfigError

# Keys under these dotted paths hold free-form mappings (e.g. archetype weights the user
# may extend); their entries are not checked against the defaults.
FreeKeys = Iterable[str]


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where} invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.epochs=5`` -> (['training', 'epochs'], 5); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}': expected KEY=VALUE, e.g. training.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _describe(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _unknown(path: str, key: str, allowed: Iterable[str], source: str) -> ConfigError:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    prefix = f"{path}." if path else ""
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
    full = f"{prefix}{key}"
    return ConfigError(f"{source}: unknown config key '{full}'{hint}")


def merge(defaults: Mapping, override: Mapping, *, source: str = "config",
          free: FreeKeys = (), _path: str = "") -> dict:
    """Return ``defaults`` updated by ``override``, refusing unknown keys and wrong types."""
    out = copy.deepcopy(dict(defaults))
    free = tuple(free)
    for key, value in override.items():
        key = str(key)
        full = f"{_path}.{key}" if _path else key
        if _path in free:
            out[key] = copy.deepcopy(value)
            continue
        if key not in out:
            raise _unknown(_path, key, out.keys(), source)
        default = out[key]
        if isinstance(default, dict) and default and full not in free:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: config key '{full}' must be a mapping, "
                                  f"got {_describe(value)}")
            out[key] = merge(default, value, source=source, free=free, _path=full)
        else:
            if not _type_ok(default, value):
                raise ConfigError(f"{source}: config key '{full}' must be "
                                  f"{_describe(default)}, got {value!r}")
            out[key] = float(value) if isinstance(default, float) and value is not None else copy.deepcopy(value)
    return out


def apply_overrides(config: Mapping, overrides: Iterable[str], *, free: FreeKeys = ()) -> dict:
    """Apply ``--set a.b=v`` strings on top of an already-merged config."""
    out = copy.deepcopy(dict(config))
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        out = merge(out, nested, source=f"--set {text}", free=free)
    return out


def load_config(defaults: Mapping, path: str | os.PathLike | None = None,
                overrides: Iterable[str] = (), *, free: FreeKeys = ()) -> dict:
    """Defaults <- YAML file <- command-line overrides, each step validated."""
    config = copy.deepcopy(dict(defaults))
    if path is not None:
        config = merge(config, load_yaml(path), source=str(path), free=free)
    return apply_overrides(config, overrides, free=free)
