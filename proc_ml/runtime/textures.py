"""Torch-free pix2pix inference: label maps -> textures, and textured buildings.

``TextureGenerator(path)`` wraps an exported pix2pix generator (``proc-ml export onnx``
of a ``proc-ml train pix2pix`` run) in the shared ``ModelSession``: label maps are padded
to the generator's stride with the background colour, scaled to [-1, 1], run, cropped
back and returned as ``uint8`` RGB. ``texture_building_file`` textures a building read
from a grid ``.npz`` (or any input ``proc-ml predict building-parts`` reads, with a parts
model to label it) and writes a GLB whose atlas is the generator's output.
numpy + onnxruntime (+ trimesh/Pillow for the GLB) only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from ..textures.palette import BACKGROUND, Palette
from .session import load_model

TASK = "pix2pix"


class TextureGenerator:
    def __init__(self, model_path: str | os.PathLike, device: str = "auto", threads: int = 0):
        self.session = load_model(model_path, device, intra_op_threads=threads)
        meta = self.session.metadata
        if meta.task != TASK or meta.input_kind != "image":
            raise ModelError(f"{model_path}: a {meta.task} model ({meta.family}); "
                             f"texturing needs a pix2pix generator")
        self.info = dict(meta.task_info)
        self.stride = int(meta.stride)
        palette = self.info.get("palette")
        self.palette = Palette.from_json(palette, str(model_path)) if palette else None
        self.module_px = self.info.get("module_px")

    @property
    def provider(self) -> str:
        return self.session.providers[0]

    def _pad_colour(self) -> np.ndarray:
        if self.palette is not None and BACKGROUND in self.palette.names:
            return np.array(self.palette.colours[self.palette.index(BACKGROUND)], dtype=np.uint8)
        return np.zeros(3, dtype=np.uint8)

    def check_labels(self, labels: np.ndarray, source: str = "label map") -> None:
        """Refuse a label map drawn in colours the model's palette does not have."""
        if self.palette is not None:
            self.palette.classes(labels, source)

    def predict(self, labels: np.ndarray) -> np.ndarray:
        """``uint8[H, W, 3]`` label map -> ``uint8[H, W, 3]`` texture (any H, W)."""
        return self.predict_many([labels])[0]

    def predict_many(self, label_maps: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One run per label map (sizes differ), each padded to the stride."""
        out = []
        for labels in label_maps:
            labels = np.asarray(labels)
            if labels.ndim != 3 or labels.shape[2] < 3 or labels.dtype != np.uint8:
                raise ModelError(f"label map must be uint8[H, W, 3], got {labels.dtype}{list(labels.shape)}")
            h, w = labels.shape[:2]
            H, W = (-(-h // self.stride) * self.stride, -(-w // self.stride) * self.stride)
            canvas = np.empty((H, W, 3), dtype=np.uint8)
            canvas[...] = self._pad_colour()
            canvas[:h, :w] = labels[..., :3]
            x = canvas.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
            y = self.session.run(np.ascontiguousarray(x))[0, :, :h, :w]
            out.append((np.clip((y.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255) + 0.5).astype(np.uint8))
        return out

    __call__ = predict_many


def texture_building_file(model_path, building_path, out_path, *, parts_model=None,
                          material: str = "plaster", module_px: int | None = None, seed: int = 0,
                          device: str = "auto", threads: int = 0, procedural: bool = False,
                          cell_size: float | None = None) -> dict:
    """Texture the building in ``building_path`` and write ``out_path`` (.glb) plus the
    atlas and its label map beside it (``NAME_atlas.png``, ``NAME_labels.png``).
    ``cell_size``: voxel size for meshes (default: ``predict_parts.read_input``'s)."""
    from ..predict_parts import read_input
    from ..procedural.parts import DEFAULT_PARTS
    from ..textures.building import texture_building
    from ..textures.glb import write_textured_glb
    from ..textures.images import write_png

    item = read_input(building_path, cell_size=cell_size)
    labels, parts = item.truth, item.truth_parts
    if parts_model is not None:
        from .parts import PartsPredictor

        predictor = PartsPredictor(parts_model, device=device, intra_op_threads=threads)
        labels, _ = predictor.predict(item.occupancy, item.style)
        parts = predictor.parts
    if labels is None:
        raise ModelError(f"{building_path}: no part labels in this file; pass --parts-model "
                         f"to predict them with a building-parts model")
    parts = list(parts or DEFAULT_PARTS)
    generator = None if procedural else TextureGenerator(model_path, device, threads)
    px = int(module_px or (generator.module_px if generator else None) or 16)
    built = texture_building(item.occupancy, labels, parts, generator, module_px=px, material=material,
                             cell_size=item.cell_size, seed=seed,
                             palette=generator.palette if generator else None)
    out_path = Path(out_path)
    write_textured_glb(out_path, built.vertices, built.triangles, built.uv, built.atlas.image,
                       name=out_path.stem)
    write_png(out_path.with_name(f"{out_path.stem}_atlas.png"), built.atlas.image)
    write_png(out_path.with_name(f"{out_path.stem}_labels.png"), built.label_atlas.image)
    return {"out": str(out_path), "faces": int(len(built.parts)), "facades": len(built.sheets),
            "atlas": list(built.atlas.size), "module_px": px, "material": material,
            "source": "procedural" if generator is None else generator.provider,
            "parts_from": "model" if parts_model is not None else "file"}


# -- DCC geometry: labelled quads in, UVs per point out -----------------------------------------
class QuadTextures:
    """UVs for the points of labelled quads, and the atlas they sample."""

    def __init__(self, uv, atlas, label_atlas, faces: int, facades: int):
        self.uv, self.atlas, self.label_atlas = uv, atlas, label_atlas
        self.faces, self.facades = faces, facades


def texture_quads(points, polygons, parts, part_names, generator: TextureGenerator | None = None, *,
                  up: str = "z", clockwise: bool = False, material: str = "plaster",
                  module_px: int | None = None, seed: int = 0) -> QuadTextures:
    """UVs (``float32[N, 2]``, one per point) and atlas for the labelled quads a parts
    prediction writes (``proc_ml.dcc.prims.LabelledPrims``: every quad an exterior cell
    face with its own four points, in the DCC frame ``up`` / winding ``clockwise``).

    The grid is recovered from the quads themselves: cell size from their edges, cell and
    direction of each quad from its centre and winding, so any chain of DCC nodes that
    keeps the quads (moving the whole building included) can be textured.
    """
    from ..grid import DIRECTION_VECTORS
    from ..meshing import QUAD_CORNERS, to_z_up
    from ..textures.building import texture_faces

    polygons = np.asarray(polygons, dtype=np.int64)
    if polygons.ndim != 2 or polygons.shape[1] != 4 or not len(polygons):
        raise ModelError("texturing needs the labelled quads of a parts prediction (4 points each)")
    pts = to_z_up(np.asarray(points, dtype=np.float64), up)
    quads = pts[polygons[:, ::-1] if clockwise else polygons]                 # CCW seen from outside
    edges = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    cell = float(np.median(edges))
    normals = np.cross(quads[:, 1] - quads[:, 0], quads[:, 3] - quads[:, 0])
    directions = np.argmax(normals @ DIRECTION_VECTORS.T.astype(np.float64), axis=1)
    aligned = np.abs(np.abs(normals @ DIRECTION_VECTORS[directions].T.astype(np.float64)).diagonal()
                     - cell * cell) <= 1e-3 * cell * cell
    if cell <= 0 or not aligned.all() or np.abs(edges - cell).max() > 1e-3 * cell:
        raise ModelError("texturing needs axis-aligned square quads of one cell size "
                         "(the output of the parts prediction)")
    centres = quads.mean(axis=1) - 0.5 * cell * DIRECTION_VECTORS[directions]
    origin = quads.reshape(-1, 3).min(axis=0)
    cells = np.floor((centres - origin) / cell).astype(np.int64)
    gen = generator
    px = int(module_px or (gen.module_px if gen is not None else None) or 16)
    faces = texture_faces(cells, directions, np.asarray(parts, dtype=np.int64), list(part_names), gen,
                          module_px=px, material=material, seed=seed,
                          palette=gen.palette if gen is not None else None)
    # match each quad's points to its canonical corners by position
    canonical = (cells[:, None, :] + QUAD_CORNERS[directions]) * cell + origin           # [F, 4, 3]
    order = polygons[:, ::-1] if clockwise else polygons
    given = pts[order]
    nearest = np.argmin(((given[:, :, None, :] - canonical[:, None, :, :]) ** 2).sum(-1), axis=2)
    uv = np.zeros((len(pts), 2), dtype=np.float32)
    uv[order.reshape(-1)] = np.take_along_axis(faces.uv, nearest[..., None], axis=1).reshape(-1, 2)
    return QuadTextures(uv, faces.atlas.image, faces.label_atlas.image, len(polygons), len(faces.sheets))


def write_atlas(path, image: np.ndarray) -> str:
    """Write the atlas PNG atomically; returns the path written."""
    from ..textures.images import write_png

    write_png(path, image)
    return str(path)
