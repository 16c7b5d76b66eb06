"""The training loop: tiny runs, run-folder contract, exact resume, multi-optimizer steps, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from proc_ml.config import load_yaml
import torch

import proc_ml.trainers as trainers
from proc_ml import registry
from proc_ml.exporters.dataset import generate_dataset
from proc_ml.encoding import adjacency_feature_names, grid_channel_names
from proc_ml.errors import ConfigError, DatasetError, ModelError
from proc_ml.procedural.config import load_generator_config
from proc_ml.trainers import Callback, fit, load_run, load_train_config
from proc_ml.trainers.building_parts import BuildingPartsTask, masked_cross_entropy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("parts8")
    cfg = load_generator_config(overrides=["grid.size=[8,8,8]"])
    generate_dataset(cfg, 80, 5, out, formats=("grids",), workers=1, progress=False)
    return out


def tiny_config(family="parts-unet3d", *overrides):
    name = "tiny_parts_unet3d" if family == "parts-unet3d" else "tiny_parts_mlp"
    return load_train_config("building-parts", trainers.resolve_config_path(name), overrides)


@pytest.mark.parametrize("interval, drawn", [(3600.0, [1, 4]), (0.0, [1, 2, 3, 4])])
def test_plots_are_drawn_after_the_first_epoch_then_by_interval_and_at_the_end(
        tiny_data, tmp_path, monkeypatch, interval, drawn):
    """Drawing the curves takes about 0.5 s: a run of fast epochs draws them after its first
    epoch, then at most every PLOT_INTERVAL_S, and always for its last epoch."""
    from proc_ml.trainers import loop, plots

    epochs = []
    monkeypatch.setattr(loop, "PLOT_INTERVAL_S", interval)
    monkeypatch.setattr(plots, "plot_curves", lambda history, path, names: epochs.append(history[-1]["epoch"]))
    fit(tiny_config("parts-unet3d", "training.epochs=4"), tiny_data, tmp_path / "run")
    assert epochs == drawn


def test_tiny_unet_run_writes_the_run_folder_contract(tiny_data, tmp_path):
    run = tmp_path / "run"
    summary = fit(tiny_config(), tiny_data, run)
    for rel in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/best.pt",
                "plots/curves.png", "plots/confusion.png"):
        assert (run / rel).is_file(), rel
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in lines] == [1, 2] == [h["epoch"] for h in summary["history"]]
    assert {"train_loss", "val_loss", "val_face_accuracy", "val_f1_door", "lr"} <= set(lines[0])
    assert lines[0]["val_buildings"] == 8  # dataset.max_buildings caps every split
    # plain data only: loadable without unpickling arbitrary objects
    raw = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert raw["epoch"] == 2 and set(raw["rng"]) >= {"torch", "numpy", "python"}

    model, loaded = load_run(run)
    info = loaded.info
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert info.family == "parts-unet3d" and info.task == "building-parts"
    assert info.input_kind == "grid" and info.stride == model.stride == 4
    assert info.input_names == list(grid_channel_names(True)) and info.with_style is True
    assert info.parts[:3] == ["wall", "window", "door"]
    assert info.grid_size == [8, 8, 8]
    best = summary["best"]
    assert loaded.metrics["face_accuracy"] == best["value"] == max(r["val_face_accuracy"] for r in lines)

    examples = trainers.example_inputs(info, tiny_data, n=2)
    with torch.no_grad():
        logits = model(torch.from_numpy(examples[0]["input"]))
    assert logits.shape[1] == 6 * len(info.parts)
    assert logits.shape[2:] == examples[0]["input"].shape[2:]


def test_mlp_learns_and_load_run_describes_cells(tiny_data, tmp_path):
    summary = fit(tiny_config("parts-mlp", "training.epochs=6", "training.scheduler=none",
                              "dataset.use_style=false"),
                  tiny_data, tmp_path / "mlp")
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < 0.7 * losses[0]
    model, loaded = load_run(tmp_path / "mlp", checkpoint="last")
    info = loaded.info
    assert info.input_kind == "cells" and info.with_style is False
    assert info.input_names == list(adjacency_feature_names(False))
    example = trainers.example_inputs(info, tiny_data, n=1, split="val")[0]
    assert example["style"] is None
    assert model(torch.from_numpy(example["input"])).shape == (len(example["coords"]), 42)


class _StopAfter(Callback):
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_step_end(self, trainer, epoch, step):
        if (epoch, step) == (self.epoch, self.step):
            raise KeyboardInterrupt("killed mid-epoch")


def _comparable(history):
    return [{k: v for k, v in rec.items() if k != "time_s"} for rec in history]


def test_run_killed_mid_epoch_and_resumed_ends_like_an_uninterrupted_run(tiny_data, tmp_path):
    config = tiny_config("parts-unet3d", "training.epochs=3", "model.width=2")
    straight = fit(config, tiny_data, tmp_path / "straight")

    with pytest.raises(KeyboardInterrupt):
        fit(config, tiny_data, tmp_path / "killed", callbacks=[_StopAfter(epoch=1, step=0)])
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1  # the kill hit epoch 2 after its first step: only epoch 1 saved
    resumed = fit(config, tiny_data, tmp_path / "killed", resume=True)

    assert _comparable(resumed["history"]) == _comparable(straight["history"])
    a, _ = load_run(tmp_path / "straight", "last")
    b, _ = load_run(tmp_path / "killed", "last")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_a_fresh_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(tiny_data, tmp_path):
    config = tiny_config("parts-mlp", "training.epochs=1", "training.tensorboard=true",
                         "training.class_weighting=inverse_sqrt")
    fit(config, tiny_data, tmp_path / "run")
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    with pytest.raises(ConfigError, match="--resume"):
        fit(config, tiny_data, tmp_path / "run")
    with pytest.raises(ModelError, match="nothing to resume"):
        fit(config, tiny_data, tmp_path / "empty", resume=True)
    with pytest.raises(ConfigError, match="training.epochs cannot change"):
        fit(tiny_config("parts-mlp", "training.epochs=2", "training.tensorboard=true",
                        "training.class_weighting=inverse_sqrt"), tiny_data, tmp_path / "run", resume=True)
    # the optimizer's own settings live in the checkpoint: a new value would be ignored
    for change, shown in (("training.lr=0.5", "training.lr cannot change on --resume"),
                          ("training.optimizer=sgd", "training.optimizer cannot change"),
                          ("training.betas=[0.5, 0.9]", "training.betas cannot change")):
        with pytest.raises(ConfigError, match=shown):
            fit(tiny_config("parts-mlp", "training.epochs=1", "training.tensorboard=true",
                            "training.class_weighting=inverse_sqrt", change), tiny_data,
                tmp_path / "run", resume=True)


class _CriticTask(BuildingPartsTask):
    """Two optimizers in one step, as a GAN has: a critic update, then the model's."""

    def build_models(self):
        models = super().build_models()
        models["critic"] = torch.nn.Linear(6 * self.n_parts, 1)
        return models

    def optimizer_groups(self):
        return {"critic": ("critic",), "model": ("model",)}

    def training_step(self, models, batch):
        logits = models["model"](batch["inputs"])
        critic_loss = models["critic"](logits.detach()).pow(2).mean()
        yield "critic", critic_loss
        loss = masked_cross_entropy(logits, batch["targets"], self.n_parts)
        yield "model", loss + 0.0 * models["critic"](logits).mean()
        return {}


