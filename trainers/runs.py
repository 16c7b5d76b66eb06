"""Finished runs: the run folder contract, ``load_run`` (model + ``Run``), ``evaluate_run``.

Run folder layout (the contract ONNX export and the runtime rely on)::

    RUN/config.yaml            resolved training config
    RUN/checkpoints/last.pt    end of the latest epoch (resume point)
    RUN/checkpoints/best.pt    best validation epoch
    RUN/metrics.jsonl          one JSON line per epoch
    RUN/plots/*.png            curves.png, confusion.png
    RUN/eval.json              written by ``proc-ml evaluate``
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from proc_ml.config import load_yaml
from proc_ml.errors import ModelError
from proc_ml.registry import task_class
from proc_ml.runinfo import RunInfo, ShapeInfo, info_from_dict

from . import checkpoint as checkpoints
from .checkpoint import CHECKPOINT_DIR
from .config import load_train_config, stored_config
from .models import build_model

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"


@dataclass
class Run:
    """A finished (or paused) run as one checkpoint describes it."""
    path: Path                       # the run folder
    info: RunInfo                    # typed run info (what the model is)
    config: dict                     # the resolved training config
    epoch: int                       # epochs trained when the checkpoint was written
    checkpoint: Path
    model_kwargs: dict
    metrics: dict = field(default_factory=dict)   # best validation metrics
    best_epoch: int | None = None

    @property
    def task(self):
        """The registered task class of this run."""
        return task_class(self.info.task)

    def result_header(self, data_dir, split: str) -> dict:
        """The fields every evaluation result (eval.json) starts with."""
        return {"run": str(self.path), "checkpoint": str(self.checkpoint), "epoch": self.epoch,
                "task": self.info.task, "family": self.info.family, "data": str(data_dir),
                "split": split}


def checkpoint_path(run_dir, which: str = "best") -> Path:
    """``best``/``last`` inside ``run_dir``, or a path to a ``.pt`` file."""
    if which in ("best", "last"):
        return Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"
    return Path(which)


def load_run(run_dir, checkpoint: str = "best"):
    """``(model, run)``: the network rebuilt from a checkpoint, in eval mode on CPU, and
    the ``Run`` describing it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir}: run folder not found")
    path = checkpoint_path(run_dir, checkpoint)
    saved = checkpoints.load(path)
    info = info_from_dict(saved.get("info"), str(path))
    config = stored_config(saved["config"], str(path))
    try:
        model = build_model(saved["family"], **saved["model_kwargs"])
        model.load_state_dict(saved["models"]["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot rebuild the model "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    model.eval()
    if isinstance(info, ShapeInfo) and info.logit_offset:
        _fold_logit_offset(model, info.logit_offset, path)
    best = saved.get("best") or {}
    return model, Run(path=run_dir, info=info, config=config,
                      epoch=int(saved["epoch"]), checkpoint=path,
                      model_kwargs=copy.deepcopy(saved["model_kwargs"]),
                      metrics=copy.deepcopy(best.get("metrics", {})), best_epoch=best.get("epoch"))


def _fold_logit_offset(model, offset, source) -> None:
    """Add ``offset`` to the bias of the output layer, so evaluation and ONNX see adjusted logits.

    The output layer is the last convolution or linear layer with one output per class.
    """
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d,
                                                           torch.nn.Conv3d))]
    last = layers[-1] if layers else None
    size = None if last is None else getattr(last, "out_features", getattr(last, "out_channels", None))
    if last is None or last.bias is None or size != len(offset):
        raise ModelError(f"{source}: the run has a logit offset for {len(offset)} classes but the "
                         f"network's last layer is not a {len(offset)}-way output with a bias")
    with torch.no_grad():
        last.bias += torch.tensor(offset, dtype=last.bias.dtype)


def resume_config(run_dir, overrides=()) -> dict:
    """The run's own resolved config with ``--set`` overrides on top."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{path}: not found; --resume needs a run folder written by 'proc-ml train'")
    task = load_yaml(path).get("task", "building-parts")
    return load_train_config(task, path, overrides)


def trained_epochs(run_dir) -> tuple[int, dict | None] | None:
    """``(epochs trained, best)`` from the run's ``last.pt``; ``None`` without one."""
    path = Path(run_dir) / CHECKPOINT_DIR / "last.pt"
    if not path.is_file():
        return None
    saved = checkpoints.load(path)
    return int(saved["epoch"]), saved.get("best")


def evaluate_run(run_dir, data_dir, split: str = "test", checkpoint: str = "best",
                 batch_size: int | None = None) -> dict:
    """The run's task's evaluation (``Task.evaluate``) on a split of ``data_dir``."""
    model, run = load_run(run_dir, checkpoint)
    return run.task.evaluate(model, run, data_dir, split, batch_size)


def format_table(result: dict) -> str:
    """An evaluation as its task's fixed-width text table."""
    return task_class(result.get("task", "building-parts")).format_table(result)


def example_inputs(info, dataset_dir, n: int = 4, split: str = "test") -> list[dict]:
    """Real encoded inputs of a building-parts run (``building_parts.example_inputs``)."""
    from .building_parts import example_inputs as parts_examples

    return parts_examples(info, dataset_dir, n, split)


__all__ = ["CHECKPOINT_DIR", "CONFIG_FILE", "EVAL_FILE", "METRICS_FILE", "Run", "checkpoint_path",
           "evaluate_run", "example_inputs", "format_table", "load_run", "resume_config"]
