"""Building-parts task: predict a part for every exterior face of a voxel building.

Two families share it: ``parts-unet3d`` reads whole grids (``encoding.grid_channels``),
``parts-mlp`` reads one row per occupied cell (``encoding.adjacency_features``). Both
output six softmax groups (one per face direction) over the vocabulary, and both are
scored only on faces that exist (``encoding.face_mask``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from proc_ml.datasets import open_dataset
from proc_ml.encoding import (GRID_INPUT_SETS, adjacency_feature_names,
                              adjacency_features, entrance_candidates, face_mask, grid_inputs,
                              pad_to_stride, style_street_sides)
from proc_ml.errors import ConfigError, DatasetError
from proc_ml.formats.grid_npz import BuildingRecord
from proc_ml.grid import NO_PART
from proc_ml.metrics import (ECE_BINS, classification_metrics, confusion_matrix,
                             expected_calibration_error, per_class_table)
from proc_ml.runinfo import PartsInfo
from proc_ml.symmetry import SYMMETRIES, axis_bound_inputs, turn, turn_faces, turn_side_vector

from .finetune import (SURVEY_BUILDINGS, fine_tuned_inputs, freeze_norm, init_record,
                       input_mapping, load_init,
                       load_into, mapping_lines, parent_counts, survey, vocabulary_mapping,
                       write_record)
from .models import build_model
from .task import Task, evaluate_split

GRID_FAMILIES = ("parts-unet3d",)
CELL_FAMILIES = ("parts-mlp",)


# -- encoding one building (shared by training, evaluation and example_inputs) ----------
def input_set(dataset_cfg: dict) -> str:
    """``dataset.inputs`` of a config (``None``: ``style`` or ``massing`` by ``use_style``)."""
    inputs = dataset_cfg.get("inputs")
    if inputs is None:
        return "style" if dataset_cfg["use_style"] else "massing"
    return inputs


def record_street(record) -> tuple[str, ...]:
    """The sides facing the street: the grid's ``street`` array, else the style's street."""
    sides = record.street_sides
    return sides if sides is not None else style_street_sides(record.style)


def encode_grid_example(record, names, stride: int, street=None) -> tuple[np.ndarray, np.ndarray]:
    """``(float32[C, X', Y', Z'], int64[6, X', Y', Z'])``: channels ``names`` and face
    targets (-1 where no face exists), padded with empty cells to a multiple of ``stride``.
    ``street`` overrides the record's street sides (street dropout)."""
    channels = grid_inputs(names, record.occupancy, record.style,
                           record_street(record) if street is None else street,
                           record.extras.get("neighbours"))
    targets = np.where(face_mask(record.occupancy), record.labels, NO_PART).astype(np.int64)
    targets = pad_to_stride(targets.transpose(3, 0, 1, 2) + 1, stride) - 1
    return pad_to_stride(channels, stride), targets


def _face_weight_table(record, fix_weight: float, unfixed_weight: float,
                       unknown_weight: float) -> np.ndarray | None:
    """``float32[X, Y, Z, 6]`` loss weights of a grid's faces, or None when every face
    weighs 1: ``fix_weight`` on the faces an artist corrected (``label_fixed``),
    ``unfixed_weight`` on the other faces of a grid with corrections (labels the artist left
    as they were: often the model's own guesses), and those weights times ``unknown_weight``
    on faces whose label the source does not support (``label_known`` false: the sides of a
    real building the street scan never saw, labelled wall by the import; a corrected face
    is known)."""
    fixed = record.extras.get("label_fixed")
    known = record.extras.get("label_known")
    has_fix = fixed is not None and bool(fixed.any())
    has_unknown = known is not None and unknown_weight != 1.0 and not bool(known.all())
    if not has_fix and not has_unknown:
        return None
    weights = np.ones(record.occupancy.shape + (6,), np.float32)
    if has_fix:
        weights = np.where(fixed, np.float32(fix_weight), np.float32(unfixed_weight))
    if has_unknown:
        unknown = ~known if fixed is None else ~known & ~fixed
        weights = np.where(unknown, weights * np.float32(unknown_weight), weights)
    return weights.astype(np.float32)


def face_weights(record, stride: int, fix_weight: float, unfixed_weight: float = 1.0,
                 unknown_weight: float = 1.0) -> np.ndarray | None:
    """``float32[6, X', Y', Z']``: the face loss weights of :func:`_face_weight_table`
    (corrected faces, the other faces of a corrected grid, faces of unknown label); None
    when every face weighs 1."""
    weights = _face_weight_table(record, fix_weight, unfixed_weight, unknown_weight)
    return None if weights is None else pad_to_stride(weights.transpose(3, 0, 1, 2), stride)


def cell_face_weights(record, coords: np.ndarray, fix_weight: float,
                      unfixed_weight: float = 1.0, unknown_weight: float = 1.0) -> np.ndarray | None:
    """``float32[N, 6]``: :func:`face_weights` for the cells ``coords`` (the per-cell
    MLP's rows); None when every face weighs 1."""
    weights = _face_weight_table(record, fix_weight, unfixed_weight, unknown_weight)
    if weights is None:
        return None
    x, y, z = np.asarray(coords).T
    return weights[x, y, z]


