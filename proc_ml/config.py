"""YAML configuration: safe loading, strict merging over defaults, ``a.b.c=value`` overrides.

Every config in proc-ml is a nested dict whose defaults define the allowed keys and their
types. Unknown keys and wrongly typed values stop with one line naming the key.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from typing import Any, Iterable, Mapping

import yaml

from .errors import ConfigError, ProcMLError
from .validation import non_finite

# Keys under these dotted paths hold free-form mappings (e.g. archetype weights the user
# may extend); their entries are not checked against the defaults.
FreeKeys = Iterable[str]


#: Limits of every YAML document proc-ml reads (configs, dataset.yaml, ``--set`` values):
#: far above any real config, far below what would exhaust memory or the Python stack.
MAX_YAML_BYTES = 4 << 20          # file size
MAX_YAML_DEPTH = 50               # nesting of lists and mappings
MAX_YAML_VALUES = 200_000         # values after expanding aliases ("billion laughs")


class YAMLLimitError(yaml.YAMLError):
    """A YAML document over one of the limits above."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses deep nesting while composing (the composer recurses
    once per level, so a document thousands of levels deep would end in RecursionError)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YAMLLimitError(f"nested deeper than {MAX_YAML_DEPTH} levels",
                                     self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.1 (PyYAML) reads ``1e-4`` and ``3E5`` as text (its floats need a dot); YAML 1.2 and
# every config author read them as numbers: a learning rate is written that way.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT,
                                     list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that knows the loader's extra float rule, so it quotes a string
    such as ``'1e5'`` (a folder or part name) that would otherwise be read back as a number."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


def dump_yaml(data, **options) -> str:
    """``data`` as YAML text that :func:`load_yaml` reads back as the same values
    (``yaml.safe_dump``'s options)."""
    return yaml.dump(data, Dumper=_Dumper, **options)


def _expanded_size(node, sizes: dict, active: set, limit: int = MAX_YAML_VALUES) -> int:
    """Values ``node`` stands for once every alias is expanded (aliases share nodes, so a
    few lines can stand for billions of values); memoised, so linear in the document."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise YAMLLimitError("an alias refers to the value that contains it", node.start_mark)
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, active, limit)
        if total > limit:
            raise YAMLLimitError(f"expands to more than {limit} values through "
                                 f"aliases (&anchor / *alias)", node.start_mark)
    active.discard(key)
    sizes[key] = total
    return total


def _check_unique_keys(node, checked: set) -> None:
    """A mapping that gives one key twice is refused (YAML leaves it to the loader, and
    PyYAML keeps the last silently: a config's first ``lr:`` would be lost without a word).
    Keys brought in by a merge (``<<: *defaults``) may be overridden, as YAML intends."""
    stack = [node]
    while stack:
        node = stack.pop()
        if id(node) in checked:
            continue
        checked.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key, value in node.value:
                stack.append(value)
                if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
                    continue
                if key.value in first:
                    raise YAMLLimitError(f"key '{clean(key.value, 60)}' appears twice in one "
                                         f"mapping (first on line {first[key.value] + 1})",
                                         key.start_mark)
                first[key.value] = key.start_mark.line


def _parse(text: str, max_chars: int = MAX_YAML_BYTES):
    """The document's value; ``yaml.YAMLError`` (``YAMLLimitError`` over a limit). Without
    aliases a document holds fewer values than characters, so the expansion limit is the
    larger of ``MAX_YAML_VALUES`` and the document's length."""
    if len(text) > max_chars:
        raise YAMLLimitError(f"{len(text)} characters, over the limit of {max_chars}")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set(), max(MAX_YAML_VALUES, len(text)))
        _check_unique_keys(node, set())
        return loader.construct_document(node)
    except RecursionError:        # defensive: the depth limit stops nesting long before
        raise YAMLLimitError("nested too deeply") from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, source: str, error: type[ProcMLError]) -> ProcMLError:
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable"])[0]
    return error(f"{source}:{where} invalid YAML: {clean(problem, 160)}")


def parse_yaml(text: str, source: str, error: type[ProcMLError] = ConfigError,
               max_chars: int = MAX_YAML_BYTES):
    """One YAML document, safely (``SafeLoader`` types only) and within the limits above;
    any problem is one ``error`` line naming ``source`` and the line."""
    try:
        return _parse(text, max_chars)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, error) from None


