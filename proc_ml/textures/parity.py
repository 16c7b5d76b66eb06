"""Label-map inputs for checking an exported pix2pix generator against PyTorch (numpy only)."""

from __future__ import annotations

import numpy as np

from ..procedural.config import default_config
from ..runinfo import ImageInfo
from .images import to_signed
from .palette import Palette, facade_palette
from .pairs import facade_pairs, module_px_for


def _label_maps(info: ImageInfo, count: int, size: int) -> list[np.ndarray]:
    """``count`` square label maps of ``size`` px: generated facades drawn in the run's
    palette (class ids beyond it wrap round), or smooth colour fields without a palette."""
    cfg = default_config()
    ours = facade_palette(cfg["parts"])
    theirs = Palette.from_json(info.palette) if info.palette else None
    module_px = int(info.module_px or 0)        # the run's, when a facade shows at that size
    if not 0 < module_px <= size // 2:
        module_px = module_px_for(size, cfg["grid"]["size"])
    maps, index = [], 0
    while len(maps) < count:
        for _, _, rgb, _ in facade_pairs(cfg, 2, index, size, ours, module_px)[:1]:
            if theirs is not None:
                classes = ours.classes(rgb)
                rgb = theirs.rgb(classes % len(theirs))
            else:
                rng = np.random.default_rng(index)
                rgb = (rgb.astype(np.float64) * rng.uniform(0.5, 1.0, 3)).astype(np.uint8)
            maps.append(rgb)
        index += 1
    return maps


def to_input(images) -> np.ndarray:
    """``uint8[H, W, 3]`` images -> ``float32[B, 3, H, W]`` in [-1, 1]."""
    return to_signed(list(images))


def parity_images(info: ImageInfo, n: int = 3) -> list[tuple[str, np.ndarray]]:
    """Named inputs: a 2x2 tiling (the export example), label maps at the training size,
    a wider size and a batch of two at a taller size (every size a multiple of the stride)."""
    stride = int(info.stride)
    size = int(info.size or stride)
    size = max(size - size % stride, stride)
    maps = _label_maps(info, max(n, 4), size)
    # first, the example the exporter traces: at twice the stride the bottleneck is 2x2,
    # so torch.export keeps height and width symbolic (a size-1 dim would be specialised)
    tiled = np.concatenate([np.concatenate(maps[0:2], axis=1), np.concatenate(maps[2:4], axis=1)], axis=0)
    samples = [(f"label maps tiled {2 * size}x{2 * size}", to_input([tiled]))]
    samples += [(f"label map {size}x{size} #{i}", to_input([m])) for i, m in enumerate(maps[:n])]
    wide = np.concatenate(maps[:2], axis=1)
    samples.append((f"unseen size {size}x{2 * size}", to_input([wide])))
    tall = [np.concatenate(maps[0:2], axis=0), np.concatenate(maps[2:4], axis=0)]
    samples.append((f"unseen size {2 * size}x{size}, batch 2", to_input(tall)))
    return samples
