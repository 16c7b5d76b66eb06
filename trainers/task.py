"""The interface between proc-ml's training side and a task: what the one training loop
(``trainers.loop``), config loading (``trainers.config``), finished-run evaluation
(``trainers.runs``) and ONNX export (``exporters.onnx_export``) call. Nothing else is
called; ``tests/test_registry.py`` checks every registered task against this class.

A task builds its networks and data, declares its optimizers by name, and runs one
training step as a *generator* yielding ``(optimizer_name, loss)`` pairs: the loop does
backward and steps that optimizer, then resumes the generator. A classifier yields once;
a GAN yields its discriminator loss, then (after that step) its generator loss, all in
the same loop.

Tasks are registered by CLI name in ``proc_ml.registry``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, Generator, Iterable

import numpy as np
import torch
from torch import nn

from proc_ml.runinfo import RunInfo

if TYPE_CHECKING:
    from .runs import Run

StepGenerator = Generator[tuple[str, torch.Tensor], None, dict]


class Task(abc.ABC):
    # -- what the registry, the CLI and config loading read ---------------------------
    #: Task name as the CLI spells it (``proc-ml train <name>``, the registry key).
    name: ClassVar[str] = ""
    #: Model families (``trainers.models.FAMILIES``) this task trains; the first is the default.
    families: ClassVar[tuple[str, ...]] = ()
    #: Shipped config (``proc_ml/configs/``) used when ``--config`` is not given.
    default_config: ClassVar[str] = ""
    #: The typed run info (``proc_ml.runinfo``) its runs and exported models carry.
    info_type: ClassVar[type[RunInfo]] = RunInfo
    #: The network ``load_run`` returns and ONNX export uses.
    primary_model: ClassVar[str] = "model"
    #: Validation metric names this task reports (``training.best_metric`` picks one).
    metric_names: ClassVar[tuple[str, ...]] = ()
    #: Metrics where lower is better (besides names ending in "loss").
    lower_is_better: ClassVar[tuple[str, ...]] = ()
    #: Extra record keys the per-epoch progress line shows.
    progress_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def defaults(cls) -> dict:
        """Config sections this task adds or replaces over ``trainers.config.BASE_DEFAULTS``
        (a ``training`` section updates the base one)."""
        return {}

    @classmethod
    def validate_config(cls, config: dict, source: str) -> None:
        """Value checks of this task's own keys (``ConfigError`` naming the key)."""

    #: The run folder (set by ``use_run_dir``); None when the task is used outside a run.
    run_dir = None
    #: Whether the task may show progress bars of its own (set by the loop: not with --quiet).
    progress = False

    def __init__(self, config: dict, data_dir):
        self.config = config

    def use_run_dir(self, run_dir) -> None:
        """The run folder, given by the loop (and by evaluation) before any data is built:
        the one place a task may keep files of its own (e.g. decoded-image caches)."""
        from pathlib import Path

        self.run_dir = Path(run_dir)

    @classmethod
    def prepare_config(cls, config: dict) -> None:
        """Called by the training loop before a new run's task is made (not on resume):
        may rewrite ``config`` in place (fine-tuning adopts the source network's size)."""

    # -- networks and optimisation ------------------------------------------------------
    @abc.abstractmethod
    def build_models(self) -> dict[str, nn.Module]:
        """The networks by name; ``primary_model`` is the one exported."""

    def init_weights(self, models: dict[str, nn.Module]) -> None:
        """Called by the training loop on a new run once the networks are built (not on
        resume): start them from trained weights (fine-tuning, ``training.init``)."""

    def optimizer_groups(self) -> dict[str, tuple[str, ...]]:
        """Optimizer name -> the models whose parameters it updates."""
        return {"model": (self.primary_model,)}

    @abc.abstractmethod
    def training_step(self, models: dict[str, nn.Module], batch) -> StepGenerator:
        """Yield ``(optimizer name, loss)`` pairs; return a dict of extra logs."""

    @abc.abstractmethod
    def model_kwargs(self) -> dict:
        """Constructor arguments of the primary model (stored in checkpoints)."""

    # -- data ------------------------------------------------------------------------
    @abc.abstractmethod
    def dataset(self, split: str, limit: int = 0):
        """A map-style dataset of ``split`` (``limit`` > 0: its first examples only); the
        loop calls ``set_epoch(epoch)`` on it when it has one."""

    @abc.abstractmethod
    def collate(self, examples: list):
        """A batch from examples."""

    @abc.abstractmethod
    def to_device(self, batch, device: torch.device):
        """The batch on ``device``."""

    # -- evaluation ------------------------------------------------------------------
    @abc.abstractmethod
    def new_evaluation(self, device=None):
        """An accumulator with ``update(model, batch)``, ``state()`` (tensors to sum
        across processes), ``load_state(tensors)`` and ``metrics()``."""

    @abc.abstractmethod
    def label_names(self) -> list[str]:
        """Class names of the confusion matrix the evaluation reports (may be empty)."""

    def on_epoch_end(self, models: dict[str, nn.Module], out_dir, epoch: int) -> None:
        """Called on the main process after each epoch's checkpoint (e.g. to write a
        PNG of predictions into ``out_dir``); ``epoch`` counts from 1."""

    # -- what a run records ---------------------------------------------------------
    @abc.abstractmethod
    def info(self) -> RunInfo:
        """The typed run info (an ``info_type``) saved in every checkpoint."""

    @abc.abstractmethod
    def check_compatible(self, info: RunInfo, what: str) -> None:
        """Refuse (``DatasetError``) data that does not fit a run trained on ``info``."""

    # -- finished runs ----------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def evaluate(cls, model: nn.Module, run: "Run", data_dir, split: str = "test",
                 batch_size: int | None = None) -> dict:
        """Metrics of a finished run's ``model`` on ``split`` of ``data_dir`` (eval.json)."""

    @staticmethod
    @abc.abstractmethod
    def format_table(result: dict) -> str:
        """``evaluate``'s result as a fixed-width text table."""

    @classmethod
    def export_info(cls, model: nn.Module, run: "Run", data_dir, log=print,
                    fit: bool | None = None) -> RunInfo:
        """The run info an exported model carries: ``run.info`` unless the task fits
        something more on the run's data at export (building parts: the decision rule)."""
        return run.info

    @classmethod
    @abc.abstractmethod
    def parity_inputs(cls, run: "Run", data_dir=None, n: int = 3) -> list[tuple[str, np.ndarray]]:
        """Named model inputs (numpy) for the ONNX parity check: real samples plus sizes
        the export never saw."""


def parameters_of(models: dict[str, nn.Module], names: Iterable[str]):
    return [p for name in names for p in models[name].parameters() if p.requires_grad]


@torch.no_grad()
def evaluate_split(task: Task, model: nn.Module, split: str, batch_size: int | None = None,
                   evaluation=None):
    """``(metrics, dataset)``: ``task``'s evaluation (or ``evaluation``) of ``model`` over
    a whole split."""
    dataset = task.dataset(split)
    size = batch_size or task.config["training"]["eval_batch_size"]
    loader = torch.utils.data.DataLoader(dataset, batch_size=size, shuffle=False,
                                         collate_fn=task.collate)
    evaluation = evaluation or task.new_evaluation()
    for batch in loader:
        evaluation.update(model, batch)
    return evaluation.metrics(), dataset
