"""Synthetic photo-like facade pairs (numpy + Pillow), for tests and benchmarks of the pix2pix
data path on real-photo layouts without downloading a dataset.

Each pair is a colour-coded label map (background sky band, wall, a grid of windows, a
door; written as an RGBA PNG, as real label sets often are) and a "photo" of the same
layout: a tinted wall under a vertical light gradient, glass with a sky reflection,
window frames, fine grain, softened edges, stored as JPEG. Sizes need not be square.
Layouts: ``labels`` (``labels/``, ``images/``, ``palette.txt``) or ``side-by-side``
(``train/`` and ``test/`` of A|B images, A the label map; no ``val/``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..fileio import write_bytes, write_text
from .palette import Palette

PHOTO_PALETTE = Palette(("background", "wall", "window", "door"),
                        ((0, 0, 0), (200, 190, 170), (70, 130, 200), (150, 80, 40)))
LAYOUTS = ("labels", "side-by-side")


def _class_colours(palette: Palette, wall: str) -> np.ndarray:
    """Colours of the four drawn classes (background, wall, window, door) in ``palette``."""
    try:
        return np.array([palette.colours[palette.index(n)] for n in ("background", wall, "window", "door")],
                        dtype=np.uint8)
    except ValueError:
        raise ValueError(f"the palette needs background, {wall}, window and door classes, "
                         f"has {', '.join(palette.names)}") from None


def synthetic_pair(rng: np.random.Generator, width: int, height: int,
                   palette: Palette = PHOTO_PALETTE, wall: str = "wall") -> tuple[np.ndarray, np.ndarray]:
    """``(labels, photo)``, both ``uint8[height, width, 3]``; the label map is drawn in
    ``palette`` (its ``background``, ``wall``, ``window`` and ``door`` classes)."""
    from PIL import Image, ImageFilter

    classes = np.full((height, width), 1, dtype=np.int64)
    sky = int(rng.integers(height // 10, height // 4))
    classes[:sky] = 0
    rows, cols = int(rng.integers(2, 6)), int(rng.integers(3, 8))
    cell_h, cell_w = (height - sky) / rows, width / cols
    win_h, win_w = cell_h * rng.uniform(0.35, 0.6), cell_w * rng.uniform(0.3, 0.6)
    for r in range(rows - 1):
        for c in range(cols):
            y0 = int(sky + r * cell_h + (cell_h - win_h) / 2)
            x0 = int(c * cell_w + (cell_w - win_w) / 2)
            classes[y0:y0 + int(win_h), x0:x0 + int(win_w)] = 2
    door_w = int(cell_w * 0.5)
    x0 = int(rng.integers(0, max(width - door_w, 1)))
    classes[int(height - cell_h * 0.8):, x0:x0 + door_w] = 3
    labels = _class_colours(palette, wall)[classes]

    y = np.linspace(0.0, 1.0, height)[:, None, None]
    tint = rng.uniform(0.75, 1.15, 3)
    wall = np.array([196.0, 180.0, 160.0]) * tint * (1.05 - 0.25 * y)
    glass = np.array([40.0, 60.0, 80.0]) + 90.0 * (1.0 - y) * np.array([0.6, 0.8, 1.0])
    door = np.array([90.0, 50.0, 30.0]) * tint
    sky_rgb = np.array([150.0, 185.0, 230.0]) * (0.9 + 0.2 * y)
    photo = np.where(classes[..., None] == 1, wall, 0.0)
    photo = np.where(classes[..., None] == 2, glass, photo)
    photo = np.where(classes[..., None] == 3, door, photo)
    photo = np.where(classes[..., None] == 0, sky_rgb, photo)
    photo += rng.normal(0.0, 6.0, photo.shape)
    image = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    return labels, np.asarray(image, dtype=np.uint8)


def _png(array: np.ndarray, rgba: bool) -> bytes:
    from PIL import Image

    im = Image.fromarray(array)
    if rgba:
        im = im.convert("RGBA")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_synthetic_photos(out, count: int, width: int = 768, height: int = 512, *,
                           layout: str = "labels", seed: int = 0, start: int = 0,
                           test_fraction: float = 0.1, palette: Palette = PHOTO_PALETTE,
                           wall: str = "wall") -> dict:
    """Write pairs ``start .. start + count - 1`` (each drawn from ``[seed, index]``, so
    a set can be written in parallel pieces) into ``out`` (all writes atomic). Label maps
    are drawn in ``palette`` (``wall`` names its wall class, e.g. ``plaster`` in
    ``facade_palette()``), which is written as ``palette.txt``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    out = Path(out)
    for index in range(start, start + count):
        labels, photo = synthetic_pair(np.random.default_rng([seed, index]), width, height, palette, wall)
        name = f"p{index:06d}"
        if layout == "labels":
            write_bytes(out / "labels" / f"{name}.png", _png(labels, rgba=True))
            write_bytes(out / "images" / f"{name}.jpg", _jpeg(photo))
        else:
            split = "test" if np.random.default_rng([seed, index, 1]).random() < test_fraction else "train"
            write_bytes(out / split / f"{name}.jpg", _jpeg(np.concatenate([labels, photo], axis=1)))
    if layout == "labels":
        write_text(out / "palette.txt", "".join(f"{n} = {c[0]}:{c[1]}:{c[2]}\n" for n, c in
                                                zip(palette.names, palette.colours)))
    return {"out": str(out), "count": count, "size": [width, height], "layout": layout}
