"""Training configs: ``dataset`` / ``model`` / ``training`` sections, strictly checked.

The ``model`` section's allowed keys depend on ``model.family`` (each family's
hyper-parameters in ``proc_ml.trainers.models.FAMILIES``), so the family is read first and the
defaults for it are built before the strict merge.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proc_ml.config import key_error, load_config_sources, load_yaml, merge, parse_override, source_of
from proc_ml.errors import ConfigError
from proc_ml.registry import TASKS, task_class
from proc_ml.validation import MAX_COUNT, check

from .models import FAMILIES

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "onecycle", "linear")
CLASS_WEIGHTINGS = ("none", "inverse_sqrt")
DEVICES = ("auto", "cpu", "cuda")

BASE_DEFAULTS = {
    "task": "building-parts",
    "dataset": {
        "use_style": True,         # false: massing only, as real block-outs come
        "inputs": None,            # building parts, grid nets: style | massing | street |
                                   # street_neighbours (encoding.GRID_INPUT_SETS); None: by use_style
        "street_dropout": 0.0,     # street inputs: share of training buildings shown no street side
        "symmetry": "none",        # building parts, training split: none | rotate (quarter turns
                                   # about z) | dihedral (turns and mirror images), one drawn per
                                   # building and epoch; for orientation-free inputs and rules
        "train_split": "train",
        "val_split": "val",
        "max_buildings": 0,        # > 0: use only the first N buildings of each split
    },
    "model": {"family": "parts-unet3d"},
    "training": {
        "epochs": 20,
        "batch_size": 16,
        "eval_batch_size": 32,
        "optimizer": "adam",
        "lr": 0.003,
        "weight_decay": 0.0,
        "scheduler": "onecycle",   # stepped every batch
        "decay_fraction": 0.5,     # linear: constant lr, then decay to 0 over this share of the run
        "betas": [0.9, 0.999],     # adam / adamw
        "seed": 0,
        "device": "auto",          # cuda if available, else cpu
        "amp": True,               # mixed precision, used on CUDA only
        "best_metric": "face_accuracy",
        "class_weighting": "none",  # inverse_sqrt: rare classes (doors) weigh more in the loss
        "patience": 0,             # > 0: stop after this many epochs without a better
                                   # best_metric (the best checkpoint is kept); 0: never
        "fit_decision": False,     # building parts: fit per-part decision weights on the
                                   # validation split at export (labels = argmax(p x w))
        "tensorboard": False,
        "progress": True,
        "threads": 0,              # CPU threads per process; 0 = torch's default
    },
}

def packaged_config_dir() -> Path:
    """Folder of the configs shipped inside the package (``proc_ml/configs``)."""
    return Path(str(resources.files("proc_ml") / "configs"))


def packaged_configs() -> list[str]:
    return sorted(p.name for p in packaged_config_dir().glob("*.yaml"))


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A config file path, or the name of a shipped config (``parts_mlp``, ``configs/parts_mlp.yaml``)."""
    given = Path(path)
    if given.is_file():
        return given
    name = given.name if given.suffix == ".yaml" else given.name + ".yaml"
    shipped = packaged_config_dir() / name
    if shipped.is_file():
        return shipped
    if given.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file (give a .yaml file or the name of "
                          f"a shipped config: {', '.join(packaged_configs())})")
    raise ConfigError(f"{path}: config file not found (shipped configs: {', '.join(packaged_configs())})")


def default_config_path(task: str) -> Path:
    return packaged_config_dir() / task_class(task).default_config


def defaults_for(task: str, family: str) -> dict:
    """``BASE_DEFAULTS`` with the task's own sections (``Task.defaults``) and the family's
    hyper-parameters (``trainers.models.FAMILIES``) as the ``model`` section."""
    defaults = copy.deepcopy(BASE_DEFAULTS)
    defaults["task"] = task
    for section, values in copy.deepcopy(task_class(task).defaults()).items():
        if section == "training":
            defaults["training"].update(values)
        else:
            defaults[section] = values
    defaults["model"] = {"family": family, **copy.deepcopy(FAMILIES[family].defaults)}
    return defaults


def _requested(raw: dict, overrides, section: str, key: str):
    value = (raw.get(section) or {}).get(key) if isinstance(raw.get(section), dict) else None
    for text in overrides:
        keys, parsed = parse_override(text)
        if keys == [section, key]:
            value = parsed
    return value