def test_one_loop_steps_every_optimizer_a_task_yields(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setitem(registry.TASKS, "building-parts", registry.TaskEntry("building-parts", _CriticTask))
    config = tiny_config("parts-mlp", "training.epochs=1", "training.scheduler=none")
    summary = fit(config, tiny_data, tmp_path / "two")
    record = summary["history"][0]
    assert record["train_loss_critic"] > 0 and record["train_loss_model"] > 0
    saved = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)
    assert set(saved["optimizers"]) == {"critic", "model"}
    assert saved["optimizers"]["critic"]["state"], "critic optimizer never stepped"


def test_config_is_strict_and_checks_values():
    with pytest.raises(ConfigError, match=r"unknown config key 'training.epochz' \(did you mean 'training.epochs'"):
        tiny_config("parts-unet3d", "training.epochz=3")
    with pytest.raises(ConfigError, match="unknown config key 'model.hidden'"):
        tiny_config("parts-unet3d", "model.hidden=[4]")  # an MLP key on the U-Net
    with pytest.raises(ConfigError, match="'training.lr' must be > 0"):
        tiny_config("parts-mlp", "training.lr=0")
    with pytest.raises(ConfigError, match="'training.optimizer' must be one of"):
        tiny_config("parts-mlp", "training.optimizer=lbfgs")
    with pytest.raises(ConfigError, match="'model.family' must be one of"):
        tiny_config("parts-mlp", "model.family=voxnet")
    with pytest.raises(ConfigError, match="config file not found"):
        trainers.resolve_config_path("no_such_config")
    assert tiny_config("parts-mlp", "training.epochs=5")["training"]["epochs"] == 5


