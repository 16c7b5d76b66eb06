"""The proc-ml metadata embedded in every exported ONNX model (``metadata_props``).

Every value is a JSON document under a ``proc_ml.*`` key (see docs/onnx.md), so a model
file alone says what it predicts, what its input is and how it was trained. The exporter
writes these keys with ``ModelMetadata.to_props``; the runtime reads them back with
``ModelMetadata.from_props`` and checks every input against them.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np

from ..errors import ModelError

PREFIX = "proc_ml."
#: Version of this metadata layout; bumped when keys change meaning.
SCHEMA_VERSION = 1
INPUT_KINDS = ("grid", "cells", "image", "points", "voxels")
#: Input tensor name and symbolic shape per input kind; ``C``/``F`` is filled in.
INPUT_LAYOUTS = {
    "grid": ("grid", ("batch", "channels", "x", "y", "z")),
    "cells": ("cells", ("cells", "features")),
    "image": ("labels", ("batch", "channels", "height", "width")),
    "points": ("points", ("batch", "points", "features")),
    "voxels": ("voxels", ("batch", "channels", "x", "y", "z")),
}
OUTPUT_LAYOUTS = {
    "grid": ("logits", ("batch", "logits", "x", "y", "z")),
    "cells": ("logits", ("cells", "logits")),
    "image": ("image", ("batch", "out_channels", "height", "width")),
    # shape nets (trainers/shapes.py) give their own layout in info["output_layout"]
}
LOGIT_LAYOUT = "channel = direction * n_parts + part; directions in the order of 'directions'"

_STATIC_MEANINGS = {
    "label_r": "label map red channel, 0..255 scaled to [-1, 1]",
    "label_g": "label map green channel, 0..255 scaled to [-1, 1]",
    "label_b": "label map blue channel, 0..255 scaled to [-1, 1]",
    "occupancy": "1 where the cell is filled, else 0",
    "ground_floor": "1 for filled cells in the bottom layer (z = 0), else 0",
    "height_norm": "z / top z of the building (0..1)",
    "floor": "z index of the cell (floor number)",
    "street_distance": "cells between this cell and the street-most extent of the building "
                       "along the street normal",
    "shopfront": "style: 1 if the building has a shopfront on the street side",
    "balconies": "style: 1 if the building has balconies",
}


def describe_input(name: str) -> str:
    """What one grid channel or cell feature (as named by ``proc_ml.encoding``) holds."""
    if name in _STATIC_MEANINGS:
        return _STATIC_MEANINGS[name]
    if name.startswith("phase_"):
        axis, period = name[len("phase_")], name[len("phase_") + 1:]
        return f"1 for filled cells whose {axis} index is a multiple of {period}"
    if name.startswith("n") and name[1:] in ("+x", "-x", "+y", "-y", "+z", "-z"):
        return f"1 if the neighbour cell in direction {name[1:]} is filled"
    if name.startswith("street:"):
        return f"style: 1 if the street is on the {name[len('street:'):]} side"
    if name.startswith("window_period:"):
        return f"style: 1 if windows repeat every {name.split(':')[1]} cell(s)"
    return "no description"


@dataclass
class ModelMetadata:
    """What a proc-ml ONNX model predicts and how to feed it."""
    family: str                      # "parts-unet3d" | "parts-mlp"
    task: str                        # "building-parts"
    parts: list[str]                 # part vocabulary, index = part id
    directions: list[str]            # face order of the logit blocks
    input_kind: str                  # "grid" [B, C, X, Y, Z] | "cells" [N, F]
    input_name: str
    input_dtype: str
    input_shape: list                # ints for fixed dims, strings for symbolic dims
    input_names: list[str]           # channel (grid) / feature (cells) names, in order
    output_name: str
    output_shape: list
    stride: int = 1                  # grid sizes must be multiples of this
    with_style: bool = False
    cell_size: float | None = None   # metres per cell of the training data
    grid_size: list | None = None    # training grid size
    dataset_format_version: int | None = None
    proc_ml_version: str = ""
    metrics: dict = field(default_factory=dict)
    exporter: dict = field(default_factory=dict)
    input_meanings: dict = field(default_factory=dict)
    task_info: dict = field(default_factory=dict)   # task-specific extras (pix2pix: palette, ...)
    logit_layout: str = LOGIT_LAYOUT
    schema: int = SCHEMA_VERSION

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    @property
    def n_inputs(self) -> int:
        """Channel count (grid) or feature count (cells)."""
        return len(self.input_names)

    def to_props(self) -> dict[str, str]:
        """``metadata_props`` entries: one ``proc_ml.<field>`` key per field, JSON values."""
        return {PREFIX + k: json.dumps(v, sort_keys=True) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict, source: str = "model") -> "ModelMetadata":
        if PREFIX + "family" not in props:
            raise ModelError(f"{source}: not a proc-ml model (no '{PREFIX}family' metadata; "
                             f"export models with 'proc-ml export onnx')")
        values = {}
        for f in fields(cls):
            raw = props.get(PREFIX + f.name)
            if raw is None:
                if _required(f):
                    raise ModelError(f"{source}: proc-ml metadata key '{PREFIX}{f.name}' is missing")
                continue
            try:
                values[f.name] = json.loads(raw)
            except json.JSONDecodeError:
                raise ModelError(f"{source}: metadata key '{PREFIX}{f.name}' is not valid JSON") from None
        meta = cls(**values)
        meta.validate(source)
        return meta

    def validate(self, source: str = "model") -> None:
        if self.schema > SCHEMA_VERSION:
            raise ModelError(f"{source}: metadata schema {self.schema} is newer than this proc-ml "
                             f"reads ({SCHEMA_VERSION}); upgrade proc-ml")
        if self.input_kind not in INPUT_KINDS:
            raise ModelError(f"{source}: metadata input_kind '{self.input_kind}' is not one of "
                             f"{', '.join(INPUT_KINDS)}")
        if self.input_kind != "image" and (not self.parts or len(self.directions) != 6):
            raise ModelError(f"{source}: metadata needs a part vocabulary and 6 directions")
        if int(self.stride) < 1:
            raise ModelError(f"{source}: metadata stride must be >= 1, got {self.stride}")

    def check_input(self, array: np.ndarray, source: str = "model") -> None:
        """Raise ``ModelError`` saying expected vs got when ``array`` cannot feed this model."""
        want = f"{self.input_dtype}{_shape_text(self.input_shape)}"
        got = f"{array.dtype}{list(array.shape)}"
        rank = len(self.input_shape)
        if array.dtype != np.dtype(self.input_dtype):
            raise ModelError(f"{source}: input '{self.input_name}' dtype: expected {want}, got {got}")
        if array.ndim != rank:
            raise ModelError(f"{source}: input '{self.input_name}' rank: expected {rank} "
                             f"({want}), got {array.ndim} ({got})")
        axis = -1 if self.input_kind == "points" else 1
        if array.shape[axis] != self.n_inputs:
            what = "features" if self.input_kind in ("cells", "points") else "channels"
            raise ModelError(f"{source}: input '{self.input_name}' {what}: expected {self.n_inputs} "
                             f"({want}), got {array.shape[axis]} ({got})")
        if self.input_kind in ("grid", "image"):
            bad = [n for n in array.shape[2:] if n % self.stride]
            if bad:
                raise ModelError(f"{source}: input '{self.input_name}' {self.input_kind} size "
                                 f"{list(array.shape[2:])} must be a multiple of the stride "
                                 f"{self.stride} on every axis (pad with encoding.pad_to_stride)")


def _required(f) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def build_metadata(info: dict, *, exporter: dict, proc_ml_version: str,
                   dataset_format_version: int | None) -> ModelMetadata:
    """Metadata for a trained run's ``info`` (see ``trainers.load_run``)."""
    kind = info["input_kind"]
    if kind not in INPUT_KINDS:
        raise ModelError(f"run input_kind '{kind}' is not one of {', '.join(INPUT_KINDS)}")
    from ..grid import DIRECTIONS

    names = list(info["input_names"])
    in_name, in_shape = INPUT_LAYOUTS[kind]
    out_name, out_shape = info.get("output_layout") or OUTPUT_LAYOUTS[kind]
    n_logits = int(info.get("n_logits") or 6 * len(info["parts"]))
    out_channels = int(info.get("out_channels") or 0)
    summary = info.get("dataset_manifest") or {}
    cell_size = summary.get("cell_size")
    return ModelMetadata(
        family=info["family"], task=info["task"], parts=list(info["parts"]),
        directions=list(DIRECTIONS), input_kind=kind, input_name=in_name, input_dtype="float32",
        input_shape=[len(names) if d in ("channels", "features") else d for d in in_shape],
        input_names=names, output_name=out_name,
        output_shape=[n_logits if d == "logits" else out_channels if d == "out_channels" else d
                      for d in out_shape],
        stride=int(info.get("stride") or 1), with_style=bool(info.get("with_style")),
        cell_size=None if cell_size is None else float(cell_size),
        grid_size=summary.get("grid_size"), dataset_format_version=dataset_format_version,
        proc_ml_version=proc_ml_version, metrics=_json_safe(info.get("metrics") or {}),
        exporter=exporter, input_meanings={n: describe_input(n) for n in names},
        task_info=_json_safe(info.get("task_info") or {}))


def _json_safe(value):
    """Metrics as plain JSON (numpy scalars and arrays become numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
