"""The one validation layer at proc-ml's boundaries: typed schemas, number checks and
library messages, each failure one line naming the source and the key.

Structured values (configs, dataset manifests, ONNX metadata, run info in checkpoints) are
checked by **pydantic** (v2, strict mode) against schemas declared once: the typed run-info
dataclasses of ``proc_ml.runinfo`` *are* their schema (``schema_of`` mirrors a dataclass's
annotated fields, ``Annotated`` constraints included, as a strict pydantic model), and the
config sections have pydantic models next to their defaults. Strict mode means no silent
coercion ("3" is not 3.0, 1 is not true) and ``allow_inf_nan=False`` means NaN and infinity
are refused wherever a number is expected. pydantic's first error becomes one line:

    model.onnx: metadata key 'proc_ml.stride' must be an integer, got 'four'

Bulk numbers (CSV tables, point clouds, vertices) are not run through pydantic row by row
(too slow for millions of values); they are checked with vectorised numpy (``finite``,
``integral``) and the message names the file, line or array.

``library_message`` turns an exception from a library (trimesh, onnxruntime, torch, Open3D)
into one short line without the advice those libraries address to programmers ("pass
FilePathResolver(path, allow_anywhere=True)", "re-running torch.load with
weights_only=False will likely succeed"), which is wrong advice for a proc-ml user.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import ProcMLError

#: Strict: no coercion between types, no NaN/infinity, no unknown keys.
STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")

#: Largest count or size any proc-ml file may state (rows, points, cells, epochs...):
#: beyond it numpy and torch overflow C integers; real data is far below it.
MAX_COUNT = 2 ** 31 - 1

# -- reusable constrained types (used in schemas and run-info annotations) ----------------
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=256)]


def check_part_name(name: str) -> str:
    """A part name is one word: spaces around or inside it (``'window '`` from a CSV or a
    DCC string attribute) would make a part of its own and break the DCC adapters, which
    keep vocabularies as space-separated text."""
    if any(c.isspace() for c in name):
        raise ValueError("must be one word without spaces")
    return name


PartName = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(check_part_name)]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _phrase(error: dict) -> str:
    """pydantic's error as the end of a sentence: 'must be an integer'."""
    kind, ctx = error["type"], error.get("ctx") or {}
    fixed = {
        "int_type": "must be an integer", "int_parsing": "must be an integer",
        "int_from_float": "must be an integer", "float_type": "must be a number",
        "float_parsing": "must be a number", "finite_number": "must be a finite number",
        "bool_type": "must be true or false", "bool_parsing": "must be true or false",
        "string_type": "must be text", "list_type": "must be a list",
        "tuple_type": "must be a list", "dict_type": "must be a mapping",
        "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
        "dataclass_type": "must be a mapping", "missing": "is missing",
        "extra_forbidden": "is not a known key", "none_required": "must be null",
    }
    if kind in fixed:
        return fixed[kind]
    bounds = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
              "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
    if kind in bounds:
        sign, key = bounds[kind]
        bound = ctx.get(key)
        return f"must be {sign} {bound:g}" if isinstance(bound, float) else f"must be {sign} {bound}"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        unit = "characters" if kind.startswith("string") else "items"
        if "min_length" in ctx and kind.endswith("short"):
            return f"must have at least {ctx['min_length']} {unit}"
        return f"must have at most {ctx.get('max_length')} {unit}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}"
    if kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error") or error["msg"])
        return re.sub(r"^(Value|Assertion) error,\s*", "", message)
    return str(error["msg"][:1].lower() + error["msg"][1:])


def first_error(exc: ValidationError, prefix: str = "") -> tuple[str, str, Any]:
    """``(dotted key, phrase, offending value)`` of a validation error's first problem."""
    error = exc.errors(include_url=False)[0]
    key = prefix.rstrip(".")
    for part in error["loc"]:
        if isinstance(part, int):
            key += f"[{part}]"
        elif not str(part).startswith("function-"):
            key = f"{key}.{part}" if key else str(part)
    return key, _phrase(error), error.get("input")