# -- symmetry augmentation (dataset.symmetry: the transforms of proc_ml.symmetry) ----------
def transform_record(record: BuildingRecord, quarter_turns: int, mirror: bool = False) -> BuildingRecord:
    """The same building turned ``quarter_turns`` times about z (after mirroring in x when
    ``mirror``): occupancy, face labels and every per-cell or per-face extra move with it, the
    face directions and the street sides are permuted to match."""
    quarter_turns %= 4
    if not quarter_turns and not mirror:
        return record
    extras = dict(record.extras)
    for key in ("label_known", "label_fixed"):
        if key in extras:
            extras[key] = turn_faces(extras[key], quarter_turns, mirror)
    if "neighbours" in extras:
        extras["neighbours"] = turn(extras["neighbours"], quarter_turns, mirror)
    if "street" in extras:
        extras["street"] = turn_side_vector(extras["street"], quarter_turns, mirror)
    style = record.style.copy()               # the style's street sides (STYLE_FEATURES[:4])
    style[:4] = turn_side_vector(record.style[:4], quarter_turns, mirror)
    return BuildingRecord(record.building_id, record.archetype,
                          turn(record.occupancy, quarter_turns, mirror),
                          None if record.labels is None else turn_faces(record.labels, quarter_turns, mirror),
                          style, extras)


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
                         reduction: str = "mean", weight: torch.Tensor | None = None,
                         face_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over existing faces only (targets -1 elsewhere), optionally
    class-weighted (``weight``, per part) and face-weighted (``face_weight``, shaped like
    the targets: corrected faces weigh ``training.fix_weight``). The mean divides by the
    summed weights, as ``F.cross_entropy`` does with class weights."""
    if not bool((targets >= 0).any()):
        return logits.sum() * 0.0
    split = _split_directions(logits, n_parts).float()
    if face_weight is None:
        return F.cross_entropy(split, targets, weight=weight, ignore_index=NO_PART,
                               reduction=reduction)
    per_face = F.cross_entropy(split, targets, ignore_index=NO_PART, reduction="none")
    total = face_weight.float() * (targets >= 0)
    if weight is not None:
        total = total * weight.float()[targets.clamp(min=0)]
    if reduction == "sum":
        return (per_face * total).sum()
    return (per_face * total).sum() / total.sum().clamp(min=1e-12)


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


def face_logits(logits: torch.Tensor, targets: torch.Tensor, n_parts: int):
    """``(logits [F, K], targets [F], sample [F])`` of the existing faces only (targets >= 0),
    ``sample`` the batch row of each. Scores need nothing else: a building's faces are a few
    percent of its grid's (direction, cell) slots, and the argmax over all of them was a
    tenth of a fine-tuning run's time."""
    valid = targets >= 0
    return (_split_directions(logits, n_parts).movedim(1, -1)[valid], targets[valid],
            valid.nonzero(as_tuple=True)[0])


class _Buildings(Dataset):
    """Buildings of one split, loaded once; each item is encoded on access. On the training
    split, ``augment`` (street dropout) and ``symmetry`` (``dataset.symmetry``: each building
    turned, and mirrored) draw from ``(seed, epoch, index)``, so a run replays exactly,
    resumed or not, whatever the number of workers."""

    def __init__(self, records, encode, augment: bool = False, symmetry: str = "none",
                 seed: int = 0):
        self.records, self.encode, self.augment = records, encode, augment
        self.symmetry, self.seed, self.epoch = symmetry, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        record = self.records[index]
        if not self.augment and self.symmetry == "none":
            return self.encode(record)
        rng = np.random.default_rng([self.seed, 11, self.epoch, int(index)])
        if self.symmetry != "none":
            turns = int(rng.integers(4))
            mirror = self.symmetry == "dihedral" and bool(rng.integers(2))
            record = transform_record(record, turns, mirror)
        return self.encode(record, rng=rng if self.augment else None)


class PartsEvaluation:
    """Confusion matrix, loss and whole-building correctness over existing faces."""

    def __init__(self, parts, device=None):
        self.parts = list(parts)
        k = len(self.parts)
        self.confusion = torch.zeros(k * k, dtype=torch.int64, device=device)
        self.counts = torch.zeros(2, dtype=torch.int64, device=device)     # buildings, exact
        self.loss = torch.zeros(2, dtype=torch.float64, device=device)     # sum, faces
        self.calibration = torch.zeros(3, ECE_BINS, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, model, batch) -> None:
        k = len(self.parts)
        logits = model(batch["inputs"]).float()
        targets = batch["targets"]
        faces, face_targets, sample = face_logits(logits, targets, k)
        predictions = faces.argmax(dim=1)
        confidence = torch.softmax(faces, dim=1).amax(dim=1).double()
        correct = (predictions == face_targets).double()
        index = (confidence * ECE_BINS).long().clamp(0, ECE_BINS - 1)
        self.calibration += torch.stack([
            torch.bincount(index, minlength=ECE_BINS).double(),
            torch.bincount(index, weights=confidence, minlength=ECE_BINS),
            torch.bincount(index, weights=correct, minlength=ECE_BINS)])
        self.loss += torch.stack([masked_cross_entropy(logits, targets, k, "sum").double(),
                                  torch.tensor(float(len(face_targets)), dtype=torch.float64,
                                               device=logits.device)])
        self.confusion += torch.bincount(face_targets * k + predictions, minlength=k * k)
        wrong = torch.zeros(targets.shape[0], device=logits.device).index_add_(
            0, sample, (predictions != face_targets).float()) > 0
        buildings = batch["building"]
        wrong_per_building = torch.zeros(batch["count"], device=wrong.device).index_add_(
            0, buildings, wrong.float())
        n_wrong = int((wrong_per_building > 0).sum())
        self.counts += torch.tensor([batch["count"], batch["count"] - n_wrong], device=self.counts.device)

    def state(self) -> list[torch.Tensor]:
        return [self.confusion, self.counts, self.loss, self.calibration]

    def load_state(self, tensors) -> None:
        self.confusion, self.counts, self.loss, self.calibration = tensors

    def metrics(self) -> dict:
        k = len(self.parts)
        confusion = self.confusion.cpu().numpy().reshape(k, k)
        scores = classification_metrics(confusion, self.parts)
        buildings, exact = (int(v) for v in self.counts.cpu())
        loss_sum, faces = (float(v) for v in self.loss.cpu())
        flat = {"loss": loss_sum / faces if faces else 0.0,
                "face_accuracy": scores["accuracy"],
                "macro_f1": scores["macro_f1"],
                "building_accuracy": exact / buildings if buildings else 0.0,
                "ece": expected_calibration_error(self.calibration.cpu().numpy().T)}
        flat.update({f"f1_{name}": c["f1"] for name, c in scores["per_class"].items()})
        return {**flat, "buildings": buildings, "faces": int(faces),
                "per_class": scores["per_class"], "confusion": confusion.tolist()}


