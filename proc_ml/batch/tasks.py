"""The batch task registry: which model family a task runs and how a worker opens it.

A task names an *opener*, ``"module:function"``, called once per worker process (or Ray
actor) as ``opener(model_path, options, limits)``; it loads the model and returns a
processor ``processor(asset_path, out_dir) -> TaskOutput`` that writes the asset's output
files atomically into ``out_dir`` (already checked to lie inside OUT) and names them in the
``TaskOutput`` with a short prediction summary. Openers are referred to by import path
so that spawned processes and Ray workers on other machines can load them. A task whose
model family is not in this proc-ml yet is registered with ``opener=None``; the CLI refuses
it with one line instead of pretending.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ProcMLError
from .assets import MESH_EXTENSIONS, NPZ_EXTENSIONS, POINT_EXTENSIONS


@dataclass(frozen=True)
class BatchTask:
    name: str
    description: str
    model_family: str                   # what --model must be
    opener: str | None                  # "module:function", None while the family is missing
    extensions: tuple[str, ...]         # asset types the task reads by default
    option_names: tuple[str, ...] = ()  # options that change outputs (part of the skip hash)
    version: int = 1                    # bump when the task's outputs change

    @property
    def available(self) -> bool:
        return self.opener is not None


TASKS: dict[str, BatchTask] = {}


def register_task(task: BatchTask) -> BatchTask:
    TASKS[task.name] = task
    return task


def get_task(name: str) -> BatchTask:
    """The task called ``name``; ``ProcMLError`` (one line) when unknown or not available."""
    task = TASKS.get(name)
    if task is None:
        raise ProcMLError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    if not task.available:
        raise ProcMLError(f"task '{name}' needs the {task.model_family} model family, which is "
                          f"not available in this proc-ml yet")
    return task


def resolve_opener(spec: str):
    """Import ``"module:function"``."""
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ProcMLError(f"batch task opener '{spec}' cannot be imported ({exc})") from None


register_task(BatchTask(
    "parts", "building parts on every exterior face of a voxelised mesh or grid",
    "parts (3D U-Net / per-cell MLP, ONNX)", "proc_ml.batch.parts:open_parts",
    MESH_EXTENSIONS + NPZ_EXTENSIONS, option_names=("cell_size", "pictures", "up", "street", "symmetry",
                                                 "entrance", "buildings"),
    version=4))                         # 4: several masses labelled apart; roofs-on-top up axis
register_task(BatchTask(
    "classify", "one class per asset (top-k classes.json)", "PointNet / VoxNet classifier",
    "proc_ml.batch.shapes:open_classify", MESH_EXTENSIONS + POINT_EXTENSIONS))
register_task(BatchTask(
    "segment", "one part per point", "PointNet segmentation",
    "proc_ml.batch.shapes:open_segment", MESH_EXTENSIONS + POINT_EXTENSIONS,
    option_names=("pictures",)))
register_task(BatchTask(
    "texture", "a textured GLB (facade atlas) per mesh or grid; a texture PNG per label image",
    "pix2pix facade generator",
    "proc_ml.batch.texture:open_texture", MESH_EXTENSIONS + NPZ_EXTENSIONS + ("png",),
    option_names=("cell_size", "parts_model", "parts_model_sha256", "material", "up"),
    version=3))                         # 3: parts labels of several masses; up axis (as parts 4)
