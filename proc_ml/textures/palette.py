"""Facade label classes and their colours: the palette a label map is drawn in.

A facade label map has one class per pixel, stored as an RGB PNG with one colour per
class (like the CMP facade labels pix2pix was shown on). The default palette maps the
building part vocabulary onto facade classes: ``wall`` becomes ``plaster`` or ``brick``
(the building's wall material, so the texture a label map asks for is well defined),
``roof`` becomes the ``cornice`` band along a facade's top edge and ``ground`` the
``plinth`` band along its foot. A part outside the default vocabulary keeps its own name
and colour (``Vocabulary.colours``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError
from ..colours import DEFAULT_COLOURS
from ..procedural.parts import DEFAULT_PARTS, Vocabulary

BACKGROUND = "background"
MATERIALS = ("plaster", "brick")
#: Facade class per building part role; ``wall`` is resolved by the wall material.
PART_CLASSES = {"window": "window", "door": "door", "balcony": "balcony",
                "shopfront": "shopfront", "roof": "cornice", "ground": "plinth"}
DEFAULT_CLASS_COLOURS = {
    BACKGROUND: (0, 0, 0),
    "plaster": DEFAULT_COLOURS["wall"],
    "brick": (160, 82, 45),
    "window": DEFAULT_COLOURS["window"],
    "door": DEFAULT_COLOURS["door"],
    "balcony": DEFAULT_COLOURS["balcony"],
    "shopfront": DEFAULT_COLOURS["shopfront"],
    "cornice": DEFAULT_COLOURS["roof"],
    "plinth": DEFAULT_COLOURS["ground"],
}


@dataclass(frozen=True)
class Palette:
    """Class names (index = class id) and an RGB colour per class."""
    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]

    def __post_init__(self):
        if len(self.names) != len(self.colours) or not self.names:
            raise DatasetError("palette: needs one colour per class and at least one class")
        if len(set(self.names)) != len(self.names):
            raise DatasetError(f"palette: duplicate class names in {list(self.names)}")
        if len(set(self.colours)) != len(self.colours):
            raise DatasetError("palette: two classes share a colour")

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def rgb(self, class_ids: np.ndarray) -> np.ndarray:
        """``uint8[..., 3]`` colour image of a class-id array."""
        return np.asarray(self.colours, dtype=np.uint8)[np.asarray(class_ids)]

    def classes(self, rgb: np.ndarray, source: str = "label map") -> np.ndarray:
        """``int64[H, W]`` class ids of a colour-coded label image; a colour outside the
        palette raises ``DatasetError`` naming ``source``, the colour and a pixel."""
        rgb = np.asarray(rgb)
        if rgb.ndim < 2 or rgb.shape[-1] < 3:
            raise DatasetError(f"{source}: label map must be an RGB image, got shape {list(rgb.shape)}")
        codes = _codes(rgb[..., :3])
        known = _codes(np.asarray(self.colours, dtype=np.int64))
        order = np.argsort(known)
        pos = np.clip(np.searchsorted(known[order], codes), 0, len(known) - 1)
        found = known[order][pos] == codes
        if not found.all():
            where = tuple(int(v[0]) for v in np.nonzero(~found))
            colour = tuple(int(c) for c in rgb[where][:3])
            at = f"(x={where[1]}, y={where[0]})" if len(where) == 2 else f"{list(where)}"
            raise DatasetError(f"{source}: label colour {colour} at pixel {at} is not "
                               f"in the palette ({', '.join(f'{n} {c}' for n, c in zip(self.names, self.colours))})")
        return order[pos].astype(np.int64)

    def snap(self, rgb: np.ndarray, tolerance: float, source: str = "label map") -> np.ndarray:
        """``uint8[H, W, 3]``: every colour within ``tolerance`` (RGB distance) of a palette
        colour replaced by the nearest one -- label maps saved as JPEG, or resampled, carry
        thousands of colours near the palette's. A colour farther than that from every class
        raises ``DatasetError`` naming ``source``, the colour, a pixel and the nearest class."""
        rgb = np.asarray(rgb)[..., :3]
        if rgb.ndim != 3:
            raise DatasetError(f"{source}: label map must be an RGB image, got shape {list(rgb.shape)}")
        codes = _codes(rgb)
        unique, inverse = np.unique(codes.ravel(), return_inverse=True)
        colours = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1).astype(np.float64)
        table = np.asarray(self.colours, dtype=np.float64)
        dist = np.sqrt(((colours[:, None, :] - table[None]) ** 2).sum(axis=2))
        nearest = dist.argmin(axis=1)
        far = dist[np.arange(len(unique)), nearest] > tolerance
        if far.any():
            bad = int(np.nonzero(far)[0][0])
            where = np.unravel_index(int(np.nonzero(inverse == bad)[0][0]), codes.shape)
            colour = tuple(int(c) for c in colours[bad])
            cls = int(nearest[bad])
            raise DatasetError(f"{source}: label colour {colour} at pixel (x={where[1]}, y={where[0]}) "
                               f"is {dist[bad, cls]:.1f} from the nearest palette colour "
                               f"({self.names[cls]} {self.colours[cls]}), more than the palette "
                               f"tolerance {tolerance:g}")
        return np.asarray(self.colours, dtype=np.uint8)[nearest[inverse]].reshape(rgb.shape)

    def to_json(self) -> list[dict]:
        return [{"name": n, "colour": list(c)} for n, c in zip(self.names, self.colours)]

    @classmethod
    def from_json(cls, entries, source: str = "palette") -> "Palette":
        try:
            names = tuple(str(e["name"]) for e in entries)
            colours = tuple(_colour(e["colour"]) for e in entries)
        except (TypeError, KeyError, ValueError):
            raise DatasetError(f"{source}: palette must be a list of {{\"name\": ..., "
                               f"\"colour\": [r, g, b]}} entries with 0..255 integers") from None
        try:
            return cls(names, colours)
        except DatasetError as exc:
            raise DatasetError(f"{source}: {exc}") from None


def _colour(value) -> tuple[int, int, int]:
    out = tuple(int(v) for v in value)
    if len(out) != 3 or not all(0 <= v <= 255 for v in out) or any(
            isinstance(v, bool) or float(v) != int(v) for v in value):
        raise ValueError(value)
    return out


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def facade_palette(parts=None) -> Palette:
    """Background, both wall materials, then a class per non-wall part of ``parts``."""
    vocab = Vocabulary(tuple(parts) if parts is not None else DEFAULT_PARTS)
    names = [BACKGROUND, *MATERIALS]
    colours = [DEFAULT_CLASS_COLOURS[n] for n in names]
    for part, colour in zip(vocab.names, vocab.colours()):
        if part == "wall":
            continue
        name = PART_CLASSES.get(part, part)
        if name in names:
            continue
        names.append(name)
        colours.append(DEFAULT_CLASS_COLOURS.get(name, colour))
    return Palette(tuple(names), tuple(colours))