class BuildingPartsTask(Task):
    name = "building-parts"
    families = GRID_FAMILIES + CELL_FAMILIES
    default_config = "parts_unet3d_street.yaml"
    info_type = PartsInfo
    metric_names = ("face_accuracy", "macro_f1", "building_accuracy", "loss")

    @classmethod
    def defaults(cls) -> dict:
        return {"training": {
            "init": "",            # fine-tune from a run, .pt, .onnx or 'default' (trainers.finetune)
            "freeze_norm": False,  # with init: keep the source's BatchNorm statistics
            "fix_weight": 4.0,     # loss weight of faces an artist corrected (label_fixed)
            "unfixed_weight": 1.0,  # loss weight of the other faces of a grid with corrections
            "unknown_weight": 1.0,  # loss weight factor of faces label_known marks unknown
        }}

    @classmethod
    def validate_config(cls, config: dict, source: str) -> None:
        from proc_ml.config import key_error

        weight = config["training"]["fix_weight"]
        if not 1.0 <= weight <= 1000.0:
            raise key_error(source, "training.fix_weight", f"must be between 1 and 1000, got {weight!r}")
        unfixed = config["training"]["unfixed_weight"]
        if not 0.0 <= unfixed <= 1000.0:
            raise key_error(source, "training.unfixed_weight",
                            f"must be between 0 and 1000, got {unfixed!r}")
        unknown = config["training"]["unknown_weight"]
        if not 0.0 <= unknown <= 1.0:
            raise key_error(source, "training.unknown_weight",
                            f"must be between 0 and 1, got {unknown!r}")
        symmetry = config["dataset"].get("symmetry", "none")
        if symmetry not in SYMMETRIES:
            raise key_error(source, "dataset.symmetry",
                            f"must be one of {', '.join(SYMMETRIES)}, got {symmetry!r}")
        if config["training"]["init"] and config["model"]["family"] not in GRID_FAMILIES + CELL_FAMILIES:
            raise key_error(source, "training.init", "needs a building-parts family")

    def __init__(self, config: dict, data_dir):
        super().__init__(config, data_dir)
        self.data = open_dataset(data_dir)
        self.init = None
        self._init_record: dict | None = None    # RUN/init.json, due with the first checkpoint
        self.family = config["model"]["family"]
        self.inputs = input_set(config["dataset"])
        if self.inputs not in GRID_INPUT_SETS:
            raise DatasetError(f"dataset.inputs: '{self.inputs}' is not one of "
                               f"{', '.join(GRID_INPUT_SETS)}")
        self.with_style = self.inputs == "style"
        self.with_street = self.inputs.startswith("street")
        self.street_dropout = float(config["dataset"].get("street_dropout", 0.0))
        self.parts = list(self.data.parts)
        self.n_parts = len(self.parts)
        self.hyper = {k: v for k, v in config["model"].items() if k != "family"}
        self.class_weights: torch.Tensor | None = None
        if self.family in GRID_FAMILIES:
            self.input_kind = "grid"
            self.input_names = list(GRID_INPUT_SETS[self.inputs])
            self.stride = 2 ** int(self.hyper["depth"])
        elif self.family in CELL_FAMILIES:
            if self.inputs not in ("style", "massing"):
                raise DatasetError(f"dataset.inputs: {self.family} reads per-cell features "
                                   f"(style or massing); '{self.inputs}' needs a grid family "
                                   f"({', '.join(GRID_FAMILIES)})")
            self.input_kind = "cells"
            self.input_names = list(adjacency_feature_names(self.with_style))
            self.stride = None
        else:
            raise DatasetError(f"model family '{self.family}' does not train building parts")
        self.symmetry = config["dataset"].get("symmetry", "none")
        fixed = axis_bound_inputs(self.input_kind, self.input_names)
        if self.symmetry != "none" and fixed:
            raise ConfigError(
                f"dataset.symmetry '{self.symmetry}' turns the training buildings, but "
                f"{self.family} with inputs '{self.inputs}' reads {', '.join(fixed)}, "
                f"tied to the grid's axes; use a grid family with street inputs "
                f"(dataset.inputs: street, street_runs, ...) or dataset.symmetry: none")
        if self.street_dropout > 0 and not (self.with_street and self.input_kind == "grid"):
            # only street sides given as inputs can be dropped: the value would change nothing
            raise ConfigError(f"config key 'dataset.street_dropout' must be 0 for {self.family} "
                              f"with dataset.inputs '{self.inputs}': it takes no street sides")

    @classmethod
    def prepare_config(cls, config: dict) -> None:
        """Fine-tuning (``training.init``): the source network's family, size and inputs
        replace the config's (the run's config.yaml records what was used); a symmetry the
        source's inputs cannot follow (coordinate phases, legacy style), and a street dropout
        for a source without street inputs, are turned off, with a note."""
        if not config["training"]["init"]:
            return
        init = load_init(config["training"]["init"])
        info = init.info
        config["model"] = {"family": info.family, **init.hyper}
        if info.input_kind == "grid":
            config["dataset"]["inputs"] = fine_tuned_inputs(list(info.input_names),
                                                            config["dataset"].get("inputs"))
        else:
            config["dataset"]["inputs"] = "style" if info.with_style else "massing"
        config["dataset"]["use_style"] = bool(info.with_style)
        dropout = float(config["dataset"].get("street_dropout", 0.0))
        if dropout > 0 and not (info.input_kind == "grid"
                                and config["dataset"]["inputs"].startswith("street")):
            # the config's (e.g. the default parts_unet3d_street's), not the source's: a source
            # that takes no street sides has none to drop
            print(f"note: dataset.street_dropout {dropout:g} set to 0: the source model takes "
                  f"no street sides", flush=True)
            config["dataset"]["street_dropout"] = 0.0
        fixed = axis_bound_inputs(info.input_kind, info.input_names)
        if config["dataset"].get("symmetry", "none") != "none" and fixed:
            print(f"note: dataset.symmetry '{config['dataset']['symmetry']}' set to none: the "
                  f"source model reads {', '.join(fixed[:3])}{', ...' if len(fixed) > 3 else ''}, "
                  f"tied to the grid's axes", flush=True)
            config["dataset"]["symmetry"] = "none"

    # -- networks -------------------------------------------------------------------
    def model_kwargs(self) -> dict:
        sizes = ({"in_channels": len(self.input_names)} if self.input_kind == "grid"
                 else {"in_features": len(self.input_names)})
        return {**sizes, "n_parts": self.n_parts, **self.hyper}

    def build_models(self):
        return {self.primary_model: build_model(self.family, **self.model_kwargs())}

    def init_weights(self, models) -> None:
        """Fine-tuning: the source's weights, its output channels mapped to this dataset's
        parts; a new (or silent) part's parent is the source part the source network
        predicts most on its faces (``trainers.finetune``)."""
        if not self.config["training"]["init"]:
            return
        self.init = load_init(self.config["training"]["init"])
        model = models[self.primary_model]
        source = self.init.parts
        parents, silent = survey(*self._survey(), source, self.parts)
        self.init_mapping = vocabulary_mapping(source, self.parts, parents, silent)
        if self.input_kind == "grid":
            self.init_mapping["inputs_added"] = input_mapping(
                list(self.init.info.input_names), list(self.input_names)) or []
        load_into(model, self.init, self.parts, self.init_mapping, self._init_inputs())
        for line in mapping_lines(self.init, self.init_mapping):
            print(line, flush=True)
        theirs, ours = self.init.info.cell_size, self.data.cell_size
        if theirs and ours and abs(theirs - ours) > 1e-6 * theirs:
            # what the source learnt per cell (a storey, a bay) is another size here
            print(f"init: note: the source model was trained on {theirs:g} m cells, this "
                  f"dataset has {ours:g} m cells; the fine-tuned model predicts at {ours:g} m",
                  flush=True)
        self._init_record = init_record(self.init, self.init_mapping, self.config)

    def on_epoch_end(self, models, out_dir, epoch: int) -> None:
        """``RUN/init.json`` once the run has a checkpoint: written at ``init_weights`` it
        would be left alone in the run folder by a run that fails before training (a
        missing grid, an empty split), keeping that folder from being removed."""
        if self._init_record is not None:
            write_record(out_dir, self._init_record)
            self._init_record = None

    def _init_inputs(self):
        """The run's input channels, for ``load_into`` (grid nets; None: the source's)."""
        return list(self.input_names) if self.input_kind == "grid" else None

    def _survey(self) -> tuple[np.ndarray, np.ndarray]:
        """The source network on (up to ``SURVEY_BUILDINGS`` of) the training split:
        ``counts[target part, predicted source part]`` over the labelled faces, and the
        highest probability it gave each source part on any of them."""
        source = self.init.parts
        network = build_model(self.family, **{**self.model_kwargs(), "n_parts": len(source)})
        load_into(network, self.init, source, vocabulary_mapping(source, source),
                  self._init_inputs())
        network.eval()
        counts = np.zeros((self.n_parts, len(source)), dtype=np.int64)
        top = np.zeros(len(source))
        ids = self.split_ids(self.config["dataset"]["train_split"],
                             self.config["dataset"]["max_buildings"])[:SURVEY_BUILDINGS]
        with torch.no_grad():
            for i in ids:
                x, t = self.encode(self.data.building(i))[:2]
                logits = network(torch.from_numpy(x)[None] if self.input_kind == "grid"
                                 else torch.from_numpy(x))
                probs = torch.softmax(_split_directions(logits, len(source)), dim=1)
                targets = torch.from_numpy(t)[None] if self.input_kind == "grid" else torch.from_numpy(t)
                valid = targets >= 0
                if not valid.any():
                    continue
                face_probs = probs.movedim(1, -1)[valid]                    # [faces, source parts]
                top = np.maximum(top, face_probs.max(dim=0).values.numpy())
                counts += parent_counts(face_probs.argmax(dim=1).numpy(), targets[valid].numpy(),
                                        len(source), self.n_parts)
        return counts, top

    def training_step(self, models, batch):
        model = models[self.primary_model]
        if self.config["training"]["init"] and self.config["training"]["freeze_norm"]:
            freeze_norm(model)
        logits = model(batch["inputs"])
        weight = None
        if self.class_weights is not None:
            weight = self.class_weights.to(logits.device)
        loss = masked_cross_entropy(logits, batch["targets"], self.n_parts, weight=weight,
                                    face_weight=batch.get("weights"))
        yield self.primary_model, loss
        with torch.no_grad():
            faces, targets, _ = face_logits(logits.detach(), batch["targets"], self.n_parts)
            accuracy = (faces.argmax(dim=1) == targets).sum().float() / max(len(targets), 1)
        return {"face_accuracy": accuracy}

    # -- data -----------------------------------------------------------------------
    def split_ids(self, split: str, limit: int = 0) -> list[int]:
        ids = self.data.ids(None if split == "all" else split)
        return ids[:limit] if limit else ids

    def dataset(self, split: str, limit: int = 0):
        records = [self.data.building(i) for i in self.split_ids(split, limit)]
        dataset_cfg = self.config["dataset"]
        if (not records and self.config["training"]["init"] and split == dataset_cfg["val_split"]
                and split != dataset_cfg["train_split"]):
            # fine-tuning on a handful of exported buildings: no building was set aside
            print(f"note: {self.data.root}: split '{split}' holds no buildings; validating on "
                  f"the '{dataset_cfg['train_split']}' split", flush=True)
            records = [self.data.building(i)
                       for i in self.split_ids(dataset_cfg["train_split"], limit)]
        if not records:
            raise DatasetError(f"{self.data.root}: split '{split}' holds no buildings")
        train = split == self.config["dataset"]["train_split"]
        if train:
            self._set_class_weights(records)
        return _Buildings(records, self.encode, augment=train and self.street_dropout > 0,
                          symmetry=self.symmetry if train else "none",
                          seed=int(self.config["training"]["seed"]))

    def _set_class_weights(self, records) -> None:
        """Loss weights from the training split's part counts (training.class_weighting)."""
        if self.config["training"]["class_weighting"] == "none":
            return
        counts = np.zeros(self.n_parts, dtype=np.int64)
        for record in records:
            faces = record.labels[face_mask(record.occupancy)]
            counts += np.bincount(faces.astype(np.int64), minlength=self.n_parts)
        self.class_weights = torch.from_numpy(inverse_sqrt_weights(counts))

    def encode(self, record, rng: np.random.Generator | None = None):
        """One building's model inputs and targets (and face weights); ``rng``: a training
        item's draws (street dropout)."""
        if self.input_kind == "grid":
            street = None
            if rng is not None and self.with_street and rng.random() < self.street_dropout:
                street = ()             # the artist did not say: no side marked
            x, t = encode_grid_example(record, self.input_names, self.stride, street)
            w = face_weights(record, self.stride, self.config["training"]["fix_weight"],
                             self.config["training"]["unfixed_weight"],
                             self.config["training"]["unknown_weight"])
            return (x, t) if w is None else (x, t, w)
        coords, feats, targets = encode_cell_example(record, self.with_style)
        w = cell_face_weights(record, coords, self.config["training"]["fix_weight"],
                              self.config["training"]["unfixed_weight"],
                              self.config["training"]["unknown_weight"])
        return (feats, targets) if w is None else (feats, targets, w)

    def collate(self, examples):
        if self.input_kind == "grid":
            # two strides at least: a batch of one small building (a real one 4 cells long)
            # would leave one value per channel at the bottleneck, where BatchNorm cannot train
            return _collate_grids(examples, 2 * self.stride)
        feats = torch.from_numpy(np.concatenate([e[0] for e in examples]))
        targets = torch.from_numpy(np.concatenate([e[1] for e in examples]))
        building = torch.cat([torch.full((len(e[0]),), i, dtype=torch.int64)
                              for i, e in enumerate(examples)])
        batch = {"inputs": feats, "targets": targets, "building": building, "count": len(examples)}
        if any(len(e) > 2 for e in examples):      # corrected faces in the batch (1 elsewhere)
            batch["weights"] = torch.from_numpy(np.concatenate(
                [e[2] if len(e) > 2 else np.ones(e[1].shape, np.float32) for e in examples]))
        return batch

    def to_device(self, batch, device):
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def new_evaluation(self, device=None):
        return PartsEvaluation(self.parts, device)

    def label_names(self) -> list[str]:
        return list(self.parts)

    # -- run description ------------------------------------------------------------
    def info(self) -> PartsInfo:
        manifest = self.data.manifest
        return PartsInfo(task=self.name, family=self.family, input_kind=self.input_kind,
                         input_names=list(self.input_names), parts=list(self.parts),
                         with_style=self.with_style, with_street=self.with_street,
                         stride=self.stride or 1, symmetry=self.symmetry,
                         cell_size=self.data.cell_size,
                         grid_size=[int(n) for n in manifest["grid_size"]],
                         dataset_count=int(manifest["count"]), dataset_seed=int(manifest.get("seed", 0)),
                         dataset_format_version=int(manifest["format_version"]),
                         data_dir=str(Path(self.data.root).resolve()))

    def check_compatible(self, info: PartsInfo, what: str) -> None:
        """Refuse a dataset whose vocabulary differs from the one ``what`` was trained on."""
        if list(info.parts) != self.parts:
            raise DatasetError(f"{self.data.root}: dataset parts {self.parts} differ from the parts "
                               f"{list(info.parts)} of {what}; use a dataset generated with the same parts")

    # -- finished runs ----------------------------------------------------------------
    @classmethod
    def evaluate(cls, model, run, data_dir, split: str = "test", batch_size: int | None = None) -> dict:
        """Per-part precision/recall/F1, face accuracy and whole-building accuracy on a split."""
        task = cls(run.config, data_dir)
        task.check_compatible(run.info, f"the run in {run.path}")
        metrics, dataset = evaluate_split(task, model, split, batch_size)
        grid_sizes = sorted({tuple(int(n) for n in r.occupancy.shape) for r in dataset.records})
        return {**run.result_header(data_dir, split), "with_style": run.info.with_style,
                "with_street": run.info.with_street,
                "parts": list(run.info.parts),
                "grid_sizes": [list(s) for s in grid_sizes],
                "trained_grid_size": run.info.grid_size, **metrics}

    @staticmethod
    def format_table(result: dict) -> str:
        inputs = ("style-aware" if result["with_style"] else
                  "massing + street sides" if result.get("with_street") else "massing only")
        lines = [f"{result['family']} ({inputs}) "
                 f"on {result['data']} [{result['split']}]: {result['buildings']} buildings, "
                 f"{result['faces']} faces"]
        lines += per_class_table(result["per_class"], "part")
        lines += [f"face accuracy      {result['face_accuracy']:.4f}",
                  f"macro F1           {result['macro_f1']:.4f}",
                  f"buildings all right {result['building_accuracy']:.4f}"]
        if "ece" in result:
            lines.append(f"calibration (ECE)  {result['ece']:.4f}")
        return "\n".join(lines)

    @classmethod
    def export_info(cls, model, run, data_dir, log=print, fit: bool | None = None) -> PartsInfo:
        """The run info with ``decision_weights`` fitted on the validation split of
        ``data_dir`` when ``fit`` (None: the run's ``training.fit_decision``) and there is
        data; else unchanged."""
        from dataclasses import replace

        fit = run.config["training"].get("fit_decision", False) if fit is None else fit
        if not fit:
            return run.info
        if data_dir is None:
            log("  decision rule: no dataset to fit it on (--data); plain argmax")
            return run.info
        task = cls(run.config, data_dir)
        task.check_compatible(run.info, f"the run in {run.path}")
        split = run.config["dataset"]["val_split"]
        if not task.split_ids(split):
            log(f"  decision rule: no '{split}' split in {data_dir}; plain argmax")
            return run.info
        probs, truth, building, entrance = _face_probabilities(task, model, split)
        weights, before, after = fit_decision_weights(probs, truth, len(task.parts))
        log(f"  decision rule on {len(truth)} {split} faces: mean F1 over parts {before:.4f} -> "
            f"{after:.4f} with weights " + ", ".join(f"{p} {w:g}" for p, w in zip(task.parts, weights)))
        rule = False
        if "door" in task.parts and entrance.any():
            rule, without, with_rule = fit_entrance_rule(probs, truth, weights, building, entrance,
                                                         task.parts.index("door"))
            log(f"  entrance rule: mean F1 over parts {without:.4f} -> {with_rule:.4f}: "
                + ("kept" if rule else "not kept"))
        return replace(run.info, decision_weights=[float(w) for w in weights], entrance_rule=rule)

    @classmethod
    def parity_inputs(cls, run, data_dir=None, n: int = 3) -> list[tuple[str, np.ndarray]]:
        """Real buildings from the run's dataset (or freshly generated ones when there is
        none) plus one on a grid size (or cell count) the export never saw."""
        info = run.info
        records = _sample_records(info, data_dir, n)
        samples = [(name, _encode(info, occ, style)) for name, occ, style in records]
        if info.input_kind == "grid":
            traced = _trace_sample(samples[0], info.stride or 1)
            if traced is not samples[0]:
                samples.insert(0, traced)
        name, occ, style = _generated(_unseen_size(info), 1, seed=2)[0]
        samples.append((f"unseen size {list(occ.shape)}", _encode(info, occ, style)))
        if info.input_kind == "grid":   # a batch of 2 at that size exercises the batch axis
            samples.append(("unseen size, batch 2", np.concatenate([samples[-1][1]] * 2)))
        else:                           # many buildings' cells in one run, as batch inference does
            cells = np.concatenate([x for _, x in samples])
            samples.append((f"all samples at once ({len(cells)} cells)", cells))
        return samples


