"""The ``texture`` batch task: a textured GLB for every mesh or grid, through the same
``proc_ml.predict.texture.texture_building_file`` as ``proc-ml predict texture --building``,
and a texture PNG for every label image (``.png``), through ``texture_image_file`` as
``proc-ml predict texture --input``.

A label image (a colour-coded facade label map in the model's palette) becomes
``texture.png`` of the same size; a colour outside the palette fails that asset with one
line naming the colour and a pixel.

Per asset: a mesh is voxelised (``--cell-size``, default the parts model's training cell
size, ``proc_ml.units``) and labelled by the building-parts model given with
``--parts-model``; a proc-ml grid ``.npz`` uses the part labels it carries (or the parts
model's, when one is given). Every side face goes to a facade sheet, the sheets are drawn
as label maps and turned into textures by the pix2pix generator (``--model``), packed into
one atlas, and the building is written as ``textured.glb`` with ``textured_atlas.png`` and
``textured_labels.png`` beside it (all atomic). numpy + onnxruntime (+ trimesh/Pillow)
only, never torch.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ProcMLError
from ..units import resolve_cell_size
from .assets import AssetError, Limits, asset_error, load_asset
from .items import TaskOutput
from .parts import WORKER_THREADS, _import_output_writers, grid_shape

OUTPUT_NAME = "textured.glb"
IMAGE_OUTPUT_NAME = "texture.png"
#: Label-image asset types (a label map -> a texture PNG).
LABEL_EXTENSIONS = ("png",)


def open_texture(model_path: str, options: dict, limits: Limits):
    """Load the generator (and the parts model) once per worker and return the processor."""
    from ..runtime import PartsPredictor
    from ..runtime.textures import TextureGenerator

    _import_output_writers(False)
    device = options.get("device", "auto")
    generator = TextureGenerator.open(model_path, device, WORKER_THREADS)
    parts = options.get("parts_model")
    predictor = PartsPredictor.open(parts, device, WORKER_THREADS) if parts else None
    cell_size = resolve_cell_size(options.get("cell_size"),
                                  model=predictor.cell_size if predictor else None)
    return _TextureProcessor(generator, predictor, cell_size,
                             str(options.get("material") or "plaster"), limits, options.get("up"))


class _TextureProcessor:
    def __init__(self, generator, parts_model, cell_size: float, material: str, limits: Limits,
                 up: str | None):
        self.generator, self.parts_model, self.cell_size = generator, parts_model, cell_size
        self.material, self.limits, self.up = material, limits, up

    def __call__(self, asset_path: Path, out_dir: Path) -> TaskOutput:
        from ..predict.texture import building_outputs, texture_building_file

        if Path(asset_path).suffix.lower().lstrip(".") in LABEL_EXTENSIONS:
            return self._label_image(Path(asset_path), out_dir)
        asset = load_asset(asset_path, self.limits)
        if asset.kind == "points":
            raise AssetError("a point cloud: the texture task needs a mesh or a voxel grid .npz")
        if asset.kind == "mesh":
            if self.parts_model is None:
                raise AssetError("a mesh has no part labels: pass --parts-model (a building-parts "
                                 "ONNX model) to label it before texturing")
            self.limits.check_cells(grid_shape(asset.vertices, self.cell_size))
        out = out_dir / OUTPUT_NAME
        try:
            summary = texture_building_file(self.generator, asset_path, out,
                                            parts_model=self.parts_model, material=self.material,
                                            cell_size=self.cell_size if asset.kind == "mesh" else None,
                                            up=self.up)
        except ProcMLError as exc:
            raise asset_error(exc, asset_path) from None
        files = [p.name for p in building_outputs(out)]
        keys = ("faces", "facades", "atlas", "module_px", "material", "parts_from", "grid_shape")
        return TaskOutput(files, {k: summary[k] for k in keys})

    def _label_image(self, asset_path: Path, out_dir: Path) -> TaskOutput:
        from ..predict.texture import texture_image_file

        self.limits.check_bytes(asset_path.stat().st_size)
        try:
            summary = texture_image_file(self.generator, asset_path, out_dir / IMAGE_OUTPUT_NAME)
        except ProcMLError as exc:
            raise asset_error(exc, asset_path) from None
        record = {"size": summary["size"], "source": "label image"}
        if "note" in summary:
            record["notes"] = [summary["note"]]
        return TaskOutput([IMAGE_OUTPUT_NAME], record)
