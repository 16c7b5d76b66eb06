"""Paired facade images from generated buildings: label map + procedural texture.

``write_facade_pairs(cfg, count, seed, out, size)`` writes, for every side facade of
``count`` generated buildings, ``labels/NAME.png`` (palette colours) and
``images/NAME.png`` (the procedural texture), plus ``palette.json`` and the manifest
``facades.json`` (palette, size, module size, seed, split per pair). The layout is the
"label folders" layout ``proc_ml.datasets.pix2pix`` reads, so real paired data in the
same layout trains the same way. Splits are by building (``proc_ml.formats.manifest.split_ids``):
held-out facades come from buildings never seen in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..formats import facades
from ..formats.manifest import split_ids
from ..procedural import generate_building
from .images import write_png
from .layout import front_views
from .palette import BACKGROUND, MATERIALS, facade_palette
from .render import render_facade

SIZES = (128, 256)
#: Pixels per facade module: the texture resolution a trained model paints at.
DEFAULT_MODULE_PX = 16
_MATERIAL_STREAM = 0x7E47


def module_px_for(size: int, grid_size) -> int:
    """Pixels per module so the largest facade the grid allows fits the image."""
    return max(1, int(size) // max(int(n) for n in grid_size))


def building_material(seed: int, index: int) -> str:
    rng = np.random.default_rng([int(seed), int(index), _MATERIAL_STREAM])
    return MATERIALS[int(rng.integers(len(MATERIALS)))]


def place_on_canvas(image: np.ndarray, size: int, fill) -> np.ndarray:
    """``image`` centred horizontally, standing on the bottom edge of a square canvas;
    a larger facade is cropped to its bottom centre (ground floor included)."""
    h, w = image.shape[:2]
    if h > size or w > size:
        left = max((w - size) // 2, 0)
        image = image[max(h - size, 0):, left:left + size]
        h, w = image.shape[:2]
    canvas = np.empty((size, size) + image.shape[2:], dtype=image.dtype)
    canvas[...] = fill
    top, left = size - h, (size - w) // 2
    canvas[top:top + h, left:left + w] = image
    return canvas


def facade_pairs(cfg: dict, seed: int, index: int, size: int, palette, module_px: int):
    """``[(direction, material, label rgb, texture rgb)]`` for one generated building."""
    building = generate_building(cfg, seed, index)
    material = building_material(seed, index)
    background = palette.index(BACKGROUND)
    out = []
    for facade in front_views(building.occupancy, building.labels):
        rng = np.random.default_rng([int(seed), int(index), 1 + facade.direction])
        classes, texture = render_facade(facade, cfg["parts"], palette, material, module_px, rng)
        labels = palette.rgb(place_on_canvas(classes, size, background))
        out.append((facade.direction, material, labels, place_on_canvas(texture, size, 0)))
    return out


def write_facade_pairs(cfg: dict, count: int, seed: int, out, size: int = 256,
                       module_px: int = DEFAULT_MODULE_PX, progress: bool = False) -> dict:
    if size not in SIZES:
        from ..errors import ConfigError
        raise ConfigError(f"--size must be one of {', '.join(map(str, SIZES))}, got {size}")
    out = Path(out)
    palette = facade_palette(cfg["parts"])
    if not 1 <= module_px <= size:
        from ..errors import ConfigError
        raise ConfigError(f"--module-px must be between 1 and the image size {size}, got {module_px}")
    split_of = {i: name for name, ids in split_ids(count, seed, cfg["split"]["val"],
                                                    cfg["split"]["test"]).items() for i in ids}
    pairs = []
    indices = range(count)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="facades", unit="building")
    for index in indices:
        for direction, material, labels, texture in facade_pairs(cfg, seed, index, size, palette, module_px):
            name = f"b{index:06d}_d{direction}"
            write_png(out / facades.LABELS_DIR / f"{name}.png", labels)
            write_png(out / facades.IMAGES_DIR / f"{name}.png", texture)
            pairs.append({"name": name, "split": split_of[index], "building": index,
                          "direction": direction, "material": material})
    manifest = {"format": facades.FORMAT, "format_version": facades.FORMAT_VERSION, "size": size,
                "module_px": module_px, "seed": int(seed), "buildings": int(count),
                "count": len(pairs), "palette": palette.to_json(),
                "splits": {s: sum(p["split"] == s for p in pairs) for s in ("train", "val", "test")},
                "pairs": pairs, "generator": cfg}
    facades.write_palette(out, palette)
    facades.write_manifest(out, manifest)
    return manifest
