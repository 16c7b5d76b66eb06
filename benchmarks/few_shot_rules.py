"""Rule sets the pretrained building-parts model never saw, and the datasets of the few-shot
benchmark (``benchmarks/bench_few_shot.py``, docs/few-shot.md).

A studio labels a handful of its own buildings; proc-ml has to pick up the studio's rules
from them. Each rule set here is such a studio: a deterministic function of a building's
occupancy (``uint8[X, Y, Z]``, z up) and of the sides facing the street (a tuple of
``"+x"``, ``"-x"``, ``"+y"``, ``"-y"``), returning ``int8[X, Y, Z, 6]`` labels that index
the rule set's own vocabulary on exactly the exterior faces (``proc_ml.grid.exterior_faces``;
-1 elsewhere). Faces are in proc-ml's order ``+x, -x, +y, -y, +z, -z``
(``proc_ml.grid.DIRECTIONS``). Nothing random and nothing but occupancy and street sides:
every rule is learnable from what a street-aware model reads.

The rules were fixed (and documented in docs/few-shot.md, "The benchmark's rule sets")
before any model was trained on them; they are not to be changed after seeing results.

Words the rules use
    *side face*: a +x, -x, +y or -y face. *Top face*: +z. *Bottom face*: -z.
    *Floor* of a face: the z index of its cell; the *ground floor* is z = 0, *upper floors*
    z >= 1 (3 m cells: one cell one storey).
    *Street face*: a side face whose direction is one of the building's street sides.
    *Run*: a maximal row of exterior side faces of one direction on one floor, in one
    plane (same coordinate along the face normal), whose cells are consecutive along the
    other horizontal axis (y for +-x faces, x for +-y faces). A face's *position* p in its
    run counts from the run's low-coordinate end (0 .. L-1, L the run's length).
    *Left end* of a run: the end on the left of someone standing in front of the face,
    looking at it (lowest y for +x faces, highest y for -x, highest x for +y, lowest x for
    -y): the same end whichever way the building is turned.
    *Column top*: the highest occupied cell of its (x, y) column.

In every rule set top faces are ``roof`` and bottom faces are ``ground``. Side faces:

``odd_floors`` (wall, window, roof, ground)
    window on every side face of an odd floor (z = 1, 3, 5, ...), wall on every side face
    of an even floor (z = 0, 2, ...). Street sides play no part; there are no doors.
``centred_entrances`` (wall, window, door, roof, ground)
    street faces of the ground floor: door at the centre of each run (p = (L-1) // 2 and
    p = L // 2: the middle face of an odd run, the middle two of an even one), window on
    the rest; street faces of upper floors: window; every other side face: wall.
``corner_balconies`` (wall, window, roof, balcony, ground)
    upper floors, every side (street or not): balcony at both ends of each run (p = 0 and
    p = L - 1; a run of one or two faces is all balcony), window on the rest; ground floor:
    window on street faces, wall on the other sides.
``cornice`` (wall, window, door, roof, ground, cornice: a studio vocabulary, no balcony or
shopfront, one part the pretrained model does not have)
    the side faces of every column top are cornice (before anything else); otherwise
    street faces of the ground floor: door at the left end of each run, window on the rest;
    street faces of upper floors: window; other side faces: wall. Runs are taken over all
    faces, so a run whose left end is a cornice face has no door.
``bay_rhythm`` (wall, window, shopfront, roof, ground; added after the fine-tuning recipe
gained ``dataset.symmetry``, as a blind check of that change: fixed before any model saw it)
    street faces of upper floors: window at even positions counted from the left end of
    each run (0, 2, 4, ...), wall at odd ones; street faces of the ground floor: shopfront,
    wall at both ends of each run (a run of one or two faces is all wall); other sides: wall.

The dataset builders make facade-grammar massing (``proc-ml generate buildings --formats
grids --set grid.size=[16,16,16]``, 3 m cells), relabel every grid with a rule, keep the
occupancy, street sides and other extras, and write the dataset index for the rule's
vocabulary: ``build_rule_dataset`` (a training folder whose train and val splits are both
all its buildings, or a held-out test folder) and ``build_correction_dataset`` (a model's
predictions with K wrong faces per building corrected to the rule and marked in
``label_fixed``, the correction loop of docs/few-shot.md).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from proc_ml.datasets.writer import BuildingArrays, DatasetIndex, index_rows
from proc_ml.encoding import SIDES, parse_street, run_lengths
from proc_ml.errors import ConfigError, DatasetError
from proc_ml.formats import grid_npz, grid_path, manifest as manifest_file
from proc_ml.grid import DOWN, NO_PART, SIDE_DIRECTIONS, UP, along_axis, check_occupancy, exterior_faces
from proc_ml.procedural.parts import Vocabulary

#: Generator settings of the benchmark's massing (docs/few-shot.md).
GRID_SIZE = (16, 16, 16)
CELL_SIZE = 3.0
#: Which end of a run is its left end, per side direction: True for the low-coordinate end.
LEFT_IS_LOW = {0: True, 1: False, 2: False, 3: True}


@dataclass(frozen=True)
class RuleSet:
    """A studio's labelling rules: ``label(occupancy, street) -> int8[X, Y, Z, 6]`` indexing
    ``parts``."""
    name: str
    parts: tuple[str, ...]
    summary: str                       # the side-face rule in one sentence (docs table)
    side_rule: Callable                # (_Faces, parts index) -> int array [X, Y, Z, 4]

    def label(self, occupancy, street=()) -> np.ndarray:
        faces = _Faces(occupancy, street)
        index = {name: i for i, name in enumerate(self.parts)}
        labels = np.full(faces.ext.shape, NO_PART, dtype=np.int8)
        labels[..., UP] = np.where(faces.ext[..., UP], index["roof"], NO_PART)
        labels[..., DOWN] = np.where(faces.ext[..., DOWN], index["ground"], NO_PART)
        sides = np.asarray(self.side_rule(faces, index))
        labels[..., :4] = np.where(faces.ext[..., :4], sides, NO_PART)
        return labels

    def label_names(self, occupancy, street=()) -> np.ndarray:
        """The labels as part names (``""`` where there is no face)."""
        return names_of(self.label(occupancy, street), self.parts)


class _Faces:
    """The geometry every rule reads, for one building (arrays over [X, Y, Z, 4] side faces
    broadcast where they do not depend on the direction)."""

    def __init__(self, occupancy, street):
        occ = check_occupancy(occupancy)
        self.occ = occ
        self.ext = exterior_faces(occ)
        sides = parse_street(street, "street")
        self.street = np.array([side in sides for side in SIDES])            # [4]
        z = np.arange(occ.shape[2])
        self.floor = z[None, None, :, None]                                  # [1, 1, Z, 1]
        self.position, self.length = run_positions(self.ext)                 # [X, Y, Z, 4]
        self.left_end = np.stack([self.position[..., d] == 0 if LEFT_IS_LOW[d]
                                  else self.position[..., d] == self.length[..., d] - 1
                                  for d in SIDE_DIRECTIONS], axis=-1)
        above = np.flip(np.cumsum(np.flip(occ, 2), axis=2), 2) - occ         # occupied cells above
        self.column_top = (occ & (above == 0))[..., None]                    # [X, Y, Z, 1]


def run_positions(ext: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position, length)``, each ``int32[X, Y, Z, 4]``: for every exterior side face, its
    0-based position in its run (from the low-coordinate end) and the run's length (0 where
    there is no face). ``ext``: ``bool[X, Y, Z, 6]`` exterior faces."""
    ext = np.asarray(ext, dtype=bool)
    position = np.zeros(ext.shape[:3] + (4,), dtype=np.int32)
    length = np.zeros_like(position)
    for d in SIDE_DIRECTIONS:
        axis = along_axis(d)
        mask = ext[..., d]
        before, after = run_lengths(mask, axis)
        position[..., d] = before
        length[..., d] = np.where(mask, before + after + 1, 0)
    return position, length


