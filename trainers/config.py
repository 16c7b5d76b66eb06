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

from proc_ml.config import load_config, load_yaml, parse_override
from proc_ml.errors import ConfigError
from proc_ml.registry import TASKS, task_class

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
    """Defaults for (task, family) <- YAML <- ``--set`` overrides, then value checks."""
    if task not in TASKS:
        raise ConfigError(f"unknown task '{task}' (known: {', '.join(TASKS)})")
    families = task_class(task).families
    overrides = list(overrides)
    source = str(path) if path is not None else "config"
    raw = load_yaml(path) if path is not None else {}
    family = _requested(raw, overrides, "model", "family") or families[0]
    if family not in families:
        raise ConfigError(f"{source}: config key 'model.family' must be one of "
                          f"{', '.join(families)} for task {task}, got {family!r}")
    file_task = raw.get("task", task)
    if file_task != task:
        raise ConfigError(f"{source}: config key 'task' is '{file_task}', but this command trains '{task}'")
    config = load_config(defaults_for(task, family), path, overrides)
    return validate(config, source)


def validate(config: dict, source: str = "config") -> dict:
    def fail(key, why):
        return ConfigError(f"{source}: config key '{key}' {why}")

    train = config["training"]
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if train[key] < 1:
            raise fail(f"training.{key}", f"must be >= 1, got {train[key]}")
    if train["lr"] <= 0:
        raise fail("training.lr", f"must be > 0, got {train['lr']}")
    if train["weight_decay"] < 0:
        raise fail("training.weight_decay", f"must be >= 0, got {train['weight_decay']}")
    if train["threads"] < 0:
        raise fail("training.threads", f"must be >= 0, got {train['threads']}")
    for key, choices in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS),
                         ("class_weighting", CLASS_WEIGHTINGS)):
        if train[key] not in choices:
            raise fail(f"training.{key}", f"must be one of {', '.join(choices)}, got {train[key]!r}")
    device = train["device"]
    if device not in DEVICES and not (isinstance(device, str) and device.startswith("cuda:")):
        raise fail("training.device", f"must be auto, cpu, cuda or cuda:N, got {device!r}")
    for key in ("max_buildings", "max_pairs"):
        if config["dataset"].get(key, 0) < 0:
            raise fail(f"dataset.{key}", f"must be >= 0, got {config['dataset'][key]}")
    if not 0.0 < train["decay_fraction"] <= 1.0:
        raise fail("training.decay_fraction", f"must be in (0, 1], got {train['decay_fraction']}")
    betas = train["betas"]
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
        raise fail("training.betas", f"must be two numbers in [0, 1), got {betas!r}")
    task_class(config["task"]).validate_config(config, source)
    checks = FAMILIES[config["model"]["family"]].checks
    for key, value in config["model"].items():
        check = checks.get(key)
        if check is not None and not check[0](value):
            raise fail(f"model.{key}", f"{check[1]}, got {value!r}")
    return config
