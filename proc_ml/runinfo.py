"""Typed run information: what a trained run, and the ONNX model exported from it, is.

Each task describes its runs with one of three dataclasses, by the *kind* of model:

====== ============= ==========================================================
kind   class         the model
====== ============= ==========================================================
parts  ``PartsInfo``  a part per exterior face of a voxel building (grid or cells)
shape  ``ShapeInfo``  a class per shape, or a part per point (points or voxels)
image  ``ImageInfo``  an image of the same size from a label map (pix2pix)
====== ============= ==========================================================

The trainer stores the info in every checkpoint as plain data (``to_dict``, so
``torch.load(weights_only=True)`` reads it), ``proc-ml export onnx`` writes its exported
fields into the model's ``metadata_props`` (``proc_ml.runtime.metadata``), and the
torch-free runtime reads them back as the same class: a model file says what it is, and a
new task that makes a model of an existing kind needs no change to the runtime or batch.

Tensor layouts are declared here too (``input_axes``/``output_axes``): the exporter turns
them into dynamic axes and the runtime checks inputs against them.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .errors import ModelError
from .grid import DIRECTIONS
from .symmetry import SYMMETRIES
from .validation import (Count, Finite, Name, PartName, PositiveFinite, PositiveInt,
                         check_dataclass)

#: Most part / class names a model may have (the logits per cell grow with them).
MAX_CLASSES = 1024
#: Most points a shape model may sample per shape.
MAX_POINTS = 1_000_000
Names = Annotated[list[Name], Field(max_length=MAX_CLASSES)]
Seed = Annotated[int, Field(ge=-(2 ** 63), le=2 ** 63 - 1)]

#: Description of every input channel/feature name the encoders produce (docs/onnx.md).
_MEANINGS = {
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
    "run_x_pos": "position of the cell in its run of filled cells along x, 0 (first) .. 1 (last)",
    "run_x_len": "length of the cell's run of filled cells along x / 16",
    "run_y_pos": "position of the cell in its run of filled cells along y, 0 (first) .. 1 (last)",
    "run_y_len": "length of the cell's run of filled cells along y / 16",
    "run_z_below": "filled cells below the cell in its column run / 16",
    "run_z_above": "filled cells above the cell in its column run / 16",
    "neighbours": "1 for cells of neighbouring buildings (the context of party walls), else 0",
    "balconies": "style: 1 if the building has balconies",
    "x": "point x (normalised as 'normalize' says)",
    "y": "point y (normalised as 'normalize' says)",
    "z": "point z (normalised as 'normalize' says)",
    "nx": "unit normal x", "ny": "unit normal y", "nz": "unit normal z",
}


def describe_input(name: str) -> str:
    """What one grid channel, cell feature or point feature (``proc_ml.encoding``) holds."""
    if name in _MEANINGS:
        return _MEANINGS[name]
    if name.startswith("phase_"):
        axis, period = name[len("phase_")], name[len("phase_") + 1:]
        return f"1 for filled cells whose {axis} index is a multiple of {period}"
    if name.startswith("n") and name[1:] in DIRECTIONS:
        return f"1 if the neighbour cell in direction {name[1:]} is filled"
    if name.startswith("street:"):
        return (f"1 for filled cells if the building's {name[len('street:'):]} side faces the "
                f"street (--street, or the style's street side), else 0")
    if name.startswith("window_period:"):
        return f"style: 1 if windows repeat every {name.split(':')[1]} cell(s)"
    return "no description"


@dataclass(frozen=True)
class Axis:
    """One tensor axis: a symbolic name (dynamic, at least ``minimum``, a multiple of
    ``multiple``) or a fixed ``size``."""
    name: str
    size: int | None = None
    minimum: int = 1
    multiple: int = 1

    @property
    def dynamic(self) -> bool:
        return self.size is None


def _local(default=None):
    """A field the run keeps but the exported model does not (e.g. a local path)."""
    return field(default=default, metadata={"export": False})


@dataclass
class RunInfo:
    """What every kind shares. Subclasses add their own fields and tensor layouts."""
    KIND: ClassVar[str] = ""
    task: Name
    family: Name
    input_kind: str                 # see each kind's INPUT_KINDS
    input_names: Annotated[list[Name], Field(max_length=4096)]   # channel / feature names, in order
    dataset_count: Count | None = None
    dataset_seed: Seed | None = None
    dataset_format_version: Count | None = None

    INPUT_KINDS: ClassVar[tuple[str, ...]] = ()

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    # -- tensors ----------------------------------------------------------------------
    def input_name(self) -> str:
        raise NotImplementedError

    def output_name(self) -> str:
        return "logits"

    def input_axes(self) -> list[Axis]:
        raise NotImplementedError

    def output_axes(self) -> list[Axis]:
        raise NotImplementedError

    def input_meanings(self) -> dict[str, str]:
        return {name: describe_input(name) for name in self.input_names}

    def input_rule(self) -> dict:
        """How to feed the graph input with plain onnxruntime: ``text`` (one sentence),
        ``multiple_of`` (the spatial axes' multiple, 1 when any size goes), ``padded_axes``
        and ``pad_value`` (what to pad them with, in input values). The
        ``proc_ml.input_rule`` metadata; shown by ``proc-ml info``, docs/onnx.md."""
        return _rule("float32 " + _axes_text(self.input_axes()))

    # -- plain data ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data (checkpoints, JSON): every field, plus ``kind``."""
        return {"kind": self.KIND, **asdict(self)}

    def exported(self) -> dict:
        """The fields an exported model's metadata carries (local paths left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("export", True)}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def validate(self, source: str = "run") -> None:
        """Values beyond their types (``from_dict`` checks the types): input kind, names, and
        that the task and family are ones that make this kind of model."""
        if self.input_kind not in self.INPUT_KINDS:
            raise ModelError(f"{source}: input_kind '{self.input_kind}' is not one of "
                             f"{', '.join(self.INPUT_KINDS)} for a {self.KIND} model")
        if not self.input_names:
            raise ModelError(f"{source}: no input names")
        _unique(self.input_names, "input_names", source)
        _check_task_family(self, source)

    @classmethod
    def from_dict(cls, values: dict, source: str = "run", what: str = "run info field",
                  prefix: str = ""):
        """An instance from plain values, every field type-checked (strict: no coercion,
        no NaN) and then ``validate``d; one ``ModelError`` line naming the key otherwise."""
        info = check_dataclass(cls, values, source=source, what=what, prefix=prefix,
                               error=ModelError)
        info.validate(source)
        return info


@dataclass
class PartsInfo(RunInfo):
    """Building parts: ``logits[6 * K]`` per cell, index ``direction * K + part``."""
    KIND: ClassVar[str] = "parts"
    INPUT_KINDS: ClassVar[tuple[str, ...]] = ("grid", "cells")
    parts: Annotated[list[PartName], Field(max_length=MAX_CLASSES)] = field(default_factory=list)
    directions: list[str] = field(default_factory=lambda: list(DIRECTIONS))
    with_style: bool = False
    #: the model takes the sides facing the street (``encoding.STREET_FEATURES``) without a style
    with_street: bool = field(default=False, metadata={"optional": True})
    stride: Annotated[int, Field(ge=1, le=64)] = 1   # grid sizes must be multiples of this (grid input)
    #: label = argmax(probability x weight): per-part weights fitted at export on the
    #: validation split (mean F1 over parts, accuracy kept); None: plain argmax.
    decision_weights: Annotated[list[PositiveFinite], Field(min_length=1, max_length=127)] | None = \
        field(default=None, metadata={"optional": True})
    #: the entrance rule (``encoding.apply_entrance_rule``), kept at export when it raises the
    #: validation split's mean F1 over parts at the decision weights' accuracy allowance: a
    #: building whose street ground floor got no door gets one on its most door-like face
    entrance_rule: bool = field(default=False, metadata={"optional": True})
    cell_size: PositiveFinite | None = None  # metres per cell of the training data
    grid_size: Annotated[list[PositiveInt], Field(min_length=3, max_length=3)] | None = None  # training grid size
    #: the turns of a building its rules do not change (``proc_ml.symmetry``): the training
    #: config's ``dataset.symmetry``, or what ``proc-ml export onnx --symmetry`` declares;
    #: prediction averages the probabilities over them (``PartsPredictor``)
    symmetry: str = field(default="none", metadata={"optional": True})
    logit_layout: str = "channel = direction * n_parts + part; directions in the order of 'directions'"
    #: the training dataset (export checks parity on its test split when it still exists)
    data_dir: str | None = _local()

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    def input_name(self) -> str:
        return "grid" if self.input_kind == "grid" else "cells"

    def input_axes(self) -> list[Axis]:
        if self.input_kind == "cells":
            return [Axis("cells", minimum=0), Axis("features", self.n_inputs)]
        return [Axis("batch"), Axis("channels", self.n_inputs),
                *(Axis(n, multiple=self.stride) for n in "xyz")]

    def output_axes(self) -> list[Axis]:
        logits = Axis("logits", 6 * self.n_parts)
        if self.input_kind == "cells":
            return [Axis("cells", minimum=0), logits]
        return [Axis("batch"), logits, *(Axis(n, multiple=self.stride) for n in "xyz")]

    def input_rule(self) -> dict:
        if self.input_kind == "cells":
            return _rule(f"float32 [cells, {self.n_inputs}]: one row per filled cell, features "
                         f"in input_names order; any number of rows, 0 included")
        text = f"float32 [batch, {self.n_inputs}, X, Y, Z], channels in input_names order"
        if self.stride <= 1:
            return _rule(text)
        return _rule(f"{text}; X, Y and Z must be multiples of {self.stride} (stride): pad the "
                     f"grid with empty cells (0 in every channel) at the high end of each axis, "
                     f"then crop the output back to the unpadded X, Y, Z",
                     self.stride, ["x", "y", "z"], 0.0)

    def validate(self, source: str = "run") -> None:
        super().validate(source)
        if not self.parts or len(self.directions) != 6:
            raise ModelError(f"{source}: a parts model needs a part vocabulary and 6 directions")
        if list(self.directions) != list(DIRECTIONS):
            raise ModelError(f"{source}: directions must be {', '.join(DIRECTIONS)} in this order "
                             f"(the logit layout), got {self.directions}")
        if int(self.stride) < 1:
            raise ModelError(f"{source}: stride must be >= 1, got {self.stride}")
        _unique(self.parts, "parts", source)
        _check_cell_size(self.cell_size, source)
        if self.symmetry not in SYMMETRIES:
            raise ModelError(f"{source}: symmetry must be one of {', '.join(SYMMETRIES)}, "
                             f"got {self.symmetry!r}")
        if self.decision_weights is not None and len(self.decision_weights) != len(self.parts):
            raise ModelError(f"{source}: decision_weights has {len(self.decision_weights)} "
                             f"values, one per part is {len(self.parts)}")


@dataclass
class ShapeInfo(RunInfo):
    """Shape nets: ``logits[K]`` per shape (``output: shape``) or per point (``points``)."""
    KIND: ClassVar[str] = "shape"
    INPUT_KINDS: ClassVar[tuple[str, ...]] = ("points", "voxels")
    classes: Names = field(default_factory=list)
    output: str = "shape"           # shape (one class per input) | points (one per point)
    with_style: bool = False
    normalize: str = "unit_sphere"  # unit_sphere | cells (coordinates / cell_size)
    cell_size: PositiveFinite | None = None  # with normalize: cells
    num_points: Annotated[int, Field(ge=2, le=MAX_POINTS)] = 1024
    resolution: Annotated[int, Field(ge=4, le=256)] = 32
    source: str = "buildings"       # buildings (proc-ml generate) | folder (ModelNet layout)
    data_dir: str | None = _local()
    logit_offset: list[Finite] | None = _local()   # folded into the output bias when a run loads

    OUTPUTS: ClassVar[tuple[str, ...]] = ("shape", "points")
    NORMALIZE: ClassVar[tuple[str, ...]] = ("unit_sphere", "cells")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def input_name(self) -> str:
        return self.input_kind          # "points" | "voxels"

    def input_axes(self) -> list[Axis]:
        if self.input_kind == "points":
            return [Axis("batch"), Axis("points", minimum=2), Axis("features", self.n_inputs)]
        side = Axis("side", self.resolution)
        return [Axis("batch"), Axis("channels", self.n_inputs), side, side, side]

    def input_rule(self) -> dict:
        if self.input_kind == "voxels":
            r = self.resolution
            return _rule(f"float32 [batch, {self.n_inputs}, {r}, {r}, {r}]: a centred {r}^3 "
                         f"occupancy grid")
        return _rule(f"float32 [batch, points, {self.n_inputs}], features in input_names order; "
                     f"any number of points (2 or more), coordinates normalised as 'normalize' "
                     f"says")

    def output_axes(self) -> list[Axis]:
        if self.output == "points":
            return [Axis("batch"), Axis("points", minimum=2), Axis("logits", self.n_classes)]
        return [Axis("batch"), Axis("logits", self.n_classes)]

    def validate(self, source: str = "run") -> None:
        super().validate(source)
        if not self.classes:
            raise ModelError(f"{source}: a shape model needs its class names")
        if self.output not in self.OUTPUTS:
            raise ModelError(f"{source}: output '{self.output}' is not one of {', '.join(self.OUTPUTS)}")
        if self.normalize not in self.NORMALIZE:
            raise ModelError(f"{source}: normalize '{self.normalize}' is not one of "
                             f"{', '.join(self.NORMALIZE)}")
        if self.normalize == "cells" and self.cell_size is None:
            raise ModelError(f"{source}: normalize 'cells' needs the cell size the model was "
                             f"trained with (cell_size is missing)")
        if self.logit_offset is not None and len(self.logit_offset) != len(self.classes):
            raise ModelError(f"{source}: logit_offset has {len(self.logit_offset)} values for "
                             f"{len(self.classes)} classes")
        _unique(self.classes, "classes", source)
        _check_cell_size(self.cell_size, source)


@dataclass
class ImageInfo(RunInfo):
    """Image-to-image (pix2pix generator): a label map in, an RGB image of its size out."""
    KIND: ClassVar[str] = "image"
    INPUT_KINDS: ClassVar[tuple[str, ...]] = ("image",)
    #: [{"name", "colour": [r, g, b]}], None for photo pairs
    palette: Annotated[list[dict], Field(max_length=MAX_CLASSES)] | None = None
    #: pixels per facade module of the training label maps
    module_px: Annotated[int, Field(ge=1, le=4096)] | None = None
    size: Annotated[int, Field(ge=1, le=16384)] = 256     # training crop size
    stride: Annotated[int, Field(ge=1, le=4096)] = 1      # height and width must be multiples of this
    out_channels: Annotated[int, Field(ge=1, le=4)] = 3
    direction: str = "AtoB"
    layout: str = "labels"          # labels (label folders) | side-by-side
    value_range: Annotated[list[Finite], Field(min_length=2, max_length=2)] = field(
        default_factory=lambda: [-1.0, 1.0])
    inference_mode: Literal["eval", "train"] = field(default="eval", metadata={"optional": True})
    #: label colours within this RGB distance of a palette colour are read as it (JPEG labels)
    palette_tolerance: Annotated[Finite, Field(ge=0, le=442)] = field(
        default=0.0, metadata={"optional": True})

    @property
    def parts(self) -> list[str]:
        """The palette's class names (empty without a palette)."""
        return [entry["name"] for entry in self.palette or []]

    def input_name(self) -> str:
        return "labels"

    def output_name(self) -> str:
        return "image"

    def input_axes(self) -> list[Axis]:
        return [Axis("batch"), Axis("channels", self.n_inputs),
                Axis("height", multiple=self.stride), Axis("width", multiple=self.stride)]

    def input_rule(self) -> dict:
        text = f"float32 [batch, {self.n_inputs}, H, W], RGB scaled to [-1, 1] (pixel / 127.5 - 1)"
        if self.stride <= 1:
            return _rule(text)
        background = next((entry["colour"] for entry in self.palette or []
                           if entry.get("name") == "background"), [0, 0, 0])
        return _rule(f"{text}; H and W must be multiples of {self.stride} (stride): pad the "
                     f"label map at the bottom and right with the palette's background colour "
                     f"(black without a palette), then crop the output back to H, W",
                     self.stride, ["height", "width"],
                     [round(c / 127.5 - 1.0, 6) for c in background])

    def output_axes(self) -> list[Axis]:
        return [Axis("batch"), Axis("out_channels", self.out_channels),
                Axis("height", multiple=self.stride), Axis("width", multiple=self.stride)]


def _rule(text: str, multiple_of: int = 1, padded_axes=(), pad_value=None) -> dict:
    return {"text": text, "multiple_of": int(multiple_of), "padded_axes": list(padded_axes),
            "pad_value": pad_value}


def _axes_text(axes: list[Axis]) -> str:
    return "[" + ", ".join(str(a.size) if a.size is not None else a.name for a in axes) + "]"


#: Run-info class per kind: the one table the runtime, batch and export read.
KINDS: dict[str, type[RunInfo]] = {cls.KIND: cls for cls in (PartsInfo, ShapeInfo, ImageInfo)}


def info_from_dict(data: dict, source: str = "run") -> RunInfo:
    """A ``RunInfo`` from ``to_dict`` data (checkpoints), or from the untyped info dict of
    runs trained before run info was typed."""
    if not isinstance(data, dict):
        raise ModelError(f"{source}: run info is {type(data).__name__}, not a mapping")
    kind = data.get("kind") or _legacy_kind(data)
    cls = KINDS.get(kind)
    if cls is None:
        raise ModelError(f"{source}: unknown model kind '{kind}' (known: {', '.join(KINDS)})")
    values = dict(data) if "kind" in data else _legacy_fields(cls, data)
    values.pop("kind", None)
    known = set(cls.field_names())
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        raise ModelError(f"{source}: unknown run info field '{unknown[0]}' for a {kind} model")
    missing = [f.name for f in fields(cls) if f.name not in values
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ModelError(f"{source}: run info field '{missing[0]}' is missing")
    return cls.from_dict(values, source)


def _legacy_kind(data: dict) -> str:
    return {"grid": "parts", "cells": "parts", "points": "shape", "voxels": "shape",
            "image": "image"}.get(data.get("input_kind"), "")


def _legacy_fields(cls: type[RunInfo], data: dict) -> dict:
    """The typed fields of an old, flat info dict (checkpoints of proc-ml before the
    typed run info; their ONNX metadata is read by ``proc_ml.runtime.metadata``)."""
    task_info = data.get("task_info") if isinstance(data.get("task_info"), dict) else {}
    manifest = data.get("dataset_manifest") if isinstance(data.get("dataset_manifest"), dict) else {}
    extra = {**task_info, **data}
    values = {k: extra[k] for k in cls.field_names() if k in extra and extra[k] is not None}
    values.update({"dataset_count": manifest.get("count"), "dataset_seed": manifest.get("seed"),
                   "dataset_format_version": manifest.get("format_version")})
    if cls is PartsInfo:
        values.update(cell_size=manifest.get("cell_size"), grid_size=manifest.get("grid_size"))
        values["stride"] = data.get("stride") or 1          # its type is checked with the rest
    if cls is ShapeInfo:
        values["output"] = "points" if task_info.get("output") == "points" \
            or data.get("task") == "pointnet-seg" else "shape"
    return {k: v for k, v in values.items() if v is not None}


def _check_cell_size(value, source: str) -> None:
    from .errors import ConfigError
    from .units import check_cell_size

    if value is not None:
        try:
            check_cell_size(value, "cell_size")
        except ConfigError as exc:
            raise ModelError(f"{source}: {exc}") from None


def _unique(names, what: str, source: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ModelError(f"{source}: {what} lists '{name}' twice")
        seen.add(name)


def _check_task_family(info: RunInfo, source: str) -> None:
    """The task must be registered (``proc_ml.registry``); a task proc-ml ships declares the
    kind and families of its models, and a model claiming another is refused."""
    from .registry import TASKS

    entry = TASKS.get(info.task)
    if entry is None:
        raise ModelError(f"{source}: task '{info.task}' is not a task this proc-ml knows "
                         f"({', '.join(TASKS)}); a model of an outside task is served where "
                         f"its task is registered (proc_ml.registry.register_task)")
    if entry.kind is not None and entry.kind != info.KIND:
        raise ModelError(f"{source}: task '{info.task}' makes {entry.kind} models, but the "
                         f"model says it is a {info.KIND} model")
    if entry.families and info.family not in entry.families:
        raise ModelError(f"{source}: family '{info.family}' is not a family of task "
                         f"'{info.task}' ({', '.join(entry.families)})")
