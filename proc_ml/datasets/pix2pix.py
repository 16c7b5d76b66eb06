"""Paired image datasets for pix2pix (label map -> texture), in the layouts users have.

Two layouts are read, detected from the folder:

* **label folders**: ``labels/NAME.png`` (colour-coded label maps), ``images/NAME.*`` (the
  matching photo or texture, same size) and ``palette.json`` (a list of
  ``{"name", "colour": [r, g, b]}``). Every label colour must be in the palette; one that
  is not stops with a line naming the file, the colour and a pixel. Splits come from the
  ``facades.json`` manifest ``proc-ml generate facades`` writes, else from a stable hash
  of the name (10 % val, 10 % test).
* **side by side** (the layout of the pix2pix reference datasets): ``train/``, ``val/``,
  ``test/`` folders of images holding A and B side by side (A left). ``direction``
  ``AtoB`` learns A -> B, ``BtoA`` learns B -> A (the CMP facades need ``BtoA``: their A
  is the photo).

Images are returned as ``uint8[H, W, 3]`` (input, target) pairs.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..textures.images import IMAGE_SUFFIXES, read_rgb
from ..formats.facades import (IMAGES_DIR, LABELS_DIR, MANIFEST, PALETTE_FILE, SPLITS,
                               read_manifest, read_palette)
from ..textures.palette import Palette

DIRECTIONS = ("AtoB", "BtoA")


def _images_in(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}


def hash_split(name: str, val: float = 0.1, test: float = 0.1) -> str:
    """A split that depends on the name only (stable across runs and machines)."""
    u = zlib.crc32(name.encode("utf-8")) / 2 ** 32
    return "test" if u < test else "val" if u < test + val else "train"


class PairedImages:
    """A paired dataset: ``names(split)`` and ``pair(name) -> (input, target)``."""

    def __init__(self, root, layout: str, items: dict[str, tuple], splits: dict[str, str],
                 palette: Palette | None, manifest: dict, direction: str = "AtoB"):
        self.root, self.layout = Path(root), layout
        self.items, self.split_of = items, splits
        self.palette, self.manifest, self.direction = palette, manifest, direction

    @property
    def module_px(self) -> int | None:
        return self.manifest.get("module_px")

    def names(self, split: str | None = None) -> list[str]:
        return [n for n in self.items if split in (None, "all") or self.split_of[n] == split]

    def pair(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if self.layout == "labels":
            label_path, image_path = self.items[name]
            labels, image = read_rgb(label_path), read_rgb(image_path)
            if labels.shape != image.shape:
                raise DatasetError(f"{label_path}: size {labels.shape[1]}x{labels.shape[0]} differs "
                                   f"from its image {image_path} ({image.shape[1]}x{image.shape[0]})")
            self.palette.classes(labels, str(label_path))
            return labels, image
        (path,) = self.items[name]
        both = read_rgb(path)
        if both.shape[1] % 2:
            raise DatasetError(f"{path}: side-by-side image width {both.shape[1]} is odd; "
                               f"expected A and B of equal width side by side")
        half = both.shape[1] // 2
        a, b = both[:, :half], both[:, half:]
        return (a, b) if self.direction == "AtoB" else (b, a)


def open_pairs(root, direction: str = "AtoB") -> PairedImages:
    """Open a paired dataset folder in either layout (see the module docstring)."""
    root = Path(root)
    if direction not in DIRECTIONS:
        raise DatasetError(f"direction must be AtoB or BtoA, got {direction!r}")
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if (root / LABELS_DIR).is_dir() and (root / IMAGES_DIR).is_dir():
        return _open_label_folders(root, direction)
    if any((root / s).is_dir() for s in SPLITS):
        return _open_side_by_side(root, direction)
    raise DatasetError(f"{root}: not a paired image dataset (expected labels/ + images/ + "
                       f"palette.json, or train/ val/ test/ folders of side-by-side A|B images)")


def _open_label_folders(root: Path, direction: str) -> PairedImages:
    manifest = read_manifest(root)
    if (root / PALETTE_FILE).is_file():
        palette = read_palette(root / PALETTE_FILE)
    elif "palette" in manifest:
        palette = Palette.from_json(manifest["palette"], str(root / MANIFEST))
    else:
        raise DatasetError(f"{root}: label-map datasets need a {PALETTE_FILE} "
                           f"(a list of {{\"name\": ..., \"colour\": [r, g, b]}})")
    labels, images = _images_in(root / LABELS_DIR), _images_in(root / IMAGES_DIR)
    if not labels:
        raise DatasetError(f"{root / LABELS_DIR}: no label images")
    missing = [n for n in labels if n not in images]
    if missing:
        raise DatasetError(f"{labels[missing[0]]}: no matching image {missing[0]}.* in {root / IMAGES_DIR}")
    listed = {p["name"]: p["split"] for p in manifest.get("pairs", [])}
    splits = {n: listed.get(n) or hash_split(n) for n in labels}
    bad = [n for n, s in splits.items() if s not in SPLITS]
    if bad:
        raise DatasetError(f"{root / MANIFEST}: pair {bad[0]} has split {splits[bad[0]]!r}, "
                           f"expected one of {', '.join(SPLITS)}")
    items = {n: (labels[n], images[n]) for n in labels}
    return PairedImages(root, "labels", items, splits, palette, manifest, direction)


def _open_side_by_side(root: Path, direction: str) -> PairedImages:
    items, splits = {}, {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        for stem, path in _images_in(folder).items():
            key = f"{split}/{stem}"
            items[key], splits[key] = (path,), split
    if not items:
        raise DatasetError(f"{root}: train/ val/ test/ hold no images")
    return PairedImages(root, "side-by-side", items, splits, None, {}, direction)
