"""Torch-free pix2pix inference: label maps -> textures (numpy + onnxruntime only).

``TextureGenerator(path)`` wraps an exported pix2pix generator (``proc-ml export onnx``
of a ``proc-ml train pix2pix`` run; an ``image`` model) in the shared ``ModelSession``:
label maps are padded to the generator's stride with the background colour, scaled to
[-1, 1], run, cropped back and returned as ``uint8`` RGB. Textured buildings are made
from it by ``proc_ml.predict.texture`` (files) and ``proc_ml.dcc.texture`` (DCC quads).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import ModelError
from ..textures.images import from_signed, to_signed
from ..textures.palette import BACKGROUND, Palette
from .session import Loaded, load_model

KIND = "image"


#: Label maps within this factor of a photo model's training size get no scale note.
SCALE_SLACK = 1.5


class TextureGenerator(Loaded):
    def __init__(self, model_path: str | os.PathLike, device: str = "auto", intra_op_threads: int = 0,
                 inter_op_threads: int = 0):
        self.session = load_model(model_path, device, intra_op_threads, inter_op_threads)
        meta = self.session.metadata
        if meta.kind != KIND:
            raise ModelError(f"{model_path}: a {meta.kind} model ({meta.task}, {meta.family}); "
                             f"texturing needs a pix2pix generator (an image model)")
        self.info = meta.info
        self.stride = int(self.info.stride)
        palette = self.info.palette
        self.palette = Palette.from_json(palette, str(model_path)) if palette else None
        self.module_px = self.info.module_px

    @property
    def provider(self) -> str:
        return self.session.providers[0]

    def _pad_colour(self) -> np.ndarray:
        if self.palette is not None and BACKGROUND in self.palette.names:
            return np.array(self.palette.colours[self.palette.index(BACKGROUND)], dtype=np.uint8)
        return np.zeros(3, dtype=np.uint8)

    def check_labels(self, labels: np.ndarray, source: str = "label map") -> np.ndarray:
        """The label map to paint: refused when drawn in colours the model's palette does
        not have; with the model's palette tolerance (trained on JPEG label maps), colours
        near a palette colour become it."""
        if self.palette is None:
            return labels
        tolerance = float(getattr(self.info, "palette_tolerance", 0.0) or 0.0)
        if tolerance > 0:
            return self.palette.snap(labels, tolerance, source)
        self.palette.classes(labels, source)
        return labels

    def scale_note(self, height: int, width: int) -> str | None:
        """A note when a label map is much larger or smaller than the pairs a photo-trained
        model learnt from (resized to ``info.size`` px per image): it paints at the scale it
        learnt per pixel, so the texture's detail and ``proc-ml evaluate``'s figures (measured
        at that size) no longer match. None for procedural models (their scale is
        ``module_px``) and for maps near the training size."""
        if self.module_px or not self.info.size:
            return None
        ratio = max(height, width) / float(self.info.size)
        if 1 / SCALE_SLACK <= ratio <= SCALE_SLACK:
            return None
        return (f"the model learnt from pairs resized to {self.info.size} px; this {width}x{height} "
                f"map is painted at {ratio:.1f}x that scale (resize label maps to about "
                f"{self.info.size} px to match its training and proc-ml evaluate)")

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
            y = self.session.run(to_signed(canvas[None]))[0, :, :h, :w]
            out.append(from_signed(y))
        return out

    __call__ = predict_many
