"""Torch-free inference for the shape nets (PointNet classification / segmentation, VoxNet).

``ShapePredictor(model_path)`` reads what the model needs from its proc-ml metadata
(``task_info``: classes, normalisation, cell size, points per shape, grid resolution) and
prepares every input with the same numpy functions training used
(``proc_ml.datasets.pointclouds``): seeded surface sampling, unit-sphere or cell-unit
coordinates, normals, style, or the centred 32^3 surface occupancy.

* ``classify(shape, top_k) -> [(class, probability), ...]`` (PointNet or VoxNet),
* ``segment(shape, style=None) -> (points, normals, labels, probabilities)`` (PointNet).

``shape`` is a path (mesh or point cloud) or a loaded ``pointclouds.Shape``.
"""

from __future__ import annotations

import os

import numpy as np

from ..datasets.pointclouds import (Shape, load_shape, normalize_for, point_feature_names,
                                    point_features, shape_occupancy, shape_points)
from .. import budget
from ..encoding import STYLE_FEATURES, style_vector
from ..errors import DatasetError, ModelError
from ..runinfo import MAX_POINTS
from .session import Loaded, ModelSession, load_model

KIND = "shape"


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def top_k(probabilities: np.ndarray, names, k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probabilities, kind="stable")[:max(1, k)]
    return [(names[i], float(probabilities[i])) for i in order]


class ShapePredictor(Loaded):
    def __init__(self, model_path: str | os.PathLike, device: str = "auto",
                 intra_op_threads: int = 0, inter_op_threads: int = 0):
        self.model: ModelSession = load_model(model_path, device, intra_op_threads, inter_op_threads)
        self.metadata = meta = self.model.metadata
        if meta.kind != KIND:
            raise ModelError(f"{model_path}: a {meta.kind} model ({meta.task}, {meta.family}), "
                             f"not a shape model (classify / segment)")
        self.info = info = meta.info
        self.classes = list(info.classes)
        self.normalize = info.normalize
        self.cell_size = info.cell_size
        self.num_points = int(info.num_points)
        self.resolution = int(info.resolution)
        if meta.input_kind == "points":
            self.normals = "nx" in meta.input_names
            expected = point_feature_names(self.normals, info.with_style)
            if list(meta.input_names) != expected:
                raise ModelError(f"{model_path}: model inputs {meta.input_names} are not the ones "
                                 f"this proc-ml prepares ({expected}); re-export with this version")

    @property
    def task(self) -> str:
        return self.metadata.task

    @property
    def segments(self) -> bool:
        """True for per-point models (segment), False for per-shape ones (classify)."""
        return self.info.output == "points"

    # -- inputs -------------------------------------------------------------------------
    def _shape(self, shape) -> Shape:
        shape = shape if isinstance(shape, Shape) else load_shape(shape)
        if not shape.is_mesh:
            distinct = len(np.unique(shape.vertices, axis=0))
            if distinct < 3:
                raise DatasetError(f"{shape.path}: the point cloud has {distinct} distinct "
                                   f"point{'s' if distinct != 1 else ''}; a shape needs at least 3")
        return shape

    def _style(self, style):
        if not self.info.with_style:
            return None
        if style is None:
            raise ModelError(f"{self.model.path}: this model was trained with the building style "
                             f"features; pass style ({len(STYLE_FEATURES)} values: "
                             f"{', '.join(STYLE_FEATURES)})")
        return style_vector(style)

    def point_input(self, shape: Shape, style=None, num_points: int | None = None, seed: int = 0):
        """``(float32[1, N, C] input, source points float32[N, 3], normals float32[N, 3])``."""
        count = int(num_points or self.num_points)
        if not 2 <= count <= MAX_POINTS:
            raise ModelError(f"{self.model.path}: points per shape must be between 2 and "
                             f"{MAX_POINTS}, got {count}")
        budget.check(budget.points_bytes(count, self.metadata.n_inputs, self.metadata.family),
                     f"running {self.metadata.family} on {count} points",
                     "sample fewer points (--points)")
        points, normals = shape_points(shape, count, seed)
        try:
            coords = normalize_for(points, self.normalize, self.cell_size)
        except ValueError as exc:
            raise ModelError(f"{self.model.path}: {exc}") from None
        features = point_features(coords, normals if self.normals else None, self._style(style))
        return features[None], points, normals

    def voxel_input(self, shape: Shape) -> np.ndarray:
        return shape_occupancy(shape, self.resolution)[None, None].astype(np.float32)

    # -- predictions -----------------------------------------------------------------------
    def classify(self, shape, k: int = 5, seed: int = 0) -> list[tuple[str, float]]:
        if self.segments:
            raise ModelError(f"{self.model.path}: a {self.task} model segments; use segment")
        shape = self._shape(shape)
        array = (self.voxel_input(shape) if self.metadata.input_kind == "voxels"
                 else self.point_input(shape, seed=seed)[0])
        return top_k(softmax(self.model.run(array)[0]), self.classes, k)

    def segment(self, shape, style=None, num_points: int | None = None, seed: int = 0):
        """``(points, normals, labels int32[N], probabilities float32[N, K])`` in the shape's units."""
        if not self.segments:
            raise ModelError(f"{self.model.path}: a {self.task} model classifies; use classify")
        array, points, normals = self.point_input(self._shape(shape), style, num_points, seed)
        probs = softmax(self.model.run(array)[0]).astype(np.float32)
        return points, normals, probs.argmax(axis=1).astype(np.int32), probs