def load_train_config(task: str, path: str | os.PathLike | None = None, overrides=()) -> dict:
    """Defaults for (task, family) <- YAML <- ``--set`` overrides, then value checks; an
    error about a key names the file or the ``--set`` that gave its value."""
    if task not in TASKS:
        raise ConfigError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    families = task_class(task).families
    overrides = list(overrides)
    source = str(path) if path is not None else "config"
    raw = load_yaml(path) if path is not None else {}
    family = _requested(raw, overrides, "model", "family") or families[0]
    if not isinstance(family, str) or family not in families:
        blame = next((f"--set {t}" for t in reversed(overrides)
                      if parse_override(t)[0] == ["model", "family"]), source)
        raise ConfigError(f"{blame}: config key 'model.family' must be one of "
                          f"{', '.join(families)} for task {task}, got {family!r}")
    file_task = raw.get("task", task)
    if file_task != task:
        raise ConfigError(f"{source}: config key 'task' is '{file_task}', but this command trains '{task}'")
    config, sources = load_config_sources(defaults_for(task, family), path, overrides)
    return validate(config, sources)


class TrainingSection(BaseModel):
    """Value ranges of the ``training`` section (types are already those of the defaults,
    ``proc_ml.config.merge``); tasks may add keys of their own (checked by the task)."""
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    epochs: int = Field(ge=1, le=100_000)
    batch_size: int = Field(ge=1, le=1 << 16)
    eval_batch_size: int = Field(ge=1, le=1 << 16)
    optimizer: Literal[OPTIMIZERS]
    lr: float = Field(gt=0, le=1e3)
    weight_decay: float = Field(ge=0, le=1e3)
    scheduler: Literal[SCHEDULERS]
    decay_fraction: float = Field(gt=0, le=1)
    betas: list[float] = Field(min_length=2, max_length=2)
    seed: int = Field(ge=0, le=2 ** 32 - 1)
    device: str
    amp: bool
    best_metric: str
    class_weighting: Literal[CLASS_WEIGHTINGS]
    tensorboard: bool
    progress: bool
    threads: int = Field(ge=0, le=1024)
    patience: int = Field(ge=0, le=100_000)

    @field_validator("betas")
    @classmethod
    def _betas(cls, value):
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError("must be two numbers in [0, 1)")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value):
        if is_device(value):
            return value
        raise ValueError("must be auto, cpu, cuda or cuda:N")


def is_device(value: str) -> bool:
    """``training.device``: auto, cpu, cuda or cuda:N."""
    return value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit())


def check_device_option(value: str | None, what: str = "--device") -> None:
    """A command's ``--device`` (None: not given), checked under its own name."""
    if value is not None and not is_device(value):
        raise ConfigError(f"{what} must be auto, cpu, cuda or cuda:N, got '{value}'")


class DatasetSection(BaseModel):
    """Value ranges of the ``dataset`` keys every task shares."""
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")

    max_buildings: int = Field(default=0, ge=0, le=MAX_COUNT)
    max_pairs: int = Field(default=0, ge=0, le=MAX_COUNT)


def validate(config: dict, source: str = "config") -> dict:
    """Check the values of a merged config (``source``: its label, or ``Sources`` naming
    where each key came from)."""
    def fail(key, why):
        return key_error(source, key, why)

    for section, schema in (("training", TrainingSection), ("dataset", DatasetSection)):
        check(schema, config[section], source=lambda key: source_of(source, key),
              prefix=section, what="config key", error=ConfigError)
    task_class(config["task"]).validate_config(config, source)
    checks = FAMILIES[config["model"]["family"]].checks
    for key, value in config["model"].items():
        check_ = checks.get(key)
        if check_ is not None and not check_[0](value):
            raise fail(f"model.{key}", f"{check_[1]}, got {value!r}")
    return config


def stored_config(config, source: str) -> dict:
    """A run's resolved config as a checkpoint stores it, checked like a config file
    (``source`` names the checkpoint): the right sections, types and values."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: checkpoint field 'config' must be a mapping, "
                          f"got {type(config).__name__}")
    task = config.get("task")
    model = config.get("model")
    family = model.get("family") if isinstance(model, dict) else None
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError(f"{source}: config key 'task' must be one of {', '.join(TASKS)}, "
                          f"got {task!r}")
    families = task_class(task).families
    if not isinstance(family, str) or family not in families:
        raise ConfigError(f"{source}: config key 'model.family' must be one of "
                          f"{', '.join(families)} for task {task}, got {family!r}")
    return validate(merge(defaults_for(task, family), config, source=source), source)
