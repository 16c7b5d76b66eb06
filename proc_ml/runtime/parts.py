"""``PartsPredictor``: building parts for occupancy grids, from any exported parts model.

Used by the CLI, the DCC adapters and batch jobs alike. Inputs are encoded with the same
``proc_ml.encoding`` functions training used; outputs are decoded to one part per
exterior face. Style rule: a style-aware model needs the 9 style features (``ModelError``
without them); a massing-only model ignores a style it is given, so the same call works
for dataset grids (which always carry a style) and for bare massing.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .. import budget
from ..encoding import (NEIGHBOUR_CHANNEL, STYLE_FEATURES, adjacency_feature_names,
                        adjacency_features, apply_entrance_rule, decode_cell_logits,
                        decode_grid_logits, face_mask, grid_inputs, pad_to_stride, parse_street,
                        street_vector, style_street_sides, style_vector, unknown_grid_inputs)
from ..errors import DatasetError, ModelError
from ..grid import NO_PART, buildings as building_boxes, check_occupancy
from ..symmetry import check_symmetry, transforms, turn, turn_sides, unturn_faces
from .batching import DEFAULT_GRID_BATCH, run_cell_sets, run_grids
from .session import Loaded, ModelSession, load_model

KIND = "parts"


class PartsPredictor(Loaded):
    """``predict(occupancy, style=None, street=None) -> (labels int8[X,Y,Z,6],
    probs float32[X,Y,Z,6,K])``.

    Street sides (``street``: e.g. ``("+x", "-y")``, what an artist knows) feed a model that
    takes them (``with_street``); a style-aware model takes one street side inside its style
    (``street`` then replaces the style's street, its first side if several); a massing-only
    model cannot use them (``street_note`` says so in one line).

    ``symmetry`` of ``predict``/``predict_many`` (``none``, ``rotate``, ``dihedral``; None:
    the model's own, ``PartsInfo.symmetry``): predict the building in each of that
    symmetry's turns (and mirror images), turn the probabilities back and average them; the
    labels are the argmax of the average (with the decision weights). For rules that are
    the same on a turned building (what training with ``dataset.symmetry`` assumes) this
    averages out the network's own orientation noise; it costs one network run per turn
    (4 or 8).

    ``entrance`` (None: the model's own ``entrance_rule``; True/False: on/off): a building
    given street sides (or a style with its street side) whose street ground floor got no
    door face gets one on the face with the highest door probability
    (``encoding.apply_entrance_rule``; the labels change, the probabilities do not).

    ``separate`` (default True): a grid holding several masses standing apart
    (``grid.masses``: several buildings in one mesh, footprints apart) is labelled mass by
    mass, each in a grid of its own from its lowest cell up, as the network saw buildings
    in training: each is averaged over its own turns, gets its own entrance, and stands on
    its own ground floor (a building on higher ground in a street mesh too); the other
    masses are its neighbours for a model that reads them. The street sides are the same
    for all. A grid of one mass is labelled as it is.

    ``buildings`` (int[X, Y, Z], a building number on every filled cell; from the pieces of
    the input, ``VoxelGrid.pieces``) says which cells are which building: row houses that
    touch are then labelled one by one too, and the faces between two of them (party walls,
    inside the block) get no part. Numbers over the same ground are one building (a roof or
    a storey modelled as a piece of its own; ``grid.buildings``). With ``separate`` a
    building's own masses standing apart are still labelled apart; without, each group of
    numbers is one building.
    """

    def __init__(self, model_path: str | os.PathLike, device: str = "auto",
                 intra_op_threads: int = 0, inter_op_threads: int = 0):
        self.model: ModelSession = load_model(model_path, device, intra_op_threads,
                                              inter_op_threads)
        self.metadata = self.model.metadata
        meta = self.metadata
        if meta.kind != KIND:
            raise ModelError(f"{model_path}: a {meta.kind} model ({meta.task}, {meta.family}); "
                             f"labelling building parts needs a {KIND} model")
        self.info = meta.info
        if meta.input_kind == "grid":
            unknown = unknown_grid_inputs(meta.input_names)
            if unknown:
                raise ModelError(f"{model_path}: model inputs {unknown} are not ones this proc-ml "
                                 f"encodes; re-export with this version")
        else:
            expected = adjacency_feature_names(self.info.with_style, self.info.with_street)
            if list(expected) != list(meta.input_names):
                raise ModelError(f"{model_path}: model inputs {meta.input_names} are not the ones "
                                 f"this proc-ml encodes ({list(expected)}); re-export with this version")

    @property
    def parts(self) -> list[str]:
        return list(self.info.parts)

    @property
    def with_style(self) -> bool:
        return self.info.with_style

    @property
    def with_street(self) -> bool:
        return self.info.with_street

    @property
    def entrance_rule(self) -> bool:
        """Whether predictions apply the model's entrance rule by default
        (``PartsInfo.entrance_rule``, fitted at export; ``entrance=False`` turns it off)."""
        return bool(self.info.entrance_rule)

    @property
    def symmetry(self) -> str:
        """The model's own symmetry: what ``predict`` averages over by default."""
        return self.info.symmetry

    def check_symmetry(self, symmetry: str | None) -> str:
        """``symmetry`` (None: the model's) when this model can be averaged over it;
        ``ModelError`` (one line) otherwise."""
        if symmetry is None:
            return self.info.symmetry
        try:
            return check_symmetry(symmetry, self.metadata.input_kind, self.metadata.input_names)
        except ValueError as exc:
            raise ModelError(f"{self.model.path}: {exc}") from None

    @property
    def with_neighbours(self) -> bool:
        """The model reads the cells of neighbouring buildings (party walls), optionally."""
        return NEIGHBOUR_CHANNEL in self.metadata.input_names

    @property
    def cell_size(self) -> float | None:
        """Metres per cell of the model's training data (None for models without it)."""
        return self.info.cell_size

    def memory_needed(self, shape) -> int:
        """Estimated peak bytes of predicting a grid of ``shape`` (``proc_ml.budget``)."""
        return budget.parts_grid_bytes(shape, self.metadata.n_inputs, self.info.n_parts,
                                       self.info.stride, self.metadata.input_kind)

    def check_memory(self, shape) -> None:
        """``LimitError`` (one line) when a grid of ``shape`` would not fit the budget."""
        dims = "x".join(str(int(n)) for n in shape)
        budget.check(self.memory_needed(shape), f"labelling a {dims} grid",
                     "a larger cell size (--cell-size) makes fewer cells")

    def street_note(self, street) -> str | None:
        """One line when ``street`` sides are given but cannot be used as given, or when a
        street-aware model is given none (it then labels every side as a back or side
        facade: on the real development buildings that scores below the geometry rule)."""
        sides = parse_street(street)
        if not sides and self.with_street:
            return ("no street sides given: this model then treats every side as a back or side "
                    "facade (sparse or no openings, no entrance); give the sides facing the "
                    "street, e.g. -y")
        if not sides or self.with_street:
            return None
        if self.with_style:
            if len(sides) > 1:
                return (f"street sides {', '.join(sides)}: this style-aware model takes one street "
                        f"side; used {sides[0]}")
            return None
        return (f"street sides {', '.join(sides)} not used: {self.info.family} is a massing-only "
                f"model without a street input")

    def _inputs(self, style, street):
        """(style vector or None, street sides or None) as this model takes them."""
        sides = parse_street(street) if street is not None else ()
        if self.with_street:
            return None, sides
        if not self.with_style:
            return None, None
        if style is None:
            raise ModelError(f"{self.model.path}: this model was trained with style features; "
                             f"pass style ({len(STYLE_FEATURES)} values: {', '.join(STYLE_FEATURES)}) "
                             f"or use a massing-only model")
        vec = style_vector(style).copy()
        if sides:
            vec[:4] = street_vector(sides[:1])
        return vec, None

    def predict(self, occupancy: np.ndarray, style=None, street=None,
                neighbours=None, symmetry: str | None = None,
                entrance: bool | None = None, separate: bool = True,
                buildings=None) -> tuple[np.ndarray, np.ndarray]:
        """``neighbours``: bool[X, Y, Z] cells of neighbouring buildings, for a model that
        reads them (``with_neighbours``; ignored otherwise). ``symmetry``, ``entrance``,
        ``separate`` and ``buildings``: see the class."""
        return self.predict_many([occupancy], [style], [street], neighbours=[neighbours],
                                 symmetry=symmetry, entrance=entrance, separate=separate,
                                 buildings=None if buildings is None else [buildings])[0]

    def predict_many(self, occupancies: Sequence[np.ndarray], styles: Sequence | None = None,
                     streets: Sequence | None = None, batch_size: int = DEFAULT_GRID_BATCH,
                     neighbours: Sequence | None = None,
                     symmetry: str | None = None,
                     entrance: bool | None = None,
                     separate: bool = True,
                     buildings: Sequence | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Predict many buildings; same-size grids share a batch, cells share chunks."""
        symmetry = self.check_symmetry(symmetry)
        n = len(occupancies)
        styles = list(styles) if styles is not None else [None] * n
        streets = list(streets) if streets is not None else [None] * n
        neighbours = list(neighbours) if neighbours is not None else [None] * n
        buildings = list(buildings) if buildings is not None else [None] * n
        if not len(styles) == len(streets) == len(neighbours) == len(buildings) == n:
            raise ValueError(f"got {n} occupancies, {len(styles)} styles, {len(streets)} streets, "
                             f"{len(neighbours)} neighbour grids and {len(buildings)} building grids")
        occs = [_occupancy(o) for o in occupancies]
        for occ in occs:
            self.check_memory(occ.shape)
        if separate or any(b is not None for b in buildings):
            return self._predict_buildings(occs, styles, streets, neighbours, batch_size,
                                        symmetry, entrance, buildings, separate)
        inputs = [self._inputs(style, street) for style, street in zip(styles, streets)]
        if symmetry == "none":
            results = self._predict(occs, inputs, batch_size, neighbours,
                                    self.info.decision_weights)
        else:
            results = self._predict_averaged(occs, inputs, batch_size, neighbours,
                                             transforms(symmetry))
        if self.entrance_rule if entrance is None else entrance:
            door = self.parts.index("door") if "door" in self.parts else None
            for (labels, probs), (style, street) in zip(results, inputs):
                sides = street if street is not None else \
                    (style_street_sides(style) if style is not None else ())
                if door is not None and sides:
                    apply_entrance_rule(labels, probs, sides, door)
        return results

    def _predict_buildings(self, occs, styles, streets, neighbours, batch_size, symmetry,
                        entrance, buildings, separate):
        """``predict_many`` with each grid's buildings (``buildings`` and, with ``separate``,
        the masses standing apart) labelled on their own, then put back in place."""
        items, places = [], []          # one item per building (per grid of one building)
        for i, (occ, style, street, nb) in enumerate(zip(occs, styles, streets, neighbours)):
            try:
                found = building_boxes(occ, buildings[i], separate)
            except ValueError as exc:
                raise ModelError(str(exc)) from None
            if len(found) <= 1:
                places.append((i, None, None))
                items.append((occ, style, street, nb))
                continue
            nb = None if nb is None else np.asarray(nb, dtype=bool)
            if nb is not None and nb.shape != occ.shape:
                raise ModelError(f"neighbours grid {list(nb.shape)} differs from the occupancy "
                                 f"grid {list(occ.shape)}")
            for box, own in found:
                others = occ[box] & ~own          # the other buildings are its neighbours
                places.append((i, box, own))
                items.append((own, style, street, others if nb is None else others | nb[box]))
        out = self.predict_many([o for o, *_ in items], [s for _, s, _, _ in items],
                                [t for *_, t, _ in items], batch_size,
                                [b for *_, b in items], symmetry, entrance, separate=False)
        results: list = [None] * len(occs)
        for (i, box, own), (labels, probs) in zip(places, out):
            if box is None:
                results[i] = (labels, probs)
                continue
            if results[i] is None:
                shape = occs[i].shape
                results[i] = (np.full(shape + (6,), NO_PART, dtype=labels.dtype),
                              np.zeros(shape + probs.shape[-2:], dtype=probs.dtype))
            results[i][0][box][own] = labels[own]
            results[i][1][box][own] = probs[own]
        for occ, (labels, probs) in zip(occs, results):
            inner = ~face_mask(occ)               # a party wall between two buildings
            labels[inner] = NO_PART
            probs[inner] = 0.0
        return results

    def _predict(self, occs, inputs, batch_size, neighbours, weights):
        if self.metadata.input_kind == "grid":
            return self._predict_grids(occs, inputs, batch_size, neighbours, weights)
        return self._predict_cells(occs, inputs, weights)

    def _predict_averaged(self, occs, inputs, batch_size, neighbours, views):
        """Mean probabilities over ``views`` (``(quarter_turns, mirror)``; orientation-free
        inputs only: no style, the street sides and neighbours turn with the building)."""
        sums = None
        for k, mirror in views:
            turned_inputs = [(None, None if street is None else turn_sides(street, k, mirror))
                             for _, street in inputs]
            turned_nb = [None if nb is None else turn(np.asarray(nb, dtype=bool), k, mirror)
                         for nb in neighbours]
            out = self._predict([turn(o, k, mirror) for o in occs], turned_inputs, batch_size,
                                turned_nb, None)
            probs = [unturn_faces(p, k, mirror) for _, p in out]
            if sums is None:
                sums = probs
                continue
            for total, view in zip(sums, probs):
                total += view
        weights = self.info.decision_weights
        results = []
        for occ, probs in zip(occs, sums):
            probs /= np.float32(len(views))
            scored = probs if weights is None else probs * np.asarray(weights, dtype=np.float32)
            labels = scored.argmax(axis=-1).astype(np.int8)
            labels[~face_mask(occ)] = NO_PART
            results.append((labels, probs))
        return results

    def _predict_grids(self, occs, inputs, batch_size, neighbours, weights):
        stride = self.info.stride
        names = self.metadata.input_names
        try:
            grids = [pad_to_stride(grid_inputs(names, o, style, street, nb), stride)
                     for o, (style, street), nb in zip(occs, inputs, neighbours)]
        except DatasetError as exc:
            raise ModelError(f"{self.model.path}: {exc}") from None
        logits = run_grids(self.model, grids, batch_size)
        return [decode_grid_logits(lg, o, self.info.n_parts, weights) for lg, o in zip(logits, occs)]

    def _predict_cells(self, occs, inputs, weights):
        encoded = [adjacency_features(o, style, street=street) for o, (style, street) in zip(occs, inputs)]
        logits = run_cell_sets(self.model, [feats for _, feats in encoded])
        return [decode_cell_logits(lg, coords, o, self.info.n_parts, weights)
                for lg, (coords, _), o in zip(logits, encoded, occs)]


def _occupancy(occupancy) -> np.ndarray:
    try:
        occ = check_occupancy(occupancy)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if not occ.any():
        raise ModelError(f"the occupancy grid ({'x'.join(map(str, occ.shape))} cells) is empty: "
                         f"nothing to label (no cell centre lies inside the input: a mesh "
                         f"thinner than one cell, flat, or without an inside? try a smaller "
                         f"--cell-size)")
    return occ


def face_accuracy(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy over the faces the ground truth labels, overall and per true part."""
    mask = truth != NO_PART
    correct = (predicted == truth) & mask
    per_part = {}
    for part in np.unique(truth[mask]):
        sel = truth == part
        per_part[int(part)] = float(correct[sel].sum() / sel.sum())
    total = int(mask.sum())
    return {"faces": total, "correct": int(correct.sum()),
            "accuracy": float(correct.sum() / total) if total else 0.0, "per_part": per_part}
