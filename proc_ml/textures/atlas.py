"""Packing facade images into one texture atlas (shelf packing, numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GUTTER = 2   # pixels of edge colour around every image, so filtering never bleeds


@dataclass
class Atlas:
    image: np.ndarray                  # uint8[H, W, 3]
    origins: list[tuple[int, int]]     # (x, y) top-left pixel of each packed image

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.image.shape[1], self.image.shape[0]


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def pack(images: list[np.ndarray], gutter: int = GUTTER) -> Atlas:
    """Place ``images`` on shelves, tallest first, in an atlas whose width is a power of
    two near the square root of their area; each keeps a ``gutter`` of its own edges."""
    if not images:
        raise ValueError("nothing to pack")
    boxes = [(im.shape[1] + 2 * gutter, im.shape[0] + 2 * gutter) for im in images]
    area = sum(w * h for w, h in boxes)
    width = max(_next_pow2(int(np.ceil(np.sqrt(area * 1.15)))), _next_pow2(max(w for w, _ in boxes)))
    order = sorted(range(len(images)), key=lambda i: (-boxes[i][1], -boxes[i][0], i))
    origins: list[tuple[int, int]] = [(0, 0)] * len(images)
    x = y = shelf = 0
    for i in order:
        w, h = boxes[i]
        if x + w > width:
            x, y, shelf = 0, y + shelf, 0
        origins[i] = (x + gutter, y + gutter)
        x, shelf = x + w, max(shelf, h)
    height = _next_pow2(y + shelf)
    atlas = np.zeros((height, width, 3), dtype=np.uint8)
    for (ox, oy), im in zip(origins, images):
        padded = np.pad(im, ((gutter, gutter), (gutter, gutter), (0, 0)), mode="edge")
        atlas[oy - gutter:oy - gutter + padded.shape[0], ox - gutter:ox - gutter + padded.shape[1]] = padded
    return Atlas(atlas, origins)
