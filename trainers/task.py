"""The interface between the one training loop (``trainers.loop``) and a model family.

A task builds its networks and data, declares its optimizers by name, and runs one
training step as a *generator* yielding ``(optimizer_name, loss)`` pairs: the loop does
backward and steps that optimizer, then resumes the generator. A classifier yields once;
a GAN yields its discriminator loss, then (after that step) its generator loss, all in
the same loop.
"""

from __future__ import annotations

from typing import Generator, Iterable

import torch
from torch import nn

StepGenerator = Generator[tuple[str, torch.Tensor], None, dict]


class Task:
    #: Task name as the CLI spells it (``proc-ml train <name>``).
    name = ""
    #: The network ``load_run`` returns and ONNX export uses.
    primary_model = "model"
    #: Validation metric names this task reports (``training.best_metric`` picks one).
    metric_names: tuple[str, ...] = ()
    #: Metrics where lower is better (besides names ending in "loss").
    lower_is_better: tuple[str, ...] = ()
    #: Extra record keys the per-epoch progress line shows.
    progress_keys: tuple[str, ...] = ()

    def __init__(self, config: dict):
        self.config = config

    # -- networks and optimisation ------------------------------------------------------
    def build_models(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizer_groups(self) -> dict[str, tuple[str, ...]]:
        """Optimizer name -> the models whose parameters it updates."""
        return {"model": (self.primary_model,)}

    def training_step(self, models: dict[str, nn.Module], batch) -> StepGenerator:
        raise NotImplementedError

    # -- data ------------------------------------------------------------------------
    def dataset(self, split: str):
        """A map-style dataset of examples for ``split``."""
        raise NotImplementedError

    def collate(self, examples: list):
        raise NotImplementedError

    def to_device(self, batch, device: torch.device):
        raise NotImplementedError

    # -- evaluation ------------------------------------------------------------------
    def new_evaluation(self):
        """An accumulator with ``update(model, batch)``, ``state()`` (tensors to sum
        across processes), ``load_state(tensors)`` and ``metrics()``."""
        raise NotImplementedError

    def on_epoch_end(self, models: dict[str, nn.Module], out_dir, epoch: int) -> None:
        """Called on the main process after each epoch's checkpoint (e.g. to write a
        PNG of predictions into ``out_dir``); ``epoch`` counts from 1."""

    # -- what a run records -----------------------------------------------------------
    def model_kwargs(self) -> dict:
        raise NotImplementedError

    def info(self) -> dict:
        """Plain-data description of inputs/outputs saved in every checkpoint."""
        raise NotImplementedError


def parameters_of(models: dict[str, nn.Module], names: Iterable[str]):
    return [p for name in names for p in models[name].parameters() if p.requires_grad]
