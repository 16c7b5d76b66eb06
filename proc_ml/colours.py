"""The one home of part colours: every mesh, point cloud, picture, legend and DCC node
colours a part with ``part_colours``.

Known building parts have fixed colours; any other name (a studio's own part, a shape
class) gets a stable colour derived from the name, so the same name has the same colour in
every dataset, model and DCC. Faces without a part are grey.
"""

from __future__ import annotations

import numpy as np

DEFAULT_COLOURS = {
    "wall": (200, 190, 170), "window": (70, 130, 200), "door": (150, 80, 40),
    "roof": (170, 50, 50), "balcony": (90, 170, 90), "shopfront": (230, 180, 40),
    "ground": (90, 90, 90),
}
#: Colour of faces (or points) that carry no part.
UNLABELLED = (128, 128, 128)


def name_colour(name: str) -> tuple[int, int, int]:
    """A stable colour for any name (a polynomial hash of its characters)."""
    h = sum(ord(c) * 131 ** i for i, c in enumerate(name)) % (256 ** 3)
    return (h >> 16 & 255, h >> 8 & 255, h & 255)


def part_colours(names) -> list[tuple[int, int, int]]:
    """An RGB (0..255) colour per name, in order."""
    return [DEFAULT_COLOURS.get(name) or name_colour(name) for name in names]


def unit_rgb(colours) -> np.ndarray:
    """``float32[K, 3]`` in 0..1 of 0..255 colours."""
    return np.asarray(colours, dtype=np.float32).reshape(-1, 3) / np.float32(255.0)
