"""The ``parts`` batch task: building parts for every mesh or grid, through the same
``proc_ml.predict.parts`` logic as ``proc-ml predict building-parts``.

Before the shared logic reads an asset, ``load_asset`` validates it (empty, truncated,
not a mesh, NaN coordinates, no faces, empty scene, size limits) and the voxel grid size
is checked against ``--max-cells``, so a broken or absurd asset fails with one line before
anything large is allocated.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ProcMLError
from ..units import resolve_cell_size
from .assets import AssetError, Limits, asset_error, load_asset
from .items import TaskOutput

#: onnxruntime threads per worker: workers are the parallelism, and one thread everywhere
#: makes local and Ray outputs byte-identical.
WORKER_THREADS = 1


def open_parts(model_path: str, options: dict, limits: Limits):
    """Load the model once (the runtime's cache keeps it) and return the processor."""
    from ..runtime import PartsPredictor

    _import_output_writers(bool(options.get("pictures", False)))
    predictor = PartsPredictor.open(model_path, device=options.get("device", "auto"),
                                    intra_op_threads=WORKER_THREADS)
    cell_size = resolve_cell_size(options.get("cell_size"), model=predictor.cell_size)
    symmetry = predictor.check_symmetry(options.get("symmetry"))
    return _PartsProcessor(predictor, cell_size, limits, bool(options.get("pictures", False)),
                           options.get("up"), options.get("street"), symmetry,
                           options.get("entrance"), options.get("buildings") or "masses")


class _PartsProcessor:
    def __init__(self, predictor, cell_size: float, limits: Limits, pictures: bool,
                 up: str | None, street, symmetry: str, entrance: bool | None = None,
                 buildings: str = "masses"):
        self.predictor, self.cell_size, self.limits = predictor, cell_size, limits
        self.pictures, self.up, self.street, self.symmetry = pictures, up, street, symmetry
        self.entrance, self.buildings = entrance, buildings

    def __call__(self, asset_path: Path, out_dir: Path) -> TaskOutput:
        from ..predict.parts import label_building

        asset = load_asset(asset_path, self.limits)
        if asset.kind == "points":
            raise AssetError("a point cloud: the parts task needs a mesh or a voxel grid .npz")
        if asset.kind == "mesh":
            self.limits.check_cells(grid_shape(asset.vertices, self.cell_size))
        try:
            summary = label_building(self.predictor, asset_path, out_dir, cell_size=self.cell_size,
                                     up=self.up, street=self.street, picture=self.pictures,
                                     symmetry=self.symmetry, entrance=self.entrance,
                                     buildings=self.buildings)
        except ProcMLError as exc:
            raise asset_error(exc, asset_path) from None
        return TaskOutput(list(summary["files"]), _short_summary(summary))


def _import_output_writers(pictures: bool) -> None:
    """Load what writing outputs needs up front, so the first asset's time (and --timeout)
    covers the asset rather than imports of the mesh exporters (and matplotlib)."""
    from ..formats.labelled_mesh import preload

    preload()
    if pictures:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.figure  # noqa: F401
        import mpl_toolkits.mplot3d  # noqa: F401


def grid_shape(vertices: np.ndarray, cell_size: float) -> tuple[int, ...]:
    """Cells per axis of the grid a mesh voxelises to (same rule as ``proc_ml.voxelize``)."""
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    return tuple(max(1, math.ceil(e / cell_size - 1e-6)) for e in extent)


def _short_summary(summary: dict) -> dict:
    keys = ("grid_shape", "cells", "faces", "faces_per_part", "mean_confidence", "accuracy",
            "rotation_deg", "street", "notes")
    return {k: summary[k] for k in keys if summary.get(k) is not None}
