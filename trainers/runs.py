"""Reading finished runs: ``load_run`` (model + info), ``evaluate_run``, ``example_inputs``.

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
from pathlib import Path

import torch

from proc_ml.config import load_yaml
from proc_ml.datasets import open_dataset
from proc_ml.errors import ModelError
from .models import build_model

from . import checkpoint
from .building_parts import encode_cell_example, encode_grid_example
from .config import load_train_config
from .shapes import SHAPE_TASKS, evaluate_shape_run, format_shape_table
from .loop import CHECKPOINT_DIR, CONFIG_FILE, make_task


def checkpoint_path(run_dir, which: str = "best") -> Path:
    """``best``/``last`` inside ``run_dir``, or a path to a ``.pt`` file."""
    if which in ("best", "last"):
        return Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"
    return Path(which)


def _read_checkpoint(run_dir, which: str) -> dict:
    run = Path(run_dir)
    if not run.is_dir():
        raise ModelError(f"{run}: run folder not found")
    return checkpoint.load(checkpoint_path(run, which))


def load_run(run_dir, checkpoint: str = "best"):
    """``(model, info)``: the network rebuilt from a checkpoint, in eval mode on CPU.

    ``info`` (plain data): task, family, parts, directions, input_kind ("grid"|"cells"),
    input_names, with_style, stride (grid nets; None for cells), output, dataset_manifest
    (grid_size, cell_size, count, seed, format_version), metrics (best validation
    metrics), config, epoch, checkpoint (path), model_kwargs.
    """
    saved = _read_checkpoint(run_dir, checkpoint)
    try:
        model = build_model(saved["family"], **saved["model_kwargs"])
        model.load_state_dict(saved["models"]["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(f"{checkpoint_path(run_dir, checkpoint)}: cannot rebuild the model "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    model.eval()
    info = copy.deepcopy(saved["info"])
    if info.get("logit_offset"):
        _fold_logit_offset(model, info["logit_offset"], checkpoint_path(run_dir, checkpoint))
    best = saved.get("best") or {}
    info.update({"metrics": copy.deepcopy(best.get("metrics", {})),
                 "best_epoch": best.get("epoch"),
                 "config": copy.deepcopy(saved["config"]),
                 "epoch": int(saved["epoch"]),
                 "checkpoint": str(checkpoint_path(run_dir, checkpoint)),
                 "model_kwargs": copy.deepcopy(saved["model_kwargs"])})
    return model, info


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


def example_inputs(info: dict, dataset_dir, n: int = 4, split: str = "test") -> list[dict]:
    """Real encoded inputs for parity checks (torch vs ONNX vs runtime).

    Each item: ``building_id``, ``occupancy`` uint8[X,Y,Z], ``style`` float32[9] (None if
    the run is massing-only), ``labels`` int8[X,Y,Z,6], ``input`` — grid runs:
    float32[1, C, X', Y', Z'] padded to ``info['stride']``; cell runs: float32[N, F] with
    ``coords`` int32[N, 3].
    """
    data = open_dataset(dataset_dir)
    ids = data.ids(None if split == "all" else split)[:n]
    out = []
    for building_id in ids:
        record = data.building(building_id)
        item = {"building_id": building_id, "occupancy": record.occupancy,
                "style": record.style if info["with_style"] else None, "labels": record.labels}
        if info["input_kind"] == "grid":
            channels, _ = encode_grid_example(record, info["with_style"], info["stride"])
            item["input"] = channels[None]
        else:
            coords, feats, _ = encode_cell_example(record, info["with_style"])
            item.update({"input": feats, "coords": coords})
        out.append(item)
    return out


@torch.no_grad()
def evaluate_run(run_dir, data_dir, split: str = "test", checkpoint: str = "best",
                 batch_size: int | None = None) -> dict:
    """Per-class precision/recall/F1, face accuracy and whole-building accuracy on a split."""
    model, info = load_run(run_dir, checkpoint)
    if info["task"] in SHAPE_TASKS:
        return evaluate_shape_run(model, info, run_dir, data_dir, split, batch_size)
    if info["task"] == "pix2pix":
        from .pix2pix import evaluate_pix2pix
        return {"task": "pix2pix", **evaluate_pix2pix(run_dir, data_dir, split, checkpoint)}
    config = info["config"]
    task = make_task(config, data_dir)
    task.check_compatible(info, f"the run in {run_dir}")
    dataset = task.dataset(split)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size or config["training"]["eval_batch_size"],
                                         shuffle=False, collate_fn=task.collate)
    evaluation = task.new_evaluation()
    for batch in loader:
        evaluation.update(model, batch)
    metrics = evaluation.metrics()
    grid_sizes = sorted({tuple(int(n) for n in r.occupancy.shape) for r in dataset.records})
    return {"run": str(run_dir), "checkpoint": info["checkpoint"], "epoch": info["epoch"],
            "family": info["family"], "with_style": info["with_style"],
            "data": str(data_dir), "split": split, "parts": info["parts"],
            "grid_sizes": [list(s) for s in grid_sizes],
            "trained_grid_size": info["dataset_manifest"]["grid_size"], **metrics}


def format_table(result: dict) -> str:
    """The evaluation as a fixed-width text table."""
    if result.get("task") in SHAPE_TASKS:
        return format_shape_table(result)
    if result.get("task") == "pix2pix":
        from .pix2pix import format_pix2pix_table
        return format_pix2pix_table(result)
    lines = [f"{result['family']} ({'style-aware' if result['with_style'] else 'massing only'}) "
             f"on {result['data']} [{result['split']}]: {result['buildings']} buildings, "
             f"{result['faces']} faces",
             f"{'part':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, c in result["per_class"].items():
        lines.append(f"{name:<12}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}{c['support']:>10d}")
    lines += [f"face accuracy      {result['face_accuracy']:.4f}",
              f"macro F1           {result['macro_f1']:.4f}",
              f"buildings all right {result['building_accuracy']:.4f}"]
    return "\n".join(lines)


__all__ = ["load_run", "example_inputs", "evaluate_run", "format_table", "resume_config",
           "checkpoint_path"]