def example_inputs(info: PartsInfo, dataset_dir, n: int = 4, split: str = "test") -> list[dict]:
    """Real encoded inputs of a run's kind (torch vs ONNX vs runtime checks).

    Each item: ``building_id``, ``occupancy`` uint8[X,Y,Z], ``style`` float32[9] (None if
    the run is massing-only), ``labels`` int8[X,Y,Z,6], ``input`` — grid runs:
    float32[1, C, X', Y', Z'] padded to ``info.stride``; cell runs: float32[N, F] with
    ``coords`` int32[N, 3].
    """
    data = open_dataset(dataset_dir)
    out = []
    for building_id in data.ids(None if split == "all" else split)[:n]:
        record = data.building(building_id)
        item = {"building_id": building_id, "occupancy": record.occupancy,
                "style": record.style if info.with_style else None, "labels": record.labels}
        if info.input_kind == "grid":
            item["street"] = record_street(record) if info.with_street else None
            item["input"] = encode_grid_example(record, info.input_names, info.stride)[0][None]
        else:
            coords, feats, _ = encode_cell_example(record, info.with_style)
            item.update({"input": feats, "coords": coords})
        out.append(item)
    return out


def _encode(info: PartsInfo, occupancy, style, street=None, neighbours=None) -> np.ndarray:
    if info.input_kind == "grid":
        if street is None and style is not None:
            street = style_street_sides(style) or None
        return pad_to_stride(grid_inputs(info.input_names, occupancy, style, street, neighbours),
                             info.stride)[None]
    return adjacency_features(occupancy, style if info.with_style else None)[1]


