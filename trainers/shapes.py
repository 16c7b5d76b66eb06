"""Shape tasks: PointNet classification / segmentation and VoxNet classification.

Data comes from either source, chosen by ``dataset.source`` (``auto`` looks at the folder):

* ``buildings``: a dataset written by ``proc-ml generate`` — classes are the archetypes
  (``grids/*.npz`` 'archetype'), per-point parts come from ``points/*.npz``, voxel grids
  are the buildings' exterior surfaces voxelised like any mesh;
* ``folder``: a ModelNet-layout folder of meshes / clouds (``proc_ml.datasets.modelnet``);
  it has no ``val`` split, so ``val`` reads ``test``.

Every input is preprocessed by the numpy functions the runtime uses
(``proc_ml.datasets.pointclouds``); augmentations (rotation about z, scaling, jitter for
points; quarter turns about z for grids) draw from ``default_rng([seed, epoch, index])``,
so an epoch replays exactly on ``--resume``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from proc_ml.config import key_error, same_value
from proc_ml.datasets import open_dataset
from proc_ml.datasets.modelnet import ShapeFolder, ShapeSettings, is_shape_folder
from proc_ml.datasets.pointclouds import (NORMALIZE_FOR, Shape, normalize_for, point_feature_names,
                                          point_features, shape_occupancy)
from proc_ml.errors import ConfigError, DatasetError
from proc_ml.formats import MANIFEST
from proc_ml.meshing import quad_mesh
from proc_ml.metrics import classification_metrics, per_class_table
from proc_ml.runinfo import ShapeInfo
from proc_ml.units import resolve_cell_size

from .building_parts import inverse_sqrt_weights
from .models import build_model
from .task import Task, evaluate_split

SOURCES = ("auto", "buildings", "folder")
IGNORE = -1

#: Config sections/keys the shape tasks add to ``trainers.config.BASE_DEFAULTS``.
DATASET_DEFAULTS = {
    "source": "auto",          # auto | buildings (proc-ml generate) | folder (ModelNet layout)
    "num_points": 1024,        # points per shape (PointNet)
    "normals": True,           # feed unit normals after x, y, z
    "normalize": "unit_sphere",  # unit_sphere | cells (coordinates / cell size, buildings only)
    "resolution": 32,          # voxel grid side (VoxNet)
    "cache_dir": "",           # folder source: preprocessed-shape cache (default DATA/.proc_ml_cache)
    "sample_seed": 0,          # seed of the surface sampling of folder shapes
}
AUGMENT_DEFAULTS = {
    "rotate_z": True,          # random rotation about z (points: any angle; voxels: quarter turns)
    "scale": [0.8, 1.25],      # uniform scale range (points)
    "jitter": 0.01,            # gaussian jitter sigma, clipped at 5 sigma (points)
}
#: Keys only the point models read (voxnet ignores them), as ``section.key``.
POINT_ONLY = ("dataset.num_points", "dataset.normals", "dataset.normalize", "augment.scale",
              "augment.jitter")


def _refuse_changed(config: dict, source: str, keys, why: str) -> None:
    """Refuse a value other than the default for any of ``keys``: the task would ignore it."""
    defaults = {"dataset": DATASET_DEFAULTS, "augment": AUGMENT_DEFAULTS}
    for dotted in keys:
        section, key = dotted.split(".")
        if not same_value(config[section][key], defaults[section][key]):
            raise key_error(source, dotted, f"is {why}")


def task_defaults(best_metric: str, use_style: bool, normalize: str) -> dict:
    """The extra defaults of a shape task (merged over ``trainers.config.BASE_DEFAULTS``)."""
    return {"dataset": {"train_split": "train", "val_split": "val", "max_buildings": 0,
                        **DATASET_DEFAULTS, "use_style": use_style, "normalize": normalize},
            "augment": dict(AUGMENT_DEFAULTS),
            # True: the trained net's logits get -log(class weight) added for evaluation and
            # export (see ``logit_offset``); checkpoints keep the raw weights.
            "training": {"best_metric": best_metric, "logit_adjustment": False}}


def validate_shape_config(config: dict, source: str) -> None:
    data, aug = config["dataset"], config["augment"]

    def fail(key, why):
        return key_error(source, key, why)

    if config["training"].get("fit_decision"):
        raise fail("training.fit_decision", "is for building-parts models (shape models have no "
                                            "decision rule)")

    if data["source"] not in SOURCES:
        raise fail("dataset.source", f"must be one of {', '.join(SOURCES)}, got {data['source']!r}")
    if data["normalize"] not in NORMALIZE_FOR:
        raise fail("dataset.normalize", f"must be one of {', '.join(NORMALIZE_FOR)}, got {data['normalize']!r}")
    if data["num_points"] < 16:
        raise fail("dataset.num_points", f"must be >= 16, got {data['num_points']}")
    if not 12 <= data["resolution"] <= 128:
        raise fail("dataset.resolution", f"must be between 12 and 128, got {data['resolution']}")
    scale = aug["scale"]
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise fail("augment.scale", f"must be [low, high] with 0 < low <= high, got {scale}")
    if aug["jitter"] < 0:
        raise fail("augment.jitter", f"must be >= 0, got {aug['jitter']}")
    adjust = config["training"]["logit_adjustment"]
    if not isinstance(adjust, bool):
        raise fail("training.logit_adjustment", f"must be true or false, got {adjust!r}")
    if adjust and config["training"]["class_weighting"] == "none":
        raise fail("training.logit_adjustment", "needs training.class_weighting (it undoes the "
                                                "weights' shift of the decision boundaries)")


# -- augmentation (shared by point tasks; numpy, seeded per sample) ------------------------
def augment_points(points: np.ndarray, normals: np.ndarray | None, rng: np.random.Generator,
                   augment: dict):
    """Rotate about z, scale and jitter ``points`` (normals only rotate)."""
    if augment["rotate_z"]:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
        points = points @ rot.T
        normals = None if normals is None else normals @ rot.T
    low, high = augment["scale"]
    if high > low or low != 1.0:
        points = points * np.float32(rng.uniform(low, high))
    sigma = float(augment["jitter"])
    if sigma > 0:
        points = points + np.clip(rng.normal(0.0, sigma, points.shape), -5 * sigma, 5 * sigma)
    return points.astype(np.float32), None if normals is None else normals.astype(np.float32)


def augment_grid(grid: np.ndarray, rng: np.random.Generator, augment: dict) -> np.ndarray:
    if augment["rotate_z"]:
        grid = np.rot90(grid, int(rng.integers(4)), axes=(-3, -2))
    return np.ascontiguousarray(grid)


# -- building surfaces ----------------------------------------------------------------------
def building_surface_shape(occupancy: np.ndarray, cell_size: float) -> Shape:
    """The exterior faces of a voxel building as a triangle mesh (for voxelising)."""
    mesh = quad_mesh(occupancy, None, cell_size)
    return Shape("building", mesh.vertices, mesh.triangles)


# -- datasets ------------------------------------------------------------------------------
class ShapeExamplesDataset(Dataset):
    """Stored examples of one split; ``encode(stored, index, rng)`` makes the model input."""

    def __init__(self, stored: list[dict], encode, seed: int, train: bool):
        self.stored, self.encode = stored, encode
        self.seed, self.train, self.epoch = int(seed), train, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.stored)

    def __getitem__(self, index):
        key = [self.seed, self.epoch, index] if self.train else [self.seed, 0x5EED, index]
        return self.encode(self.stored[index], np.random.default_rng(key), self.train)


class ShapeEvaluation:
    """Confusion matrix (over shapes, or over points for segmentation) and summed loss."""

    def __init__(self, names, device=None, logit_offset=None):
        self.names = list(names)
        self.offset = None if logit_offset is None else torch.tensor(logit_offset, device=device)
        k = len(self.names)
        self.confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
        self.loss = torch.zeros(2, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, model, batch) -> None:
        k = len(self.names)
        logits = _class_last(model(batch["inputs"]).float(), batch["targets"])
        if self.offset is not None:
            logits = logits + self.offset
        targets = batch["targets"].reshape(-1)
        valid = targets != IGNORE
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum")
        self.loss += torch.stack([loss.double(), valid.sum().double()])
        predictions = logits.argmax(dim=1)
        self.confusion += torch.bincount(targets[valid] * k + predictions[valid], minlength=k * k)

    def state(self):
        return [self.confusion, self.loss]

    def load_state(self, tensors) -> None:
        self.confusion, self.loss = tensors

    def metrics(self) -> dict:
        k = len(self.names)
        confusion = self.confusion.cpu().numpy().reshape(k, k)
        return {**shape_metrics(confusion, self.names),
                "loss": float(self.loss[0]) / max(float(self.loss[1]), 1.0)}


def shape_metrics(confusion: np.ndarray, names) -> dict:
    """Accuracy, mean per-class accuracy, macro F1, mean IoU, per-class scores, confusion."""
    confusion = np.asarray(confusion, dtype=np.int64)
    scores = classification_metrics(confusion, names)
    true_pos = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    union = support + confusion.sum(axis=0) - true_pos
    present = support > 0
    iou = np.divide(true_pos, union, out=np.zeros(len(names)), where=union > 0)
    for name, value in zip(names, iou):
        scores["per_class"][name]["iou"] = float(value)
    recalls = [c["recall"] for c in scores["per_class"].values() if c["support"] > 0]
    flat = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "mean_class_accuracy": float(np.mean(recalls)) if recalls else 0.0,
            "miou": float(iou[present].mean()) if present.any() else 0.0}
    flat.update({f"iou_{n}": c["iou"] for n, c in scores["per_class"].items()})
    return {**flat, "samples": int(support.sum()), "per_class": scores["per_class"],
            "confusion": confusion.tolist()}


def _class_last(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logits as ``[M, K]`` rows matching ``targets.reshape(-1)``."""
    if logits.dim() == 3 and targets.dim() == 2:          # points: [B, N, K]
        return logits.reshape(-1, logits.shape[-1])
    if logits.dim() == 5:                                  # voxels: [B, K, X, Y, Z]
        return logits.movedim(1, -1).reshape(-1, logits.shape[1])
    return logits


