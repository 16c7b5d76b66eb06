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

import json
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import ModelError
from ..runinfo import KINDS, Axis, PartsInfo, RunInfo, info_from_dict

PREFIX = "proc_ml."
#: Version of this metadata layout; bumped when keys change meaning.
SCHEMA_VERSION = 2


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
        values = {"kind": self.info.kind, **self.info.exported()}
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
        if schema < 2:
            return _from_schema1(props, source)
        kind = props.get(PREFIX + "kind")
        info_cls = KINDS.get(kind)
        if info_cls is None:
            raise ModelError(f"{source}: metadata kind '{kind}' is not one of {', '.join(KINDS)}")
        info_values = _read_fields(info_cls, props, source, skip=_local_fields(info_cls),
                                   require_all=True)
        info = info_cls(**info_values)
        info.validate(source)
        envelope = _read_fields(cls, props, source, skip={"info"})
        return cls(info=info, **envelope)

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
        return int(json.loads(raw))
    except (ValueError, TypeError):
        raise ModelError(f"{source}: metadata key '{PREFIX}{key}' is not a number") from None


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
        if f.type == "str":
            values[f.name] = raw
            continue
        try:
            values[f.name] = json.loads(raw)
        except json.JSONDecodeError:
            raise ModelError(f"{source}: metadata key '{PREFIX}{f.name}' is not valid JSON") from None
    return values


def _required(f) -> bool:
    from dataclasses import MISSING
    return f.default is MISSING and f.default_factory is MISSING


def _from_schema1(props: dict, source: str) -> ModelMetadata:
    """Models exported before schema 2: every value JSON, one flat layout for every kind."""
    old = {}
    for key, raw in props.items():
        if key.startswith(PREFIX):
            try:
                old[key[len(PREFIX):]] = json.loads(raw)
            except json.JSONDecodeError:
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
    return ModelMetadata(info=info, input_name=old["input_name"],
                         input_dtype=old.get("input_dtype", "float32"),
                         input_shape=old["input_shape"], output_name=old["output_name"],
                         output_shape=old["output_shape"],
                         proc_ml_version=old.get("proc_ml_version", ""),
                         metrics=old.get("metrics") or {}, exporter=old.get("exporter") or {},
                         input_meanings=old.get("input_meanings") or {}, schema=1)


def _json_safe(value):
    """Plain JSON values (numpy scalars and arrays become numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
