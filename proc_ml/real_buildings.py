"""Scoring building-parts models on real buildings, beside honest baselines (torch-free).

Input: a labelled dataset written by ``proc-ml import citygml`` (real LoD3 buildings: face
labels from their windows and doors, the sides facing the street, and ``label_known``, the
faces the street scan saw). Every system labels every building and is scored on the same
faces, two ways:

* **all faces**: every exterior face the import labelled (the sides the scan did not see
  count as the import labels them: wall);
* **street facades**: the side faces of the sides that carry at least one real opening
  (the scans cover the street sides only; the other sides are unknown, not blank).

Systems: the models given, each **with** the street sides (``--street``, what an artist
knows) when it can take them and **without**; and two baselines that need no model:

* ``geometry``: top faces roof, bottom faces ground on the bottom layer (wall above, an
  overhang's underside), every side face wall — the import's rule for what is not an
  opening, so it is right wherever a building has no opening;
* ``per_floor``: as ``geometry``, but every side face above the bottom layer is a window
  (one window per cell and floor).

A style-aware model needs a whole style: it gets the street side (the first street side)
and the neutral rest of a style (window every cell, no shopfront, no balconies); it is
scored with the street sides only. Results: per part precision/recall/F1, face accuracy and
the confusion matrix per system and scope; a markdown table; a PNG per building.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .datasets.buildings import BuildingDataset
from .encoding import street_vector
from .errors import DatasetError
from .grid import DOWN, NO_PART, UP, exterior_faces
from .metrics import calibration_bins, classification_metrics, expected_calibration_error

SCOPES = ("all", "street")
BASELINES = ("geometry", "per_floor")
#: The style a style-aware model gets besides its street side: window every cell, no
#: shopfront, no balconies (STYLE_FEATURES order after the 4 street values).
NEUTRAL_STYLE_REST = (1.0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class RealBuilding:
    name: str                      # source id (e.g. the CityGML gml:id)
    occupancy: np.ndarray          # uint8[X, Y, Z]
    labels: np.ndarray             # int8[X, Y, Z, 6]
    street: tuple[str, ...]        # sides facing the street
    known: np.ndarray | None = None   # bool[X, Y, Z, 6]

    def scope_mask(self, scope: str) -> np.ndarray:
        """bool[X, Y, Z, 6]: the faces a scope scores."""
        faces = self.labels >= 0
        if scope == "all":
            return faces
        street = street_vector(self.street).astype(bool)
        mask = np.zeros_like(faces)
        mask[..., :4] = faces[..., :4] & street[None, None, None, :]
        return mask


@dataclass
class RealSet:
    root: Path
    parts: list[str]
    buildings: list[RealBuilding] = field(default_factory=list)


def load_real(root: str | os.PathLike) -> RealSet:
    """The buildings of a labelled real-building dataset (``proc-ml import citygml``)."""
    data = BuildingDataset(root)
    if not data.labelled:
        raise DatasetError(f"{data.root}: a massing-to-label dataset: no labels to score on")
    out = RealSet(data.root, list(data.parts))
    for building_id in data.ids():
        record = data.building(building_id)
        street = record.street_sides
        if street is None:
            raise DatasetError(f"{data.grid_path(building_id)}: no 'street' array (import real "
                               f"buildings with 'proc-ml import citygml')")
        name = str(record.extras.get("source_id", building_id))
        out.buildings.append(RealBuilding(name, record.occupancy, record.labels, street,
                                          record.extras.get("label_known")))
    if not out.buildings:
        raise DatasetError(f"{data.root}: no buildings")
    return out


# -- baselines --------------------------------------------------------------------------------
def geometry_baseline(occupancy: np.ndarray, parts) -> np.ndarray:
    """Top faces roof, bottom faces ground on layer 0 and wall above, side faces wall."""
    parts = list(parts)
    faces = exterior_faces(occupancy)
    labels = np.where(faces, parts.index("wall"), NO_PART).astype(np.int8)
    labels[..., UP][faces[..., UP]] = parts.index("roof")
    bottom = np.zeros_like(faces[..., DOWN])
    bottom[:, :, 0] = faces[:, :, 0, DOWN]
    labels[..., DOWN][bottom] = parts.index("ground")
    return labels


def per_floor_baseline(occupancy: np.ndarray, parts) -> np.ndarray:
    """``geometry_baseline`` with every side face above the bottom layer a window."""
    labels = geometry_baseline(occupancy, parts)
    sides = labels[:, :, 1:, :4]
    sides[sides >= 0] = list(parts).index("window")
    return labels


BASELINE_FUNCTIONS = {"geometry": geometry_baseline, "per_floor": per_floor_baseline}


# -- models --------------------------------------------------------------------------------------
def model_inputs(predictor, building: RealBuilding, with_street: bool):
    """``(style, street)`` for ``predictor`` on ``building``; None when the model cannot run
    that way (a style-aware model needs a street side)."""
    street = building.street if with_street else None
    if predictor.with_style:
        if not building.street or not with_street:
            return None
        style = np.concatenate([street_vector(building.street[:1]), NEUTRAL_STYLE_REST])
        return style.astype(np.float32), None
    if with_street and not predictor.with_street:
        return None
    return None, street


def predict_model(predictor, building: RealBuilding, with_street: bool,
                  symmetry: str | None = None):
    """``(labels, probs)`` of ``predictor`` on ``building``, or None when it cannot run so.
    ``symmetry``: what the prediction averages over (None: the model's own)."""
    inputs = model_inputs(predictor, building, with_street)
    if inputs is None:
        return None
    return predictor.predict(building.occupancy, *inputs, symmetry=symmetry)


def calibration(real: RealSet, probs: list[np.ndarray], source_parts, scope: str) -> float:
    """Expected calibration error of a model's most likely part over the faces of ``scope``
    (a part the truth's vocabulary lacks counts as wrong)."""
    table = 0
    lookup = np.array([list(real.parts).index(p) if p in real.parts else -2 for p in source_parts])
    for building, p in zip(real.buildings, probs):
        mask = building.scope_mask(scope)
        face_probs = p[mask]
        guess = lookup[face_probs.argmax(axis=-1)]
        table = table + calibration_bins(face_probs.max(axis=-1), guess == building.labels[mask])
    return expected_calibration_error(np.asarray(table, dtype=np.float64).reshape(-1, 3))


# -- scoring ---------------------------------------------------------------------------------------
def to_truth_vocabulary(labels: np.ndarray, source_parts, truth_parts) -> np.ndarray:
    """Labels over ``source_parts`` as indices of ``truth_parts`` (a part it lacks: -2)."""
    lookup = np.array([list(truth_parts).index(p) if p in truth_parts else -2 for p in source_parts])
    return np.where(labels >= 0, lookup[np.maximum(labels, 0)], NO_PART)


def score(real: RealSet, predictions: list[np.ndarray], scope: str) -> dict:
    """Confusion matrix (rows true, columns predicted, in the dataset's vocabulary), face
    accuracy, per part precision/recall/F1, over the faces of ``scope``."""
    k = len(real.parts)
    confusion = np.zeros((k, k + 1), dtype=np.int64)       # last column: a part the truth lacks
    for building, predicted in zip(real.buildings, predictions):
        mask = building.scope_mask(scope)
        truth, guess = building.labels[mask].astype(np.int64), predicted[mask].astype(np.int64)
        guess = np.where(guess < 0, k, guess)
        np.add.at(confusion, (truth, guess), 1)
    scores = classification_metrics(confusion[:, :k], real.parts)
    total = int(confusion.sum())
    scores["accuracy"] = float(np.trace(confusion[:, :k]) / total) if total else 0.0
    for name, row in zip(real.parts, confusion):
        scores["per_class"][name]["support"] = int(row.sum())
    return {"faces": total, "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "per_class": scores["per_class"], "confusion": confusion[:, :k].tolist()}


def evaluate(real: RealSet, models: dict | None = None, pictures=None,
             symmetries: dict | None = None) -> dict:
    """Every baseline and every model (``{name: PartsPredictor}``) with and without street
    sides, scored on all faces and on the street facades. ``pictures``: a folder for one
    PNG per building (the real labels beside each system's). ``symmetries``: ``{name:
    symmetry}`` a model predicts with (missing or None: its own)."""
    systems: dict[str, list] = {name: [BASELINE_FUNCTIONS[name](b.occupancy, real.parts)
                                       for b in real.buildings] for name in BASELINES}
    notes, ece = {}, {}
    for name, predictor in (models or {}).items():
        for with_street in (True, False):
            symmetry = (symmetries or {}).get(name)
            outputs = [predict_model(predictor, b, with_street, symmetry) for b in real.buildings]
            key = f"{name} ({'with' if with_street else 'without'} street)"
            if any(x is None for x in outputs):
                notes[key] = ("needs the street sides (style-aware)" if predictor.with_style
                              else "takes no street sides")
                continue
            systems[key] = [to_truth_vocabulary(x, predictor.parts, real.parts) for x, _ in outputs]
            ece[key] = {scope: calibration(real, [p for _, p in outputs], predictor.parts, scope)
                        for scope in SCOPES}
    result = {"dataset": str(real.root), "buildings": [b.name for b in real.buildings],
              "parts": real.parts, "not_run": notes, "calibration_ece": ece,
              "systems": {name: {scope: score(real, labels, scope) for scope in SCOPES}
                          for name, labels in systems.items()},
              "per_building": {name: [score(RealSet(real.root, real.parts, [b]), [x], "all")["accuracy"]
                                      for b, x in zip(real.buildings, labels)]
                               for name, labels in systems.items()}}
    if pictures is not None:
        result["pictures"] = write_pictures(real, systems, pictures)
    return result


#: Camera azimuth (matplotlib, degrees) that shows a street side and the side to its left.
VIEW_AZIMUTH = {"+x": -30.0, "+y": 60.0, "-x": 150.0, "-y": -120.0}


def write_pictures(real: RealSet, systems: dict, folder) -> list[str]:
    """One PNG per building, viewed towards its (first) street side: the real labels, then
    each system's (atomic writes)."""
    from .colours import part_colours
    from .fileio import write_bytes
    from .meshing import quad_mesh
    from .render import render_parts

    folder = Path(folder)
    colours = part_colours(real.parts)
    written = []
    for i, building in enumerate(real.buildings):
        meshes = [quad_mesh(building.occupancy, building.labels)]
        titles = [f"{building.name}: real (street {' '.join(building.street) or '-'})"]
        for name, labels in systems.items():
            meshes.append(quad_mesh(building.occupancy, np.where(labels[i] >= 0, labels[i], NO_PART)))
            titles.append(name)
        path = folder / f"{building.name}.png"
        azim = VIEW_AZIMUTH.get(building.street[0] if building.street else "", -58.0)
        write_bytes(path, render_parts(meshes, real.parts, colours, titles, size=3.2,
                                       columns=min(4, len(meshes)), azim=azim))
        written.append(str(path))
    return written


# -- reporting ------------------------------------------------------------------------------------
def markdown(result: dict, parts_shown=("wall", "window", "door", "roof", "ground")) -> str:
    """The result as markdown: face accuracy and per-part F1 per system and scope."""
    lines = [f"{len(result['buildings'])} real buildings ({result['dataset']})", ""]
    for scope in SCOPES:
        title = "all faces" if scope == "all" else "street facades (sides with real openings)"
        lines += [f"**{title}**", "",
                  "| system | faces | face accuracy | " + " | ".join(f"{p} F1" for p in parts_shown) + " | door P / R |",
                  "|---|---:|---:|" + "---:|" * len(parts_shown) + "---:|"]
        for name, scopes in result["systems"].items():
            r = scopes[scope]
            f1 = " | ".join(f"{r['per_class'][p]['f1']:.3f}" if r["per_class"].get(p, {}).get("support")
                            else "-" for p in parts_shown)
            door = r["per_class"].get("door", {})
            lines.append(f"| {name} | {r['faces']} | {r['accuracy']:.3f} | {f1} | "
                         f"{door.get('precision', 0):.2f} / {door.get('recall', 0):.2f} |")
        lines.append("")
    if result.get("calibration_ece"):
        lines += ["**calibration** (expected calibration error of the most likely part, 15 bins)", "",
                  "| model | all faces | street facades |", "|---|---:|---:|"]
        lines += [f"| {name} | {e['all']:.3f} | {e['street']:.3f} |"
                  for name, e in result["calibration_ece"].items()]
        lines.append("")
    for name, why in result.get("not_run", {}).items():
        lines.append(f"- not run: {name}: {why}")
    return "\n".join(lines).rstrip() + "\n"
