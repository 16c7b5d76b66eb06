"""The proc-ml metadata embedded in every exported ONNX model (``metadata_props``).

A model file alone says what it predicts, what its input is and how it was trained: one
``proc_ml.<field>`` key per field of the model's typed run info (``proc_ml.runinfo``: its
``kind`` decides which fields there are) plus the tensor spec, training metrics, exporter
and versions. Values are readable by any tool: text is stored as plain text
(``proc_ml.family = parts-unet3d``), everything else as JSON (numbers, true/false, lists,
maps). docs/onnx.md shows one example per kind.

Schema 1 (models exported before the typed run info, every value JSON-quoted and a
face-direction layout on every model) is still read.
"""

from __future__ import annotations

import functools
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ModelError
from ..runinfo import KINDS, Axis, PartsInfo, RunInfo, info_from_dict
from ..validation import STRICT, Name, check

PREFIX = "proc_ml."
#: Version of this metadata layout; bumped when keys change meaning.
SCHEMA_VERSION = 2


#: A tensor dimension: a size, or a symbolic name.
_Dim = Union[Annotated[int, Field(ge=1, le=2 ** 31 - 1)], Name]


class _Envelope(BaseModel):
    """The metadata fields around the run info (types and ranges, strict)."""
    model_config = ConfigDict(**STRICT, populate_by_name=True)

    input_name: Name
    input_dtype: Literal["float32"]
    input_shape: Annotated[list[_Dim], Field(min_length=1, max_length=8)]
    output_name: Name
    output_shape: Annotated[list[_Dim], Field(min_length=1, max_length=8)]
    proc_ml_version: str = ""
    metrics: dict = Field(default_factory=dict)
    exporter: dict = Field(default_factory=dict)
    input_meanings: dict[str, str] = Field(default_factory=dict)
    input_rule: dict = Field(default_factory=dict)
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")



