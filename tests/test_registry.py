"""The task registry: every registered task meets the interface the training loop, config
loading, evaluation and export call (``proc_ml.trainers.task.Task``), and a new model family
added from outside the code base (a tiny model, a task module and one registry line)
trains, exports and predicts through the CLI."""

from __future__ import annotations

import inspect
import json
import sys
import textwrap

import numpy as np
import pytest

from proc_ml import registry
from proc_ml.cli import main
from proc_ml.runinfo import KINDS, RunInfo


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_every_registered_task_meets_the_task_interface(name):
    from proc_ml.trainers.config import default_config_path, load_train_config
    from proc_ml.trainers.models import FAMILIES
    from proc_ml.trainers.task import Task

    cls = registry.task_class(name)
    assert issubclass(cls, Task) and not inspect.isabstract(cls), f"{name}: abstract methods left"
    assert cls.name == name
    assert cls.families and all(f in FAMILIES for f in cls.families)
    assert issubclass(cls.info_type, RunInfo) and KINDS[cls.info_type.KIND] is cls.info_type
    assert cls.metric_names and all(isinstance(m, str) for m in cls.metric_names)
    assert default_config_path(name).is_file()
    config = load_train_config(name, default_config_path(name))
    assert config["task"] == name and config["model"]["family"] in cls.families
    assert config["training"]["best_metric"] in cls.metric_names
    # every abstract method of the interface is overridden by the task itself
    for method in Task.__abstractmethods__:
        assert getattr(cls, method) is not getattr(Task, method), f"{name}.{method}"


def test_unknown_task_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "nope", "--data", ".", "--out", "x"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'nope'" in err


# -- a toy family from outside the code base ------------------------------------------------
TOY_TASK = textwrap.dedent('''
    """A toy family: an MLP over the 8^3 voxel grid of a building, classifying its archetype.
    It reuses the voxel data pipeline of the VoxNet task; everything else is its own."""
    import torch
    from torch import nn

    from proc_ml.trainers.models import Family, register_family
    from proc_ml.trainers.shapes import VoxNetTask


    class ToyNet(nn.Module):
        def __init__(self, n_classes: int, resolution: int, hidden: int = 16):
            super().__init__()
            self.layers = nn.Sequential(nn.Flatten(), nn.Linear(resolution ** 3, hidden),
                                        nn.ReLU(), nn.Linear(hidden, n_classes))

        def forward(self, x):
            return self.layers(x)


    register_family(Family("toy-mlp", ToyNet, {"hidden": 16}, ("n_classes", "resolution")))


    class ToyTask(VoxNetTask):
        name = "toy-cls"
        families = ("toy-mlp",)
        default_config = CONFIG_PATH

        def model_kwargs(self):
            return {"n_classes": len(self.parts), "resolution": int(self.data_cfg["resolution"]),
                    **self.hyper}
''')

TOY_CONFIG = textwrap.dedent("""
    task: toy-cls
    dataset: {resolution: 12}
    model: {family: toy-mlp, hidden: 8}
    training: {epochs: 2, batch_size: 4, eval_batch_size: 8, lr: 0.01, threads: 1, progress: false}
""")


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    package = tmp_path / "toy_plugin"
    package.mkdir()
    config = tmp_path / "toy.yaml"
    config.write_text(TOY_CONFIG)
    (package / "toy_task.py").write_text(TOY_TASK.replace("CONFIG_PATH", repr(str(config))))
    monkeypatch.syspath_prepend(str(package))
    # the one registry line:
    registry.register_task("toy-cls", "toy_task:ToyTask", "archetype from an 8^3 grid (toy)")
    yield
    from proc_ml.trainers.models import FAMILIES

    FAMILIES.pop("toy-mlp", None)
    sys.modules.pop("toy_task", None)
    registry.TASKS.pop("toy-cls", None)


def test_a_toy_family_trains_exports_and_predicts_through_the_cli(toy_task, point_dataset, tmp_path,
                                                                  capsys):
    # the train parser lists the registry's tasks when it is built
    run, model = tmp_path / "run", tmp_path / "toy.onnx"
    assert main(["train", "toy-cls", "--data", str(point_dataset), "--out", str(run), "--quiet"]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and np.isfinite(lines[-1]["val_loss"])
    assert main(["evaluate", str(run), "--data", str(point_dataset)]) == 0
    assert main(["export", "onnx", str(run), "--out", str(model)]) == 0
    from proc_ml.runtime import load_model

    meta = load_model(model, device="cpu").metadata
    assert (meta.kind, meta.task, meta.family) == ("shape", "toy-cls", "toy-mlp")
    assert meta.input_shape == ["batch", 1, 12, 12, 12]
    capsys.readouterr()
    mesh = _building_mesh(point_dataset, tmp_path)
    assert main(["predict", "classify", "--model", str(model), "--input", str(mesh), "--top-k", "3",
                 "--out", str(tmp_path / "pred")]) == 0
    ranked = json.loads((tmp_path / "pred" / "classes.json").read_text())["top_k"]
    probabilities = [r["probability"] for r in ranked]
    assert len(ranked) == 3 and all(r["class"] in meta.info.classes for r in ranked)
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    assert capsys.readouterr().out.count("\n") == 4                    # 3 classes + "wrote ..."


def _building_mesh(dataset, tmp_path):
    import trimesh

    from proc_ml.datasets import open_dataset
    from proc_ml.meshing import quad_mesh

    record = open_dataset(dataset).building(0)
    quads = quad_mesh(record.occupancy, None, 3.0)
    path = tmp_path / "building.obj"
    trimesh.Trimesh(quads.vertices, quads.triangles, process=False).export(path)
    return path