def check(schema: type[BaseModel], data: Any, *, source, what: str = "key",
          prefix: str = "", error: type[ProcMLError] = ProcMLError) -> BaseModel:
    """``schema.model_validate(data)``; the first problem as one ``error`` line:
    ``"{source}: {what} '{prefix}{key}' {phrase}, got {value}"``. ``source`` is a string or
    a function of the dotted key (configs name the file or ``--set`` that gave the value)."""
    name = source if callable(source) else (lambda key: str(source))
    if not isinstance(data, dict):
        raise error(f"{name(prefix.rstrip('.'))}: {what} '{prefix.rstrip('.') or 'top level'}' "
                    f"must be a mapping, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        key, phrase, value = first_error(exc, prefix)
        if key == prefix.rstrip("."):
            # a check of the whole mapping (a model validator) says what is wrong itself
            where = prefix.rstrip(".")
            raise error(f"{name(where)}: {f'{what} {where!r}: ' if where else ''}{phrase}") from None
        got = "" if phrase in ("is missing", "is not a known key") else f", got {_describe(value)}"
        raise error(f"{name(key)}: {what} '{key}' {phrase}{got}") from None


@functools.lru_cache(maxsize=None)
def schema_of(cls: type) -> type[BaseModel]:
    """A strict pydantic model with the fields (types, ``Annotated`` constraints, defaults)
    of the dataclass ``cls``: the dataclass is the schema, pydantic enforces it."""
    hints = typing.get_type_hints(cls, include_extras=True)
    spec = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        spec[f.name] = (hints[f.name], default)
    return create_model(f"{cls.__name__}Schema", __config__=STRICT, **spec)


def check_dataclass(cls: type, data: dict, *, source: str, what: str = "key", prefix: str = "",
                    error: type[ProcMLError] = ProcMLError):
    """An instance of the dataclass ``cls`` from ``data``, validated by ``schema_of(cls)``."""
    model = check(schema_of(cls), data, source=source, what=what, prefix=prefix, error=error)
    return cls(**{f.name: getattr(model, f.name) for f in dataclasses.fields(cls)})


# -- plain values ---------------------------------------------------------------------------
def non_finite(value: Any, path: str = "") -> tuple[str, Any] | None:
    """``(dotted path, value)`` of the first NaN/infinite float (or integer beyond int64)
    inside nested lists and mappings, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, int) and abs(value) > 2 ** 63 - 1:
        return path, value
    if isinstance(value, dict):
        for key, item in value.items():
            found = non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = non_finite(item, f"{path}[{index}]")
            if found:
                return found
    return None


def json_safe(value):
    """``value`` with non-finite floats replaced by None (numpy scalars as numbers), so
    ``json.dumps(..., allow_nan=False)`` writes strict JSON (no bare NaN tokens)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# -- arrays ---------------------------------------------------------------------------------
# -- library messages -----------------------------------------------------------------------
_ADVICE = (
    re.compile(r"\s*[—-]+\s*pass\s+`?FilePathResolver\(.*$", re.S),            # trimesh
    re.compile(r"\s*\(?\s*pass `?allow_anywhere.*$", re.S),
    re.compile(r"\s*Re-?running `?torch\.load`? with `?weights_only`? set to `?False`?.*$", re.S | re.I),
    re.compile(r"\s*In PyTorch 2\.6.*$", re.S),
    re.compile(r"\s*Check the documentation of torch\.load.*$", re.S),
    re.compile(r"\s*Please file an issue.*$", re.S | re.I),
)
_ORT_PREFIX = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")


def library_message(exc: BaseException, limit: int = 200) -> str:
    """One short line for an exception raised inside a library (see the module doc)."""
    text = str(exc)
    for pattern in _ADVICE:
        text = pattern.sub("", text)
    text = _ORT_PREFIX.sub("", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else ""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit - 3].rstrip() + "..."
    name = type(exc).__name__
    if isinstance(exc, ProcMLError):
        return text or name
    return f"{name}: {text}" if text else name