def _sample_records(info: PartsInfo, data_dir, n: int):
    if data_dir is not None:
        data = open_dataset(data_dir)
        ids = (data.ids("test") or data.ids("val") or data.ids())[:n]
        return [(f"dataset building {i}", r.occupancy, r.style)
                for i, r in ((i, data.building(i)) for i in ids)]
    return _generated(list(info.grid_size or [16, 16, 16]), n, seed=1)


def _trace_sample(sample: tuple[str, np.ndarray], stride: int) -> tuple[str, np.ndarray]:
    """``sample`` padded with empty cells to at least two strides along x, y and z: the
    input export traces. A grid of one stride along an axis (a real building 4 cells long)
    leaves a size-1 axis at the bottleneck, which torch.export specialises, and the traced
    graph would refuse every other size; padding never changes the cells inside."""
    name, x = sample
    want = [max(n, 2 * stride) for n in x.shape[2:]]
    if want == list(x.shape[2:]):
        return sample
    padded = np.zeros(x.shape[:2] + tuple(want), dtype=x.dtype)
    padded[:, :, :x.shape[2], :x.shape[3], :x.shape[4]] = x
    return f"{name} padded to {want} (traced)", padded


def _unseen_size(info: PartsInfo) -> list[int]:
    """A grid no training sample had (bigger, non-cubic, not a stride multiple)."""
    size = list(info.grid_size or [16, 16, 16])
    return [size[0] + 6, max(size[1] - 2, 6), size[2] + 3]


