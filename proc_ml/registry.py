"""The task registry: every task ``proc-ml train`` knows, by its CLI name.

A task is one class in one module (``proc_ml.trainers.task.Task``): its config defaults,
data, training step, evaluation, results table, ONNX parity inputs and the typed run info
(``proc_ml.runinfo``) its models carry. The CLI, the training loop, config loading,
evaluation and ONNX export find a task here; the runtime, ``predict`` and batch need no
lookup at all, since an exported model names its own kind in its metadata.

Adding a model family = a model file, a task module and one ``register_task`` line
(docs/architecture.md walks through it). The entries name import paths, so reading the
registry imports neither torch nor the training code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class TaskEntry:
    name: str          # CLI name: proc-ml train NAME
    spec: str | type   # "module:Class" of the task (training side), or the class itself
    help: str = ""     # one line for --help
    kind: str | None = None           # the kind of model it makes (proc_ml.runinfo), if declared
    families: tuple[str, ...] = ()    # its model families, if declared

    def load(self):
        """The task class (imports the training side: torch)."""
        if isinstance(self.spec, type):
            return self.spec
        module, _, attr = self.spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"task '{self.name}': cannot import {self.spec} ({exc})") from None
        return cls


TASKS: dict[str, TaskEntry] = {}


def register_task(name: str, spec: str | type, help: str = "", kind: str | None = None,
                  families=()) -> TaskEntry:
    """Register (or replace) the task called ``name``: ``spec`` is ``"module:Class"`` (read
    lazily) or, for a task defined in the running process, the class. ``kind`` and
    ``families`` (optional, torch-free) let the runtime refuse a model whose metadata claims
    a family or kind its task does not make (``proc_ml.runinfo``); ``tests/test_registry.py``
    checks them against the task classes."""
    entry = TaskEntry(name, spec, help, kind, tuple(families))
    TASKS[name] = entry
    return entry


def get_task(name: str) -> TaskEntry:
    entry = TASKS.get(name)
    if entry is None:
        raise ConfigError(f"unknown task '{name}' (known: {', '.join(TASKS)})")
    return entry


def task_class(name: str):
    """The task class registered as ``name`` (imports the training side)."""
    return get_task(name).load()


register_task("building-parts", "proc_ml.trainers.building_parts:BuildingPartsTask",
              "a part on every exterior face of a voxel building (3D U-Net or per-cell MLP)",
              "parts", ("parts-unet3d", "parts-mlp"))
register_task("pointnet-cls", "proc_ml.trainers.shapes:PointNetClassificationTask",
              "a class per shape from surface points (PointNet)", "shape", ("pointnet-cls",))
register_task("pointnet-seg", "proc_ml.trainers.shapes:PointNetSegmentationTask",
              "a part per surface point (DGCNN, or PointNet)", "shape", ("pointnet-seg", "dgcnn-seg"))
register_task("voxnet", "proc_ml.trainers.shapes:VoxNetTask",
              "a class per shape from a voxel grid (VoxNet)", "shape", ("voxnet",))
register_task("pix2pix", "proc_ml.trainers.pix2pix:Pix2PixTask",
              "facade textures from label maps (pix2pix)", "image", ("pix2pix-unet",))
