"""Building-parts task: predict a part for every exterior face of a voxel building.

Two families share it: ``parts-unet3d`` reads whole grids (``encoding.grid_channels``),
``parts-mlp`` reads one row per occupied cell (``encoding.adjacency_features``). Both
output six softmax groups (one per face direction) over the vocabulary, and both are
scored only on faces that exist (``encoding.face_mask``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from proc_ml.datasets import open_dataset
from proc_ml.encoding import (adjacency_feature_names, adjacency_features, face_mask,
                              grid_channel_names, grid_channels, pad_to_stride)
from proc_ml.errors import DatasetError
from proc_ml.grid import DIRECTIONS, NO_PART
from .models import build_model

from .metrics import classification_metrics
from .task import Task

GRID_FAMILIES = ("parts-unet3d",)
CELL_FAMILIES = ("parts-mlp",)


# -- encoding one building (shared by training, evaluation and example_inputs) ----------
def encode_grid_example(record, with_style: bool, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """``(float32[C, X', Y', Z'], int64[6, X', Y', Z'])``: channels and face targets
    (-1 where no face exists), padded with empty cells to a multiple of ``stride``."""
    channels = grid_channels(record.occupancy, record.style if with_style else None)
    targets = np.where(face_mask(record.occupancy), record.labels, NO_PART).astype(np.int64)
    targets = pad_to_stride(targets.transpose(3, 0, 1, 2) + 1, stride) - 1
    return pad_to_stride(channels, stride), targets


def encode_cell_example(record, with_style: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coords int32[N, 3], float32[N, F], int64[N, 6])`` per occupied cell."""
    coords, feats = adjacency_features(record.occupancy, record.style if with_style else None)
    x, y, z = coords.T
    targets = np.where(face_mask(record.occupancy)[x, y, z], record.labels[x, y, z], NO_PART)
    return coords, feats, targets.astype(np.int64)