def _generated(size, n: int, seed: int):
    from proc_ml.procedural import generate_building
    from proc_ml.procedural.config import default_config

    cfg = default_config()
    cfg["grid"]["size"] = [int(v) for v in size]
    out = []
    for index in range(n):
        b = generate_building(cfg, seed, index)
        out.append((f"generated building {list(size)} #{index}", b.occupancy, b.style.vector()))
    return out


@torch.no_grad()
def _face_probabilities(task: BuildingPartsTask, model, split: str):
    """``(float32[F, K] softmax, int64[F] truth, int64[F] building, bool[F] entrance)`` over
    the existing faces of ``split``: ``building`` numbers the split's buildings, ``entrance``
    marks the faces the entrance rule may turn into a door (``entrance_candidates``)."""
    model.eval()
    dataset = task.dataset(split)
    probs, truth, building, entrance = [], [], [], []
    for start in range(0, len(dataset), 16):
        stop = min(start + 16, len(dataset))
        batch = task.collate([dataset[i] for i in range(start, stop)])
        logits = model(batch["inputs"]).float()
        p = torch.softmax(_split_directions(logits, task.n_parts), dim=1)      # [B, K, 6, ...]
        targets = batch["targets"]
        valid = targets >= 0
        probs.append(p.movedim(1, -1)[valid].numpy())
        truth.append(targets[valid].numpy())
        valid = valid.numpy()
        if task.input_kind == "grid":                   # targets [B, 6, X, Y, Z]
            owner = np.broadcast_to(np.arange(start, stop)[:, None, None, None, None], valid.shape)
            candidates = np.zeros(valid.shape, dtype=bool)
            for b, i in enumerate(range(start, stop)):
                mask = _entrance_mask(task, dataset.records[i])
                X, Y, Z = mask.shape[:3]
                candidates[b, :, :X, :Y, :Z] = np.moveaxis(mask, -1, 0)
        else:                                           # targets [N, 6], batch["building"]
            owner = np.broadcast_to(start + batch["building"].numpy()[:, None], valid.shape)
            candidates = np.concatenate([
                _entrance_mask(task, dataset.records[i])[tuple(
                    encode_cell_example(dataset.records[i], task.with_style)[0].T)]
                for i in range(start, stop)])
        building.append(owner[valid])
        entrance.append(candidates[valid])
    return (np.concatenate(probs), np.concatenate(truth), np.concatenate(building),
            np.concatenate(entrance))


