"""The ``texture`` batch task: a textured GLB for every mesh or grid, through the same
``proc_ml.runtime.textures.texture_building_file`` as ``proc-ml predict texture --building``.

Per asset: a mesh is voxelised (``--cell-size``, default the parts model's training cell
size) and labelled by the building-parts model given with ``--parts-model``; a proc-ml grid
``.npz`` uses the part labels it carries (or the parts model's, when one is given). Every
side face goes to a facade sheet, the sheets are drawn as label maps and turned into
textures by the pix2pix generator (``--model``), packed into one atlas, and the building is
written as ``textured.glb`` with ``textured_atlas.png`` and ``textured_labels.png`` beside
it (all atomic). numpy + onnxruntime (+ trimesh/Pillow) only, never torch.
"""

from __future__ import annotations

from pathlib import Path

from .assets import AssetError, Limits, load_asset
from .items import TaskOutput
from .parts import WORKER_THREADS, _without_path, grid_shape

OUTPUT_NAME = "textured.glb"


def open_texture(model_path: str, options: dict, limits: Limits):
    """Load the generator (and the parts model) once per worker and return the processor."""
    from ..predict_parts import DEFAULT_CELL_SIZE
    from ..runtime import PartsPredictor
    from ..runtime.textures import TextureGenerator

    from ..formats.labelled_mesh import preload

    preload()      # mesh IO up front: --timeout times the asset

    device = options.get("device", "auto")
    TextureGenerator(model_path, device=device, threads=WORKER_THREADS)   # checks it is pix2pix
    parts_model = options.get("parts_model")
    cell_size = options.get("cell_size")
    if parts_model:
        predictor = PartsPredictor(parts_model, device=device, intra_op_threads=WORKER_THREADS)
        cell_size = cell_size or predictor.metadata.cell_size
    return _TextureProcessor(model_path, parts_model, float(cell_size or DEFAULT_CELL_SIZE),
                             str(options.get("material") or "plaster"), device, limits)


class _TextureProcessor:
    def __init__(self, model_path: str, parts_model: str | None, cell_size: float, material: str,
                 device: str, limits: Limits):
        self.model_path, self.parts_model, self.cell_size = model_path, parts_model, cell_size
        self.material, self.device, self.limits = material, device, limits

    def __call__(self, asset_path: Path, out_dir: Path) -> TaskOutput:
        from ..errors import ProcMLError
        from ..runtime.textures import texture_building_file

        asset = load_asset(asset_path, self.limits)
        if asset.kind == "points":
            raise AssetError("a point cloud: the texture task needs a mesh or a voxel grid .npz")
        if asset.kind == "mesh":
            if not self.parts_model:
                raise AssetError("a mesh has no part labels: pass --parts-model (a building-parts "
                                 "ONNX model) to label it before texturing")
            self.limits.check_cells(grid_shape(asset.vertices, self.cell_size))
        out = out_dir / OUTPUT_NAME
        try:
            summary = texture_building_file(self.model_path, asset_path, out,
                                            parts_model=self.parts_model, material=self.material,
                                            device=self.device, threads=WORKER_THREADS,
                                            cell_size=self.cell_size if asset.kind == "mesh" else None)
        except ProcMLError as exc:
            raise AssetError(_without_path(str(exc), asset_path)) from None
        files = [OUTPUT_NAME, f"{out.stem}_atlas.png", f"{out.stem}_labels.png"]
        keys = ("faces", "facades", "atlas", "module_px", "material", "parts_from")
        return TaskOutput(files, {k: summary[k] for k in keys})