@dataclass
class ModelMetadata:
    """What a proc-ml ONNX model predicts (``info``) and how to feed it (the tensor spec)."""
    info: RunInfo
    input_name: str
    input_dtype: str
    input_shape: list                # ints for fixed dims, strings for symbolic dims
    output_name: str
    output_shape: list
    proc_ml_version: str = ""
    metrics: dict = field(default_factory=dict)
    exporter: dict = field(default_factory=dict)
    input_meanings: dict = field(default_factory=dict)
    input_rule: dict = field(default_factory=dict)   # feeding plain onnxruntime (RunInfo.input_rule)
    schema: int = SCHEMA_VERSION

    # -- what everybody asks ------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def input_kind(self) -> str:
        return self.info.input_kind

    @property
    def input_names(self) -> list[str]:
        return self.info.input_names

    @property
    def n_inputs(self) -> int:
        return self.info.n_inputs

    @classmethod
    def for_info(cls, info: RunInfo, *, proc_ml_version: str = "", metrics: dict | None = None,
                 exporter: dict | None = None, input_shape=None, output_shape=None) -> "ModelMetadata":
        """Metadata of a model of ``info``; shapes default to the info's symbolic layout."""
        return cls(info=info, input_name=info.input_name(), input_dtype="float32",
                   input_shape=list(input_shape or _symbolic(info.input_axes())),
                   output_name=info.output_name(),
                   output_shape=list(output_shape or _symbolic(info.output_axes())),
                   proc_ml_version=proc_ml_version, metrics=_json_safe(metrics or {}),
                   exporter=_json_safe(exporter or {}), input_meanings=info.input_meanings(),
                   input_rule=info.input_rule())

    # -- metadata_props -----------------------------------------------------------------
    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries: text as text, other values as JSON."""
        optional = {f.name for f in fields(self.info) if f.metadata.get("optional")}
        values = {"kind": self.info.kind,
                  **{k: v for k, v in self.info.exported().items()
                     if not (v is None and k in optional)}}   # unset optional: no key
        values.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "info"})
        return {PREFIX + key: _text(value) for key, value in values.items()}

    @classmethod
    def from_props(cls, props: dict, source: str = "model") -> "ModelMetadata":
        if PREFIX + "family" not in props:
            raise ModelError(f"{source}: not a proc-ml model (no '{PREFIX}family' metadata; "
                             f"export models with 'proc-ml export onnx')")
        schema = _int(props.get(PREFIX + "schema", "1"), source, "schema")
        if schema > SCHEMA_VERSION:
            raise ModelError(f"{source}: metadata schema {schema} is newer than this proc-ml "
                             f"reads ({SCHEMA_VERSION}); upgrade proc-ml")
        if schema < 1:
            raise ModelError(f"{source}: metadata key '{PREFIX}schema' must be >= 1, got {schema}")
        if schema < 2:
            return _from_schema1(props, source)
        kind = props.get(PREFIX + "kind")
        info_cls = KINDS.get(kind)
        if info_cls is None:
            raise ModelError(f"{source}: metadata kind '{kind}' is not one of {', '.join(KINDS)}")
        info_values = _read_fields(info_cls, props, source, skip=_local_fields(info_cls),
                                   require_all=True)
        info = info_cls.from_dict(info_values, source, what="metadata key", prefix=PREFIX)
        envelope = _read_fields(cls, props, source, skip={"info"})
        checked = check(_Envelope, envelope, source=source, what="metadata key", prefix=PREFIX,
                        error=ModelError)
        metadata = cls(info=info, **checked.model_dump(by_alias=True))
        metadata.check_layout(source)
        return metadata

    def check_layout(self, source: str = "model") -> None:
        """The tensor spec agrees with the layout the run info declares."""
        for what, shape, axes in (("input_shape", self.input_shape, self.info.input_axes()),
                                  ("output_shape", self.output_shape, self.info.output_axes())):
            if len(shape) != len(axes) or any(
                    a.size is not None and isinstance(d, int) and d != a.size
                    for d, a in zip(shape, axes)):
                raise ModelError(f"{source}: metadata key '{PREFIX}{what}' {shape} does not fit "
                                 f"the {self.info.KIND} layout {_symbolic(axes)}")
        if self.input_name != self.info.input_name() or self.output_name != self.info.output_name():
            raise ModelError(f"{source}: metadata tensor names '{self.input_name}' -> "
                             f"'{self.output_name}' are not those of a {self.info.KIND} model "
                             f"('{self.info.input_name()}' -> '{self.info.output_name()}')")


    # -- inputs -----------------------------------------------------------------------------
    def check_input(self, array: np.ndarray, source: str = "model") -> None:
        """Raise ``ModelError`` saying expected vs got when ``array`` cannot feed this model."""
        want = f"{self.input_dtype}{_shape_text(self.input_shape)}"
        got = f"{array.dtype}{list(array.shape)}"
        axes = self.info.input_axes()
        if array.dtype != np.dtype(self.input_dtype):
            raise ModelError(f"{source}: input '{self.input_name}' dtype: expected {want}, got {got}")
        if array.ndim != len(axes):
            raise ModelError(f"{source}: input '{self.input_name}' rank: expected {len(axes)} "
                             f"({want}), got {array.ndim} ({got})")
        for axis, n in zip(axes, array.shape):
            if axis.size is not None and n != axis.size:
                raise ModelError(f"{source}: input '{self.input_name}' {axis.name}: expected "
                                 f"{axis.size} ({want}), got {n} ({got})")
            if axis.dynamic and n < axis.minimum:
                raise ModelError(f"{source}: input '{self.input_name}' needs at least "
                                 f"{axis.minimum} {axis.name}, got {n} ({got})")
        spatial = [(a, n) for a, n in zip(axes, array.shape) if a.multiple > 1]
        if any(n % a.multiple for a, n in spatial):
            stride = spatial[0][0].multiple
            what = "grid" if self.input_kind == "grid" else self.input_kind
            raise ModelError(f"{source}: input '{self.input_name}' {what} size "
                             f"{[n for _, n in spatial]} must be a multiple of the stride "
                             f"{stride} on every axis (pad with encoding.pad_to_stride)")


def _symbolic(axes: list[Axis]) -> list:
    return [a.size if a.size is not None else a.name for a in axes]


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _int(raw: str, source: str, key: str) -> int:
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        value = raw
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(f"{source}: metadata key '{PREFIX}{key}' must be an integer, got {raw!r}")
    return value


@functools.lru_cache(maxsize=None)
def _text_fields(cls) -> frozenset:
    """Fields stored as plain text in schema 2 (their type is ``str``)."""
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items() if hint is str)


def _local_fields(cls) -> set[str]:
    return {f.name for f in fields(cls) if not f.metadata.get("export", True)}


def _read_fields(cls, props: dict, source: str, skip=(), require_all: bool = False) -> dict:
    """The values of ``cls``'s fields from ``props``: text fields as they are, the rest
    parsed as JSON; a missing required field (with ``require_all`` every field but those
    added since schema 2, marked ``optional``: an exporter writes them all) is an error
    naming its key."""
    values = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        raw = props.get(PREFIX + f.name)
        if raw is None:
            if (require_all and not f.metadata.get("optional")) or _required(f):
                raise ModelError(f"{source}: proc-ml metadata key '{PREFIX}{f.name}' is missing")
            continue
        if f.name in _text_fields(cls):
            values[f.name] = raw
            continue
        try:
            values[f.name] = json.loads(raw, parse_constant=_no_constant)
        except (json.JSONDecodeError, ValueError):
            values[f.name] = raw      # not JSON: the schema check names the key and type
    return values


def _no_constant(name: str):
    """JSON's NaN / Infinity tokens are not JSON: refuse them (json.loads accepts them)."""
    raise ValueError(f"{name} is not a number")