def _entrance_mask(task: BuildingPartsTask, record: BuildingRecord) -> np.ndarray:
    """``bool[X, Y, Z, 6]``: ``record``'s faces the entrance rule may use, given the street
    sides the model gets (street-aware: the record's; style-aware: its style's street side;
    massing-only: none)."""
    faces = face_mask(record.occupancy)
    sides = record_street(record) if task.with_street or task.with_style else ()
    return entrance_candidates(faces, sides) if sides else np.zeros(faces.shape, dtype=bool)


#: Candidate weights of the decision rule (a part's probability is multiplied by one).
DECISION_GRID = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)


#: The decision rule may cost at most this much face accuracy on the validation split.
DECISION_MAX_ACCURACY_DROP = 0.005


def fit_decision_weights(probs: np.ndarray, truth: np.ndarray, n_parts: int, rounds: int = 2,
                         max_accuracy_drop: float = DECISION_MAX_ACCURACY_DROP):
    """Per-part weights ``w`` (label = argmax(p x w)) that maximise the mean F1 over the
    parts present in ``truth`` while face accuracy stays within ``max_accuracy_drop`` of
    plain argmax, by coordinate ascent over ``DECISION_GRID`` (the most frequent part keeps
    weight 1): rare parts (doors) get found without trading away the common ones.
    Returns ``(weights, mean F1 before, after)``."""
    def scores(w):
        return _mean_f1_and_accuracy((probs * w).argmax(axis=1), truth, n_parts)

    present = np.bincount(truth, minlength=n_parts) > 0
    weights = np.ones(n_parts)
    before, base_accuracy = scores(weights)
    best = before

    def mean_f1(w):
        f1, accuracy = scores(w)
        return f1 if accuracy >= base_accuracy - max_accuracy_drop else -1.0

    anchor = int(np.argmax(np.bincount(truth, minlength=n_parts)))
    for _ in range(rounds):
        for k in np.nonzero(present)[0]:
            if k == anchor:
                continue
            for value in DECISION_GRID:
                trial = weights.copy()
                trial[k] = value
                score = mean_f1(trial)
                if score > best + 1e-9:
                    best, weights = score, trial
    return weights, before, best


