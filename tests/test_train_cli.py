"""``proc-ml train`` / ``proc-ml evaluate`` from the command line: outputs and one-line errors."""

import json

import pytest

from proc_ml.exporters.dataset import generate_dataset
from proc_ml.cli import main
from proc_ml.procedural.config import load_generator_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli8")
    cfg = load_generator_config(overrides=["grid.size=[8,8,8]"])
    generate_dataset(cfg, 80, 2, out, formats=("grids",), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_run") / "run"
    assert main(["train", "building-parts", "--data", str(data), "--out", str(out),
                 "--config", "configs/tiny_parts_mlp.yaml", "--set", "training.epochs=1", "--quiet"]) == 0
    return out


def _one_error_line(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"proc-ml {command}: error: "), err
    return err[0]


def test_train_then_resume_to_more_epochs_and_evaluate(data, run, capsys):
    assert (run / "checkpoints" / "best.pt").is_file()
    assert main(["train", "building-parts", "--data", str(data), "--out", str(run), "--resume",
                 "--set", "training.epochs=2", "--quiet"]) == 1
    assert "training.epochs cannot change" in _one_error_line(capsys, "train")
    # without a schedule tied to the epoch count a run can be extended
    assert main(["train", "building-parts", "--data", str(data), "--out", str(run), "--resume",
                 "--set", "training.epochs=2", "--set", "training.scheduler=none", "--quiet"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]

    assert main(["evaluate", str(run), "--data", str(data), "--split", "test"]) == 0
    out = capsys.readouterr().out
    for part in ("wall", "window", "door", "roof", "face accuracy", "buildings all right"):
        assert part in out
    result = json.loads((run / "eval.json").read_text())
    assert result["split"] == "test" and result["buildings"] == 8
    assert set(result["per_class"]["door"]) == {"precision", "recall", "f1", "support"}


def test_evaluate_out_option_and_all_split(data, run, tmp_path):
    target = tmp_path / "scores.json"
    assert main(["evaluate", str(run), "--data", str(data), "--split", "all", "--out", str(target)]) == 0
    assert json.loads(target.read_text())["buildings"] == 80


@pytest.mark.parametrize("extra, expected", [
    (["--set", "training.epochz=3"], "unknown config key 'training.epochz' (did you mean 'training.epochs'?)"),
    (["--set", "model.width=0"], "config key 'model.width' must be >= 1"),
    (["--set", "training.device=tpu"], "config key 'training.device' must be auto, cpu, cuda"),
    (["--config", "nope.yaml"], "nope.yaml: config file not found"),
])
def test_train_config_errors_are_one_line(data, tmp_path, capsys, extra, expected):
    config = [] if "--config" in extra else ["--config", "tiny_parts_unet3d"]
    code = main(["train", "building-parts", "--data", str(data), "--out", str(tmp_path / "r"),
                 *config, *extra])
    assert code == 1
    assert expected in _one_error_line(capsys, "train")
    assert not (tmp_path / "r").exists()


def test_data_folder_without_manifest(tmp_path, capsys):
    assert main(["train", "building-parts", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--config", "tiny_parts_mlp"]) == 1
    assert "dataset.yaml" in _one_error_line(capsys, "train")


def test_existing_run_needs_resume_and_resume_refuses_config(data, run, capsys):
    assert main(["train", "building-parts", "--data", str(data), "--out", str(run),
                 "--config", "tiny_parts_mlp"]) == 1
    assert "pass --resume" in _one_error_line(capsys, "train")
    assert main(["train", "building-parts", "--data", str(data), "--out", str(run), "--resume",
                 "--config", "tiny_parts_mlp"]) == 1
    assert "--config cannot be combined with --resume" in _one_error_line(capsys, "train")


def test_evaluate_errors(data, run, tmp_path, capsys):
    other = tmp_path / "other"
    cfg = load_generator_config(overrides=["grid.size=[8,8,8]", "parts=[wall,roof,ground]"])
    generate_dataset(cfg, 10, 1, other, formats=("grids",), workers=1, progress=False)
    assert main(["evaluate", str(run), "--data", str(other)]) == 1
    assert "differ from the parts" in _one_error_line(capsys, "evaluate")
    assert main(["evaluate", str(tmp_path / "missing"), "--data", str(data)]) == 1
    assert "run folder not found" in _one_error_line(capsys, "evaluate")
    assert main(["evaluate", str(run), "--data", str(data), "--split", "holdout"]) == 1
    assert "no split named 'holdout'" in _one_error_line(capsys, "evaluate")


@pytest.mark.parametrize("task, config, setting, shown", [
    ("pix2pix", "tiny_pix2pix", "training.class_weighting=inverse_sqrt",
     "config key 'training.class_weighting' must be none for pix2pix"),
    ("pix2pix", "tiny_pix2pix", "training.fit_decision=true",
     "config key 'training.fit_decision' is for building-parts models"),
    ("voxnet", "tiny_voxnet", "training.fit_decision=true",
     "config key 'training.fit_decision' is for building-parts models"),
    ("voxnet", "tiny_voxnet", "augment.jitter=0.1", "config key 'augment.jitter' is for the point models"),
    ("voxnet", "tiny_voxnet", "dataset.num_points=512", "config key 'dataset.num_points' is for the point models"),
    ("pointnet-cls", "tiny_pointnet_cls", "dataset.resolution=16", "config key 'dataset.resolution' is for voxnet"),
])
def test_training_keys_a_task_has_no_use_for_are_refused(tmp_path, capsys, task, config, setting, shown):
    """Keys of the shared training section that would change nothing for a task stop with
    one line before any data is read."""
    assert main(["train", task, "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"),
                 "--config", config, "--set", setting, "--quiet"]) == 1
    assert shown in _one_error_line(capsys, "train")