def _required(f) -> bool:
    from dataclasses import MISSING
    return f.default is MISSING and f.default_factory is MISSING


def _from_schema1(props: dict, source: str) -> ModelMetadata:
    """Models exported before schema 2: every value JSON, one flat layout for every kind."""
    old = {}
    for key, raw in props.items():
        if key.startswith(PREFIX):
            try:
                old[key[len(PREFIX):]] = json.loads(raw, parse_constant=_no_constant)
            except (json.JSONDecodeError, ValueError):
                raise ModelError(f"{source}: metadata key '{key}' is not valid JSON") from None
    for key in ("family", "task", "input_kind", "input_names", "input_name", "input_shape",
                "output_name", "output_shape"):
        if key not in old:
            raise ModelError(f"{source}: proc-ml metadata key '{PREFIX}{key}' is missing")
    legacy = {**old, "dataset_manifest": {"cell_size": old.get("cell_size"),
                                          "grid_size": old.get("grid_size"),
                                          "format_version": old.get("dataset_format_version")}}
    info = info_from_dict(legacy, source)
    if isinstance(info, PartsInfo) and not info.parts:
        raise ModelError(f"{source}: metadata needs a part vocabulary")
    envelope = {"input_name": old["input_name"], "input_dtype": old.get("input_dtype", "float32"),
                "input_shape": old["input_shape"], "output_name": old["output_name"],
                "output_shape": old["output_shape"],
                "proc_ml_version": old.get("proc_ml_version", ""),
                "metrics": old.get("metrics") or {}, "exporter": old.get("exporter") or {},
                "input_meanings": old.get("input_meanings") or {}, "schema": 1}
    checked = check(_Envelope, envelope, source=source, what="metadata key", prefix=PREFIX,
                    error=ModelError)
    return ModelMetadata(info=info, **checked.model_dump(by_alias=True))


def _json_safe(value):
    """Plain JSON values (numpy scalars and arrays become numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