# -- loss and predictions over the (direction, part) logit layout -----------------------
def _split_directions(logits: torch.Tensor, n_parts: int) -> torch.Tensor:
    """``[B, 6K, *rest]`` -> ``[B, K, 6, *rest]`` (classes on dim 1, as cross_entropy wants)."""
    return logits.reshape(logits.shape[0], 6, n_parts, *logits.shape[2:]).transpose(1, 2)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, n_parts: int,
                         reduction: str = "mean", weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over existing faces only (targets -1 elsewhere), optionally class-weighted."""
    if not bool((targets >= 0).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(_split_directions(logits, n_parts).float(), targets, weight=weight,
                           ignore_index=NO_PART, reduction=reduction)


def inverse_sqrt_weights(counts: np.ndarray) -> np.ndarray:
    """Class weights ~ 1/sqrt(frequency), scaled so the average face weighs 1."""
    counts = np.asarray(counts, dtype=np.float64)
    freq = counts / max(counts.sum(), 1.0)
    weights = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
    weights[freq == 0] = weights.max(initial=1.0)
    return (weights / max(float((freq * weights).sum()), 1e-12)).astype(np.float32)


def predict_parts(logits: torch.Tensor, n_parts: int) -> torch.Tensor:
    """Most likely part per face, shaped like the targets."""
    return _split_directions(logits, n_parts).argmax(dim=1)


class _Buildings(Dataset):
    """Buildings of one split, loaded once; each item is encoded on access."""

    def __init__(self, records, encode):
        self.records, self.encode = records, encode

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return self.encode(self.records[index])


class PartsEvaluation:
    """Confusion matrix, loss and whole-building correctness over existing faces."""

    def __init__(self, parts, device=None):
        self.parts = list(parts)
        k = len(self.parts)
        self.confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
        self.counts = torch.zeros(2, dtype=torch.int64, device=device)     # buildings, exact
        self.loss = torch.zeros(2, dtype=torch.float64, device=device)     # sum, faces

    @torch.no_grad()
    def update(self, model, batch) -> None:
        k = len(self.parts)
        logits = model(batch["inputs"]).float()
        targets = batch["targets"]
        valid = targets >= 0
        predictions = predict_parts(logits, k)
        self.loss += torch.stack([masked_cross_entropy(logits, targets, k, "sum").double(),
                                  valid.sum().double()])
        self.confusion += torch.bincount((targets[valid] * k + predictions[valid]).reshape(-1),
                                         minlength=k * k)
        wrong = ((predictions != targets) & valid).reshape(targets.shape[0], -1).any(dim=1)
        buildings = batch["building"]
        wrong_per_building = torch.zeros(batch["count"], device=wrong.device).index_add_(
            0, buildings, wrong.float())
        n_wrong = int((wrong_per_building > 0).sum())
        self.counts += torch.tensor([batch["count"], batch["count"] - n_wrong], device=self.counts.device)

    def state(self) -> list[torch.Tensor]:
        return [self.confusion, self.counts, self.loss]

    def load_state(self, tensors) -> None:
        self.confusion, self.counts, self.loss = tensors

    def metrics(self) -> dict:
        k = len(self.parts)
        confusion = self.confusion.cpu().numpy().reshape(k, k)
        scores = classification_metrics(confusion, self.parts)
        buildings, exact = (int(v) for v in self.counts.cpu())
        loss_sum, faces = (float(v) for v in self.loss.cpu())
        flat = {"loss": loss_sum / faces if faces else 0.0,
                "face_accuracy": scores["accuracy"],
                "macro_f1": scores["macro_f1"],
                "building_accuracy": exact / buildings if buildings else 0.0}
        flat.update({f"f1_{name}": c["f1"] for name, c in scores["per_class"].items()})
        return {**flat, "buildings": buildings, "faces": int(faces),
                "per_class": scores["per_class"], "confusion": confusion.tolist()}


class BuildingPartsTask(Task):
    name = "building-parts"
    metric_names = ("face_accuracy", "macro_f1", "building_accuracy", "loss")

    def __init__(self, config: dict, data_dir):
        super().__init__(config)
        self.data = open_dataset(data_dir)
        self.family = config["model"]["family"]
        self.with_style = bool(config["dataset"]["use_style"])
        self.parts = list(self.data.parts)
        self.n_parts = len(self.parts)
        self.hyper = {k: v for k, v in config["model"].items() if k != "family"}
        self.class_weights: torch.Tensor | None = None
        if self.family in GRID_FAMILIES:
            self.input_kind = "grid"
            self.input_names = list(grid_channel_names(self.with_style))
            self.stride = 2 ** int(self.hyper["depth"])
        elif self.family in CELL_FAMILIES:
            self.input_kind = "cells"
            self.input_names = list(adjacency_feature_names(self.with_style))
            self.stride = None
        else:
            raise DatasetError(f"model family '{self.family}' does not train building parts")

    # -- networks -------------------------------------------------------------------
    def model_kwargs(self) -> dict:
        sizes = ({"in_channels": len(self.input_names)} if self.input_kind == "grid"
                 else {"in_features": len(self.input_names)})
        return {**sizes, "n_parts": self.n_parts, **self.hyper}

    def build_models(self):
        return {self.primary_model: build_model(self.family, **self.model_kwargs())}

    def training_step(self, models, batch):
        logits = models[self.primary_model](batch["inputs"])
        weight = None
        if self.class_weights is not None:
            weight = self.class_weights.to(logits.device)
        loss = masked_cross_entropy(logits, batch["targets"], self.n_parts, weight=weight)
        yield self.primary_model, loss
        with torch.no_grad():
            valid = batch["targets"] >= 0
            hits = (predict_parts(logits.detach(), self.n_parts) == batch["targets"]) & valid
            accuracy = hits.sum().float() / valid.sum().clamp(min=1)
        return {"face_accuracy": accuracy}

    # -- data -----------------------------------------------------------------------
    def split_ids(self, split: str, limit: int = 0) -> list[int]:
        ids = self.data.ids(None if split == "all" else split)
        return ids[:limit] if limit else ids

    def dataset(self, split: str, limit: int = 0):
        records = [self.data.building(i) for i in self.split_ids(split, limit)]
        if not records:
            raise DatasetError(f"{self.data.root}: split '{split}' holds no buildings")
        if split == self.config["dataset"]["train_split"]:
            self._set_class_weights(records)
        return _Buildings(records, self.encode)

    def _set_class_weights(self, records) -> None:
        """Loss weights from the training split's part counts (training.class_weighting)."""
        if self.config["training"]["class_weighting"] == "none":
            return
        counts = np.zeros(self.n_parts, dtype=np.int64)
        for record in records:
            faces = record.labels[face_mask(record.occupancy)]
            counts += np.bincount(faces.astype(np.int64), minlength=self.n_parts)
        self.class_weights = torch.from_numpy(inverse_sqrt_weights(counts))

    def encode(self, record):
        if self.input_kind == "grid":
            return encode_grid_example(record, self.with_style, self.stride)
        return encode_cell_example(record, self.with_style)[1:]

    def collate(self, examples):
        if self.input_kind == "grid":
            return _collate_grids(examples)
        feats = torch.from_numpy(np.concatenate([f for f, _ in examples]))
        targets = torch.from_numpy(np.concatenate([t for _, t in examples]))
        building = torch.cat([torch.full((len(f),), i, dtype=torch.int64)
                              for i, (f, _) in enumerate(examples)])
        return {"inputs": feats, "targets": targets, "building": building, "count": len(examples)}

    def to_device(self, batch, device):
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def new_evaluation(self, device=None):
        return PartsEvaluation(self.parts, device)

    # -- run description ------------------------------------------------------------
    def info(self) -> dict:
        manifest = self.data.manifest
        return {
            "task": self.name,
            "family": self.family,
            "parts": list(self.parts),
            "directions": list(DIRECTIONS),
            "input_kind": self.input_kind,
            "input_names": list(self.input_names),
            "with_style": self.with_style,
            "stride": self.stride,
            "output": "logits[6*K] per cell, index direction*K + part",
            "dataset_manifest": {"grid_size": list(manifest["grid_size"]),
                                 "cell_size": float(manifest.get("cell_size", 1.0)),
                                 "count": int(manifest["count"]),
                                 "seed": int(manifest.get("seed", 0)),
                                 "format_version": int(manifest["format_version"])},
        }

    def check_compatible(self, info: dict, what: str) -> None:
        """Refuse a dataset whose vocabulary differs from the one ``what`` was trained on."""
        if list(info["parts"]) != self.parts:
            raise DatasetError(f"{self.data.root}: dataset parts {self.parts} differ from the parts "
                               f"{list(info['parts'])} of {what}; use a dataset generated with the same parts")


def _collate_grids(examples):
    shape = tuple(max(x.shape[axis] for x, _ in examples) for axis in (1, 2, 3))
    inputs = torch.zeros((len(examples), examples[0][0].shape[0]) + shape)
    targets = torch.full((len(examples), 6) + shape, NO_PART, dtype=torch.int64)
    for i, (x, t) in enumerate(examples):
        inputs[i, :, :x.shape[1], :x.shape[2], :x.shape[3]] = torch.from_numpy(x)
        targets[i, :, :t.shape[1], :t.shape[2], :t.shape[3]] = torch.from_numpy(t)
    return {"inputs": inputs, "targets": targets, "building": torch.arange(len(examples)),
            "count": len(examples)}