def test_every_shipped_config_loads():
    names = [p.stem for p in trainers.packaged_config_dir().glob("*.yaml")]
    assert {"parts_unet3d", "parts_unet3d_massing", "parts_mlp", "tiny_parts_unet3d",
            "tiny_parts_mlp"} <= set(names)
    for name in names:   # each with the task its file names (pix2pix, shape tasks...)
        path = trainers.resolve_config_path(name)
        load_train_config(load_yaml(path).get("task", "building-parts"), path)
    massing = load_train_config("building-parts", trainers.resolve_config_path("parts_unet3d_massing"))
    assert massing["dataset"]["use_style"] is False


def test_bad_data_folder_and_vocabulary_mismatch(tiny_data, tmp_path):
    with pytest.raises(DatasetError, match="dataset.yaml"):
        fit(tiny_config(), tmp_path, tmp_path / "run")
    fit(tiny_config("parts-mlp", "training.epochs=1"), tiny_data, tmp_path / "run")
    other = tmp_path / "other_parts"
    cfg = load_generator_config(overrides=["grid.size=[8,8,8]", "parts=[wall,window,roof,ground]"])
    generate_dataset(cfg, 10, 1, other, formats=("grids",), workers=1, progress=False)
    with pytest.raises(DatasetError, match="differ from the parts"):
        trainers.evaluate_run(tmp_path / "run", other)
    with pytest.raises(DatasetError, match="differ from the parts"):
        fit(tiny_config("parts-mlp", "training.epochs=1"), other, tmp_path / "run", resume=True)


def test_evaluate_counts_faces_and_buildings(tiny_data, tmp_path):
    fit(tiny_config("parts-mlp", "training.epochs=1"), tiny_data, tmp_path / "run")
    result = trainers.evaluate_run(tmp_path / "run", tiny_data, split="test")
    n_test = len(trainers.make_task(result_config(tmp_path / "run"), tiny_data).split_ids("test"))
    assert result["buildings"] == n_test
    confusion = np.array(result["confusion"])
    assert confusion.sum() == result["faces"]
    assert result["face_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    door = result["per_class"]["door"]
    assert door["support"] == confusion[2].sum()
    assert 0.0 <= result["building_accuracy"] <= 1.0
    assert "face accuracy" in trainers.format_table(result)


def result_config(run):
    return trainers.resume_config(run)


def test_ddp_two_processes_on_gloo(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "proc_ml", "train", "building-parts", "--data", str(tiny_data), "--out", str(run),
           "--config", "tiny_parts_mlp", "--set", "training.device=cpu", "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in lines] == [1, 2]
    # each rank scored half of the validation buildings; all-reduced they add up to all
    assert lines[-1]["val_buildings"] == 8
    # 8 training buildings, batch 4, 2 ranks: one step per rank per epoch
    assert lines[-1]["step"] == 2
    assert done.stdout.count("trained parts-mlp") == 1  # only rank 0 reports
    load_run(run)


def test_a_checkpoint_is_serialised_once_for_last_and_best_and_a_failed_write_keeps_the_old(
        tmp_path, monkeypatch):
    import errno

    from proc_ml.errors import OutputError
    from proc_ml.trainers import checkpoint

    payload = {"epoch": 3, "weights": {"w": torch.arange(6.0)}}
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    checkpoint.save(last, payload, also=(best,))
    assert last.read_bytes() == best.read_bytes()
    loaded = torch.load(best, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["weights"]["w"], torch.arange(6.0))
    before = best.read_bytes()
    real = checkpoint.write_bytes

    def full_disk(path, data):
        if Path(path).name == "best.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(checkpoint, "write_bytes", full_disk)
    with pytest.raises(OutputError, match=r"cannot write the checkpoint .*best\.pt: .*No space left"):
        checkpoint.save(last, {**payload, "epoch": 4}, also=(best,))
    assert torch.load(last, weights_only=True)["epoch"] == 4
    assert best.read_bytes() == before and not list(tmp_path.glob("*.tmp"))