def _odd_floors(f: _Faces, p: dict) -> np.ndarray:
    return np.where(f.floor % 2 == 1, p["window"], p["wall"])


def _centred_entrances(f: _Faces, p: dict) -> np.ndarray:
    centre = (f.position == (f.length - 1) // 2) | (f.position == f.length // 2)
    street = np.where((f.floor == 0) & centre, p["door"], p["window"])
    return np.where(f.street, street, p["wall"])


def _corner_balconies(f: _Faces, p: dict) -> np.ndarray:
    ends = (f.position == 0) | (f.position == f.length - 1)
    upper = np.where(ends, p["balcony"], p["window"])
    ground = np.where(f.street, p["window"], p["wall"])
    return np.where(f.floor >= 1, upper, ground)


def _cornice(f: _Faces, p: dict) -> np.ndarray:
    street = np.where((f.floor == 0) & f.left_end, p["door"], p["window"])
    return np.where(f.column_top, p["cornice"], np.where(f.street, street, p["wall"]))


_LEFT_IS_LOW = np.array([LEFT_IS_LOW[d] for d in SIDE_DIRECTIONS])


def _bay_rhythm(f: _Faces, p: dict) -> np.ndarray:
    from_left = np.where(_LEFT_IS_LOW, f.position, f.length - 1 - f.position)
    upper = np.where(from_left % 2 == 0, p["window"], p["wall"])
    ends = (f.position == 0) | (f.position == f.length - 1)
    ground = np.where(ends, p["wall"], p["shopfront"])
    return np.where(f.street, np.where(f.floor >= 1, upper, ground), p["wall"])


RULES: dict[str, RuleSet] = {r.name: r for r in (
    RuleSet("odd_floors", ("wall", "window", "roof", "ground"),
            "window on every side face of an odd floor (z = 1, 3, ...), wall on even floors "
            "(z = 0, 2, ...); street sides play no part; no doors", _odd_floors),
    RuleSet("centred_entrances", ("wall", "window", "door", "roof", "ground"),
            "ground-floor street faces: door at the centre of each run (p = (L-1)//2 and "
            "L//2), window elsewhere; upper-floor street faces: window; other sides: wall",
            _centred_entrances),
    RuleSet("corner_balconies", ("wall", "window", "roof", "balcony", "ground"),
            "upper floors, every side: balcony at both ends of each run (p = 0, L-1), window "
            "elsewhere; ground floor: window on street faces, wall on other sides",
            _corner_balconies),
    RuleSet("cornice", ("wall", "window", "door", "roof", "ground", "cornice"),
            "side faces of each column top: cornice; else ground-floor street faces: door at "
            "the left end of each run (seen from the street), window elsewhere; upper-floor "
            "street faces: window; other sides: wall", _cornice),
    RuleSet("bay_rhythm", ("wall", "window", "shopfront", "roof", "ground"),
            "upper-floor street faces: window at even positions from the left end of each "
            "run (0, 2, 4, ...), wall at odd ones; ground-floor street faces: shopfront, wall "
            "at both ends of each run; other sides: wall", _bay_rhythm),
)}
for _rule in RULES.values():
    Vocabulary(_rule.parts)          # every vocabulary is one proc-ml accepts


def rule(name: str) -> RuleSet:
    if name not in RULES:
        raise ConfigError(f"unknown rule set '{name}' (have {', '.join(RULES)})")
    return RULES[name]


def names_of(labels: np.ndarray, parts) -> np.ndarray:
    """Part indices -> part names (``""`` for -1)."""
    table = np.array(list(parts) + [""], dtype=object)
    labels = np.asarray(labels)
    return table[np.where(labels >= 0, labels, len(table) - 1)]


def indices_of(names: np.ndarray, parts) -> np.ndarray:
    """Part names -> int8 indices into ``parts`` (-1 for ``""``); a name not in ``parts``
    is an error."""
    lookup = {name: i for i, name in enumerate(parts)}
    lookup[""] = NO_PART
    flat = np.asarray(names, dtype=object).reshape(-1)
    missing = sorted({n for n in flat if n not in lookup})
    if missing:
        raise DatasetError(f"parts {missing} are not in the vocabulary {list(parts)}")
    return np.array([lookup[n] for n in flat], dtype=np.int8).reshape(np.shape(names))


def rules_table() -> str:
    """The markdown table of docs/few-shot.md ("The benchmark's rule sets")."""
    lines = ["| rule set | vocabulary | side faces (top: roof, bottom: ground in all) |",
             "|---|---|---|"]
    for r in RULES.values():
        lines.append(f"| `{r.name}` | {', '.join(r.parts)} | {r.summary} |")
    return "\n".join(lines)


# -- datasets -----------------------------------------------------------------------------

#: The massing the rule sets were fixed with (session 4): the grammar's lots before the
#: `island` block was added (session 8), so the benchmark's buildings stay what they were.
MASSING_OVERRIDES = ("facade.blocks={row: 0.3, row_end: 0.15, corner: 0.15, detached: 0.2, "
                     "island: 0.0, archetype: 0.2}",)


def generate_massing(count: int, seed: int, out, grid_size=GRID_SIZE, cell_size: float = CELL_SIZE,
                     overrides=()) -> dict:
    """Facade-grammar buildings (grids only) into ``out``, as ``proc-ml generate buildings
    --formats grids --set grid.size=[..] --set grid.cell_size=..`` writes them, with the
    lots of :data:`MASSING_OVERRIDES`."""
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.procedural import load_generator_config

    size = "[" + ",".join(str(int(n)) for n in grid_size) + "]"
    cfg = load_generator_config(None, [f"grid.size={size}", f"grid.cell_size={cell_size}",
                                       *MASSING_OVERRIDES, *overrides])
    return generate_dataset(cfg, count, seed, out, formats=("grids",), workers=1, progress=False)


def _empty_folder(out) -> Path:
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: exists and is not an empty folder (the builders write new datasets)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _splits(role: str, count: int) -> dict:
    everything = list(range(count))
    if role == "train":
        # few-shot: no labelled building beyond the N, so model selection sees the same N
        return {"train": everything, "val": everything, "test": []}
    if role == "test":
        return {"train": [], "val": [], "test": everything}
    raise ConfigError(f"role must be train or test, got '{role}'")


def _write_dataset(out: Path, generated: Path, parts, role: str, relabel, info: dict) -> dict:
    """Every grid of ``generated`` relabelled (``relabel(record) -> (labels, extra arrays)``)
    into ``out``, then the dataset index for ``parts`` with the role's splits."""
    base = manifest_file.read(generated)
    count = int(base["count"])
    with DatasetIndex(out, parts, ("grids",)) as index:
        for building_id in range(count):
            rec = grid_npz.read(grid_path(generated, building_id))
            labels, more = relabel(rec)
            extras = {**rec.extras, "vocab": np.array(parts), **more}
            grid_npz.write(grid_path(out, building_id), building_id, rec.archetype,
                           rec.occupancy, labels, rec.style, **extras)
            b = BuildingArrays(building_id, rec.archetype, rec.occupancy, labels, rec.style)
            index.add(index_rows(b, len(parts), ("grids",)))
    return index.finish(cell_size=base["cell_size"], grid_size=base["grid_size"], seed=base["seed"],
                        source=f"proc-ml generate + few-shot rule {info['rule']}",
                        style_present=bool(base.get("style_present", True)),
                        archetypes=base["archetypes"], generator=base.get("generator"),
                        extra={"split": _splits(role, count), "few_shot": info})


def _record_street(rec, path) -> tuple[str, ...]:
    sides = rec.street_sides
    if sides is None:
        raise DatasetError(f"{path}: no 'street' extra (the facade grammar writes one)")
    return sides


def build_rule_dataset(rule_name: str, count: int, seed: int, out, role: str = "train",
                       parts=None, grid_size=GRID_SIZE, cell_size: float = CELL_SIZE) -> dict:
    """``count`` facade-grammar buildings (seed ``seed``) labelled by rule set ``rule_name``
    into the empty folder ``out``; return its manifest. ``role`` ``train``: splits train =
    val = every building; ``test``: test = every building. ``parts``: the vocabulary to
    write (default the rule's; a larger one, e.g. a model's parts plus the rule's, holds
    the same labels under other indices)."""
    r = rule(rule_name)
    parts = list(parts or r.parts)
    missing = [p for p in r.parts if p not in parts]
    if missing:
        raise ConfigError(f"parts {parts} lack {missing}, which rule set {r.name} uses")
    Vocabulary(tuple(parts))
    out = _empty_folder(out)

    def relabel(rec):
        names = r.label_names(rec.occupancy, _record_street(rec, out))
        return indices_of(names, parts), {}

    with tempfile.TemporaryDirectory(prefix=".massing-", dir=out.parent) as tmp:
        generate_massing(count, seed, tmp, grid_size, cell_size)
        return _write_dataset(out, Path(tmp), parts, role, relabel,
                              {"rule": r.name, "role": role, "massing_seed": int(seed),
                               "rule_parts": list(r.parts)})


def correction_parts(model_parts, rule_name: str) -> list[str]:
    """The vocabulary of a correction dataset: the model's parts, then the rule's others."""
    return list(model_parts) + [p for p in rule(rule_name).parts if p not in model_parts]


def fixed_faces(wrong: np.ndarray, k: int, seed: int, building_id: int) -> np.ndarray:
    """``bool`` mask of ``min(k, wrong.sum())`` of the ``wrong`` faces, drawn uniformly with
    a generator seeded by (seed, building id, k): the faces an artist corrects."""
    flat = np.flatnonzero(wrong)
    rng = np.random.default_rng([int(seed), int(building_id), int(k), 0xF1])
    chosen = rng.choice(flat, size=min(int(k), flat.size), replace=False) if flat.size else flat
    mask = np.zeros(wrong.size, dtype=bool)
    mask[chosen] = True
    return mask.reshape(wrong.shape)


def build_correction_dataset(rule_name: str, predictor, count: int, k: int, seed: int, out,
                             grid_size=GRID_SIZE, cell_size: float = CELL_SIZE) -> dict:
    """The correction loop's training data: ``count`` new buildings (seed ``seed``)
    labelled by ``predictor`` (``.parts`` and ``.predict(occupancy, street=sides)`` ->
    ``(labels, ...)``, e.g. ``proc_ml.runtime.PartsPredictor`` of the installed model),
    except ``k`` faces per building that the prediction got wrong under rule set
    ``rule_name`` (all of them when fewer), set to the rule's part and marked in
    ``label_fixed``. Vocabulary: ``correction_parts``; splits train = val = all. The
    manifest's ``few_shot.fixed`` lists the faces fixed per building."""
    r = rule(rule_name)
    parts = correction_parts(predictor.parts, rule_name)
    Vocabulary(tuple(parts))
    out = _empty_folder(out)
    fixed_counts, wrong_counts = [], []

    def relabel(rec):
        street = _record_street(rec, out)
        truth = r.label_names(rec.occupancy, street)
        predicted = names_of(predictor.predict(rec.occupancy, street=street)[0], predictor.parts)
        faces = truth != ""
        if not np.array_equal(predicted != "", faces):
            raise DatasetError(f"the predictor labelled other faces than the exterior faces "
                               f"of building {rec.building_id}")
        wrong = faces & (predicted != truth)
        fixed = fixed_faces(wrong, k, seed, rec.building_id)
        names = np.where(fixed, truth, predicted)
        fixed_counts.append(int(fixed.sum()))
        wrong_counts.append(int(wrong.sum()))
        return indices_of(names, parts), {"label_fixed": fixed}

    with tempfile.TemporaryDirectory(prefix=".massing-", dir=out.parent) as tmp:
        generate_massing(count, seed, tmp, grid_size, cell_size)
        info = {"rule": r.name, "role": "train", "massing_seed": int(seed),
                "rule_parts": list(r.parts), "fixed_per_building": int(k)}
        result = _write_dataset(out, Path(tmp), parts, "train", relabel, info)
    # the counts are known once every building is relabelled: record them in the manifest
    result["few_shot"].update(fixed=fixed_counts, wrong=wrong_counts)
    manifest_file.write(out, result)
    return result


# -- scoring --------------------------------------------------------------------------------

def score_names(predicted, truth, parts) -> dict:
    """Face accuracy, macro F1 and per-part scores of predicted part names against the
    truth's, over the faces the truth labels (a predicted name outside ``parts`` counts as
    wrong, under its own name)."""
    from proc_ml.metrics import classification_metrics, confusion_matrix

    predicted = np.asarray(predicted, dtype=object)
    truth = np.asarray(truth, dtype=object)
    faces = truth != ""
    names = list(parts) + sorted({n for n in predicted[faces] if n not in parts})
    t = indices_of(truth[faces], names).astype(np.int64)
    p = indices_of(predicted[faces], names).astype(np.int64)
    k = len(names)
    confusion = confusion_matrix(t, p, k)
    scores = classification_metrics(confusion, names)
    return {"face_accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "per_class": scores["per_class"], "faces": int(faces.sum())}


def score_predictor(predictor, data_dir, split: str = "test", symmetry: str | None = None) -> dict:
    """A predictor (``.parts``, ``.predict(occupancy, street=..., symmetry=...)``) on a split
    of a dataset, scored by part name against the dataset's labels (so its vocabulary may
    differ). ``symmetry``: what the prediction averages over (None: the model's own)."""
    from proc_ml.datasets import open_dataset

    data = open_dataset(data_dir)
    options = {} if symmetry is None else {"symmetry": symmetry}
    predicted, truth = [], []
    for building_id in data.ids(split):
        rec = data.building(building_id)
        labels = predictor.predict(rec.occupancy, street=rec.street_sides or (), **options)[0]
        predicted.append(names_of(labels, predictor.parts).reshape(-1))
        truth.append(names_of(rec.labels, data.parts).reshape(-1))
    if not truth:
        raise DatasetError(f"{data_dir}: split '{split}' holds no buildings")
    return score_names(np.concatenate(predicted), np.concatenate(truth), data.parts)