def read_text(path: str | os.PathLike, what: str, error: type[ProcMLError] = ConfigError,
              limit: int = MAX_YAML_BYTES) -> str:
    """A UTF-8 text file (a BOM is allowed), at most ``limit`` bytes; one ``error`` line
    when it is missing, too large or not UTF-8 (naming the line of the first bad byte)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} is a folder, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{path}: {what} is over the limit of {limit} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                    f"save the {what} as UTF-8") from None


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping (``parse_yaml``: safe types, bounded); errors name the file and line."""
    data = parse_yaml(read_text(path, "config file"), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def clean(text: Any, limit: int = 80) -> str:
    """Text from a user or a file as part of a one-line message: whitespace runs (newlines
    included) become one space, other control characters are escaped, long text is cut."""
    text = " ".join(str(text).split())
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.epochs=5`` -> (['training', 'epochs'], 5); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{clean(text)}': expected KEY=VALUE, e.g. training.epochs=5")
    keys = key.strip().split(".")
    if any(not k.strip() for k in keys):
        raise ConfigError(f"override '{clean(text)}': empty key name in '{clean(key.strip())}'")
    try:
        value = _parse(raw) if raw.strip() else None
    except YAMLLimitError as exc:
        raise _yaml_error(exc, f"--set {clean(text)}", ConfigError) from None
    except yaml.YAMLError:
        value = raw           # not YAML: the text itself (e.g. a name with ': ' in it)
    return keys, value


def _type_ok(default: Any, value: Any) -> bool:
    """``value`` may replace ``default``: the same type (an int for a float), and null only
    where the default is null."""
    if default is None:
        return True
    if value is None:
        return False
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


def _got(value: Any) -> str:
    return "null (no value)" if value is None else clean(repr(value))


class Sources(str):
    """Where a config came from: as a string, its label (the file, or "config"); per key
    (``of``), the file or the ``--set KEY=VALUE`` that set it last. Errors about a key name
    the source that gave the bad value."""

    def __new__(cls, label: str, by_key: dict | None = None):
        obj = super().__new__(cls, label)
        obj.by_key = dict(by_key or {})
        return obj

    def of(self, key: str) -> str:
        """The source of ``key``; for a mapping, of the key inside it that was set last
        (e.g. the ``--set`` that zeroed its last weight); else of the nearest enclosing key
        that was set."""
        if key not in self.by_key:
            inside = [src for k, src in self.by_key.items() if k.startswith(key + ".")]
            if inside:
                return inside[-1]
        while key:
            if key in self.by_key:
                return self.by_key[key]
            key = key.rpartition(".")[0]
        return str(self)


def source_of(source: str, key: str) -> str:
    """``source.of(key)`` for ``Sources``, ``source`` itself for a plain string."""
    return source.of(key) if isinstance(source, Sources) else str(source)


def same_value(a, b) -> bool:
    """Config values equal, a list and a tuple of the same items alike (YAML gives lists,
    defaults may hold tuples)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def key_error(source, key: str, why: str) -> ConfigError:
    """The one-line error of a config value: "<where KEY came from>: config key 'KEY' WHY"."""
    return ConfigError(f"{source_of(source, key)}: config key '{key}' {why}")


def _unknown(path: str, key: str, allowed: Iterable[str], source: str) -> ConfigError:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    prefix = f"{path}." if path else ""
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
    full = clean(f"{prefix}{key}")
    return ConfigError(f"{source}: unknown config key '{full}'{hint}")


def _check_numbers(value: Any, full: str, source: str) -> None:
    found = non_finite(value)
    if found is not None:
        path, bad = found
        where = full if not path else (f"{full}{path}" if path.startswith("[") else f"{full}.{path}")
        raise ConfigError(f"{source}: config key '{clean(where)}' must be a finite number "
                          f"(within the 64-bit range), got {_got(bad)}")


def merge(defaults: Mapping, override: Mapping, *, source: str = "config",
          free: FreeKeys = (), _path: str = "", sources: dict | None = None) -> dict:
    """Return ``defaults`` updated by ``override``, refusing unknown keys, wrong types, null
    where a value is needed and non-finite numbers. ``sources`` (optional) records which
    ``source`` set each key."""
    out = copy.deepcopy(dict(defaults))
    free = tuple(free)
    for key, value in override.items():
        key = str(key)
        full = f"{_path}.{key}" if _path else key
        _check_numbers(value, full, source)
        if _path in free:
            out[key] = copy.deepcopy(value)
            if sources is not None:
                sources.pop(full, None)
                sources[full] = source
            continue
        if key not in out:
            raise _unknown(_path, key, out.keys(), source)
        default = out[key]
        if isinstance(default, dict) and default and full not in free:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: config key '{full}' must be a mapping, "
                                  f"got {_describe(value)}")
            out[key] = merge(default, value, source=source, free=free, _path=full, sources=sources)
        else:
            if not _type_ok(default, value):
                raise ConfigError(f"{source}: config key '{full}' must be "
                                  f"{_describe(default)}, got {_got(value)}")
            out[key] = float(value) if isinstance(default, float) and value is not None else copy.deepcopy(value)
            if sources is not None:
                sources.pop(full, None)         # keep the keys in the order they were set
                sources[full] = source
    return out


def apply_overrides(config: Mapping, overrides: Iterable[str], *, free: FreeKeys = (),
                    sources: dict | None = None) -> dict:
    """Apply ``--set a.b=v`` strings on top of an already-merged config."""
    out = copy.deepcopy(dict(config))
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        out = merge(out, nested, source=f"--set {clean(text)}", free=free, sources=sources)
    return out


def load_config(defaults: Mapping, path: str | os.PathLike | None = None,
                overrides: Iterable[str] = (), *, free: FreeKeys = ()) -> dict:
    """Defaults <- YAML file <- command-line overrides, each step validated."""
    return load_config_sources(defaults, path, overrides, free=free)[0]


def load_config_sources(defaults: Mapping, path: str | os.PathLike | None = None,
                        overrides: Iterable[str] = (), *, free: FreeKeys = (),
                        label: str | None = None) -> tuple[dict, Sources]:
    """``load_config`` plus the ``Sources`` of the result (label: the file, or ``label``,
    or "config") for value checks that name where a bad value came from."""
    by_key: dict = {}
    config = copy.deepcopy(dict(defaults))
    if path is not None:
        config = merge(config, load_yaml(path), source=str(path), free=free, sources=by_key)
    config = apply_overrides(config, overrides, free=free, sources=by_key)
    return config, Sources(str(path) if path is not None else (label or "config"), by_key)