def _mean_f1_and_accuracy(guess: np.ndarray, truth: np.ndarray, n_parts: int) -> tuple[float, float]:
    """Mean F1 over the parts present in ``truth``, and accuracy, of labels ``guess``."""
    scores = classification_metrics(confusion_matrix(truth, guess, n_parts), range(n_parts))
    return scores["macro_f1"], scores["accuracy"]


def entrance_rule_labels(guess: np.ndarray, probs: np.ndarray, building: np.ndarray,
                         entrance: np.ndarray, door: int) -> np.ndarray:
    """``guess`` (one label per face) after ``encoding.apply_entrance_rule`` on every
    building (faces numbered by ``building``; ``entrance``: the faces the rule may use)."""
    out = guess.copy()
    idx = np.nonzero(entrance)[0]
    if not len(idx):
        return out
    owner = building[idx]
    has_door = np.zeros(int(building.max()) + 1, dtype=bool)
    np.logical_or.at(has_door, owner, guess[idx] == door)
    order = np.lexsort((-probs[idx, door], owner))          # by building, most door-like first
    first = np.ones(len(order), dtype=bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    best = idx[order][first]
    out[best[~has_door[building[best]]]] = door
    return out


def fit_entrance_rule(probs: np.ndarray, truth: np.ndarray, weights, building: np.ndarray,
                      entrance: np.ndarray, door: int,
                      max_accuracy_drop: float = DECISION_MAX_ACCURACY_DROP):
    """Whether the entrance rule, after the decision ``weights``, raises the mean F1 over
    parts while face accuracy stays within ``max_accuracy_drop`` of plain argmax (the
    decision weights' own allowance). Returns ``(keep, mean F1 without, with)``."""
    n_parts = probs.shape[1]
    _, base_accuracy = _mean_f1_and_accuracy(probs.argmax(axis=1), truth, n_parts)
    guess = (probs * np.asarray(weights)).argmax(axis=1)
    without, _ = _mean_f1_and_accuracy(guess, truth, n_parts)
    with_rule, accuracy = _mean_f1_and_accuracy(
        entrance_rule_labels(guess, probs, building, entrance, door), truth, n_parts)
    keep = bool(with_rule > without + 1e-9 and accuracy >= base_accuracy - max_accuracy_drop)
    return keep, without, with_rule


def _collate_grids(examples, min_size: int = 1):
    """Examples ``(inputs, targets[, face weights])`` padded with empty cells to one shape,
    at least ``min_size`` along each axis; ``weights`` is in the batch when any example has
    face weights (1 for the others)."""
    shape = tuple(max([min_size] + [e[0].shape[axis] for e in examples]) for axis in (1, 2, 3))
    inputs = torch.zeros((len(examples), examples[0][0].shape[0]) + shape)
    targets = torch.full((len(examples), 6) + shape, NO_PART, dtype=torch.int64)
    weighted = any(len(e) > 2 for e in examples)
    weights = torch.ones((len(examples), 6) + shape) if weighted else None
    for i, example in enumerate(examples):
        x, t = example[:2]
        inputs[i, :, :x.shape[1], :x.shape[2], :x.shape[3]] = torch.from_numpy(x)
        targets[i, :, :t.shape[1], :t.shape[2], :t.shape[3]] = torch.from_numpy(t)
        if len(example) > 2:
            w = example[2]
            weights[i, :, :w.shape[1], :w.shape[2], :w.shape[3]] = torch.from_numpy(w)
    batch = {"inputs": inputs, "targets": targets, "building": torch.arange(len(examples)),
             "count": len(examples)}
    if weights is not None:
        batch["weights"] = weights
    return batch