# -- the tasks -----------------------------------------------------------------------------
class ShapeTask(Task):
    """Common data handling; subclasses say what a sample's input and target are."""
    info_type = ShapeInfo
    segmentation = False
    representation = "points"
    class_weights: torch.Tensor | None = None
    logit_offset: list[float] | None = None      # set with the class weights (training split)

    #: This task's defaults for training.best_metric, dataset.use_style, dataset.normalize.
    best_metric, use_style, normalize = "accuracy", False, "unit_sphere"

    @classmethod
    def defaults(cls) -> dict:
        return task_defaults(cls.best_metric, cls.use_style, cls.normalize)

    @classmethod
    def validate_config(cls, config: dict, source: str) -> None:
        validate_shape_config(config, source)

    def __init__(self, config: dict, data_dir):
        super().__init__(config, data_dir)
        self.family = config["model"]["family"]
        self.data_cfg, self.augment = config["dataset"], config["augment"]
        self.seed = int(config["training"]["seed"])
        self.hyper = {k: v for k, v in config["model"].items() if k != "family"}
        self.root = Path(data_dir)
        self.source = self._source()
        self.with_style = (bool(self.data_cfg["use_style"]) and self.source == "buildings"
                           and self.representation == "points")
        if self.data_cfg["normalize"] == "cells" and self.source != "buildings":
            raise ConfigError(f"config key 'dataset.normalize' is 'cells', which needs a generated "
                              f"buildings dataset; {self.root} is a shape folder (use unit_sphere)")
        if self.source == "buildings":
            self.buildings = open_dataset(self.root)
            self.cell_size = resolve_cell_size(None, manifest=self.buildings.cell_size)
            self.parts = (list(self.buildings.parts) if self.segmentation
                          else list(self.buildings.manifest["archetypes"]))
        else:
            if self.segmentation:
                raise DatasetError(f"{self.root}: a shape folder has class labels only; "
                                   f"{self.name} needs per-point parts (a generated dataset)")
            self.folder = ShapeFolder(self.root, ShapeSettings(
                self.representation, int(self.data_cfg["num_points"]),
                int(self.data_cfg["resolution"]), int(self.data_cfg["sample_seed"])),
                self.data_cfg["cache_dir"] or None)
            self.cell_size = None
            self.parts = list(self.folder.classes)

    def _source(self) -> str:
        source = self.data_cfg["source"]
        if source != "auto":
            return source
        if (self.root / MANIFEST).is_file():
            return "buildings"
        if is_shape_folder(self.root):
            return "folder"
        raise DatasetError(f"{self.root}: neither a proc-ml dataset ({MANIFEST}) nor a "
                           f"ModelNet-layout folder (CLASS/train/*.off)")

    # -- networks -------------------------------------------------------------------------
    def build_models(self):
        return {self.primary_model: build_model(self.family, **self.model_kwargs())}

    def training_step(self, models, batch):
        model = models[self.primary_model]
        logits = _class_last(model(batch["inputs"]), batch["targets"])
        targets = batch["targets"].reshape(-1)
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        loss = F.cross_entropy(logits.float(), targets, weight=weights, ignore_index=IGNORE)
        # a network's own regulariser (PointNet's feature transform), when it has one;
        # under DistributedDataParallel the network is the wrapper's .module
        regularisation = getattr(getattr(model, "module", model), "regularisation_loss", None)
        extra = regularisation() if regularisation is not None else None
        if extra is not None:
            loss = loss + extra.float()
        yield self.primary_model, loss
        with torch.no_grad():
            valid = targets != IGNORE
            hits = (logits.argmax(dim=1) == targets) & valid
            accuracy = hits.sum().float() / valid.sum().clamp(min=1)
        return {"accuracy": accuracy}

    # -- data -------------------------------------------------------------------------------
    def dataset(self, split: str, limit: int = 0):
        train = split == self.data_cfg["train_split"]
        stored = self.stored_examples(split, limit)
        if train:
            self._set_class_weights(stored)
        return ShapeExamplesDataset(stored, self.encode, self.seed, train)

    def _set_class_weights(self, stored: list[dict]) -> None:
        """Loss weights from the training split's label counts (training.class_weighting)."""
        if self.config["training"]["class_weighting"] == "none":
            return
        labels = np.concatenate([np.atleast_1d(s["parts"] if self.segmentation else s["label"])
                                 for s in stored]).astype(np.int64)
        counts = np.bincount(labels[labels >= 0], minlength=len(self.parts))
        self.class_weights = torch.from_numpy(inverse_sqrt_weights(counts))
        if self.config["training"]["logit_adjustment"]:
            # A loss weighted by w_c trains logits shifted by about log w_c; adding -log w_c
            # back makes the argmax the unweighted (accuracy-optimal) decision again, while the
            # features keep what the weighting taught them about the rare parts (logit
            # adjustment, Menon et al. 2021).
            self.logit_offset = [-math.log(float(w)) for w in self.class_weights]

    def stored_examples(self, split: str, limit: int = 0) -> list[dict]:
        if self.source == "folder":
            loaded = self.folder.load("test" if split == "val" else split, limit)
            return [{**arrays, "label": label, "path": path}
                    for arrays, label, path in zip(loaded.arrays, loaded.labels, loaded.paths)]
        ids = self.buildings.ids(None if split == "all" else split)
        ids = ids[:limit] if limit else ids
        if not ids:
            raise DatasetError(f"{self.root}: split '{split}' holds no buildings")
        return [self.building_example(i) for i in ids]

    def building_example(self, building_id: int) -> dict:
        raise NotImplementedError

    def collate(self, examples):
        inputs = torch.from_numpy(np.stack([x for x, _ in examples]))
        targets = torch.from_numpy(np.stack([np.asarray(t, dtype=np.int64) for _, t in examples]))
        return {"inputs": inputs, "targets": targets}

    def to_device(self, batch, device):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def new_evaluation(self, device=None):
        return ShapeEvaluation(self.parts, device, self.logit_offset)

    def label_names(self) -> list[str]:
        return list(self.parts)

    # -- run description ------------------------------------------------------------------
    def info(self) -> ShapeInfo:
        info = ShapeInfo(task=self.name, family=self.family, input_kind=self.representation,
                         input_names=self.input_names(), classes=list(self.parts),
                         output="points" if self.segmentation else "shape",
                         with_style=self.with_style, normalize=self.data_cfg["normalize"],
                         cell_size=self.cell_size, num_points=int(self.data_cfg["num_points"]),
                         resolution=int(self.data_cfg["resolution"]), source=self.source,
                         data_dir=str(self.root.resolve()), logit_offset=self.logit_offset)
        if self.source == "buildings":
            manifest = self.buildings.manifest
            info.dataset_count = int(manifest["count"])
            info.dataset_seed = int(manifest.get("seed", 0))
            info.dataset_format_version = int(manifest["format_version"])
        return info

    def check_compatible(self, info: ShapeInfo, what: str) -> None:
        if list(info.classes) != list(self.parts):
            raise DatasetError(f"{self.root}: labels {self.parts} differ from the labels "
                               f"{list(info.classes)} of {what}")

    # -- finished runs --------------------------------------------------------------------
    @classmethod
    def evaluate(cls, model, run, data_dir, split: str = "test", batch_size: int | None = None) -> dict:
        """Accuracy, mean per-class accuracy, mIoU, per-class scores and the confusion
        matrix (``load_run`` folded any logit offset into the model)."""
        task = cls(run.config, data_dir)
        task.check_compatible(run.info, f"the run in {run.path}")
        metrics, dataset = evaluate_split(task, model, split, batch_size,
                                          evaluation=ShapeEvaluation(task.parts))
        return {**run.result_header(data_dir, split), "source": task.source,
                "classes": list(task.parts),
                "shapes": len(dataset), **metrics}

    @staticmethod
    def format_table(result: dict) -> str:
        unit = "points" if result["task"] == "pointnet-seg" else "shapes"
        lines = [f"{result['family']} on {result['data']} [{result['split']}]: "
                 f"{result['shapes']} shapes, {result['samples']} {unit} scored"]
        lines += per_class_table(result["per_class"], "class", ("precision", "recall", "f1", "iou"))
        lines += [f"accuracy             {result['accuracy']:.4f}",
                  f"mean class accuracy  {result['mean_class_accuracy']:.4f}",
                  f"mean IoU             {result['miou']:.4f}",
                  "confusion (rows: true, columns: predicted, order as above):"]
        lines += ["  " + " ".join(f"{v:>5d}" for v in row) for row in result["confusion"]]
        return "\n".join(lines)

    @classmethod
    def parity_inputs(cls, run, data_dir=None, n: int = 3) -> list[tuple[str, np.ndarray]]:
        """``n`` real held-out samples as one batch, a single sample, and (point nets) the
        same shapes at two other point counts."""
        data_dir = data_dir or run.info.data_dir
        if not data_dir or not Path(data_dir).exists():
            raise DatasetError(f"the run's data {data_dir} is gone; pass --data with the dataset or "
                               f"shape folder it was trained on for the parity check")
        task = cls(run.config, data_dir)
        split = "test" if task.source == "folder" else run.config["dataset"]["val_split"]
        examples = task.dataset(split, limit=max(n, 2))
        batch = np.stack([examples[i][0] for i in range(len(examples))])
        samples = [(f"{len(batch)} {split} samples", batch), ("one sample", batch[:1])]
        if run.info.input_kind == "points":
            base = int(run.config["dataset"]["num_points"])
            for count in (base // 2 + 37, 2 * base):
                task.data_cfg = {**task.data_cfg, "num_points": count}
                resampled = np.stack([examples[i][0] for i in range(len(examples))])
                samples.append((f"{len(resampled)} samples of {count} points", resampled))
        return samples


class _PointTask(ShapeTask):
    representation = "points"

    @classmethod
    def validate_config(cls, config: dict, source: str) -> None:
        super().validate_config(config, source)
        _refuse_changed(config, source, ("dataset.resolution",),
                        "for voxnet; point models read dataset.num_points points")

    def input_names(self) -> list[str]:
        return point_feature_names(bool(self.data_cfg["normals"]), self.with_style)

    def model_kwargs(self) -> dict:
        return {"in_features": len(self.input_names()), "n_classes": len(self.parts), **self.hyper}

    def _read_points(self, building_id: int):
        path = self.root / "points" / f"b{building_id:06d}.npz"
        if not path.is_file():
            raise DatasetError(f"{path}: missing point file (generate the dataset with --formats "
                               f"including points)")
        from proc_ml.datasets import read_point_cloud
        return read_point_cloud(path)

    def encode(self, stored: dict, rng: np.random.Generator, train: bool):
        n = int(self.data_cfg["num_points"])
        count = len(stored["points"])
        pick = rng.choice(count, n, replace=False) if count >= n else rng.integers(0, count, n)
        points = normalize_for(stored["points"][pick], self.data_cfg["normalize"], self.cell_size)
        normals = stored["normals"][pick] if self.data_cfg["normals"] else None
        if train:
            points, normals = augment_points(points, normals, rng, self.augment)
        features = point_features(points, normals, stored.get("style") if self.with_style else None)
        target = stored["parts"][pick] if self.segmentation else stored["label"]
        return features, target


class PointNetClassificationTask(_PointTask):
    name = "pointnet-cls"
    families = ("pointnet-cls",)
    default_config = "pointnet_cls.yaml"
    metric_names = ("accuracy", "mean_class_accuracy", "macro_f1", "loss")

    def building_example(self, building_id: int) -> dict:
        points, normals, _ = self._read_points(building_id)
        record = self.buildings.building(building_id)
        return {"points": points, "normals": normals, "label": self.parts.index(record.archetype),
                "style": record.style}


class PointNetSegmentationTask(_PointTask):
    name = "pointnet-seg"
    # DGCNN by default (dgcnn_seg.yaml); pointnet_seg.yaml is the PointNet baseline.
    families = ("pointnet-seg", "dgcnn-seg")
    default_config = "dgcnn_seg.yaml"
    best_metric, use_style, normalize = "miou", True, "cells"
    segmentation = True
    metric_names = ("miou", "accuracy", "mean_class_accuracy", "macro_f1", "loss")

    def building_example(self, building_id: int) -> dict:
        points, normals, parts = self._read_points(building_id)
        style = self.buildings.building(building_id).style
        return {"points": points, "normals": normals, "parts": parts.astype(np.int64),
                "style": style}


class VoxNetTask(ShapeTask):
    name = "voxnet"
    families = ("voxnet",)
    default_config = "voxnet.yaml"
    representation = "voxels"
    metric_names = ("accuracy", "mean_class_accuracy", "macro_f1", "loss")

    @classmethod
    def validate_config(cls, config: dict, source: str) -> None:
        super().validate_config(config, source)
        if config["dataset"]["use_style"]:
            raise key_error(source, "dataset.use_style",
                            "must be false for voxnet: its input is the occupancy grid alone")
        _refuse_changed(config, source, POINT_ONLY, "for the point models; voxnet reads a "
                                                    "voxel grid (dataset.resolution)")

    def input_names(self) -> list[str]:
        return ["occupancy"]

    def model_kwargs(self) -> dict:
        return {"n_classes": len(self.parts), "resolution": int(self.data_cfg["resolution"]),
                **self.hyper}

    def building_example(self, building_id: int) -> dict:
        record = self.buildings.building(building_id)
        surface = building_surface_shape(record.occupancy, self.cell_size)
        return {"occupancy": shape_occupancy(surface, int(self.data_cfg["resolution"])),
                "label": self.parts.index(record.archetype)}

    def encode(self, stored: dict, rng: np.random.Generator, train: bool):
        grid = stored["occupancy"]
        if train:
            grid = augment_grid(grid, rng, self.augment)
        return grid[None].astype(np.float32), stored["label"]
