"""Label maps and procedural facade textures from a module grid (numpy only, seeded).

Both images are drawn from one per-pixel layout (which module a pixel is in, where in
the module it lies, what that module holds), so a texture always matches its label map:

* label map: the wall material everywhere a face is, then per module its element —
  a window opening, a door, a shopfront, a French window behind a balcony slab — plus a
  cornice band along the facade's top edge and a plinth band along the ground;
* texture: plaster or brick, window frames with mullions and glass, sills, panelled
  doors, shopfronts with a sign band, balcony slabs with railings, cornice and plinth,
  then weathering (smooth dirt, streaks under sills, fine grain) from the seeded rng.

Images are ``[rows * module_px, columns * module_px]`` with row 0 at the top (the
facade's highest modules) and column 0 at the left as seen from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import NO_PART
from .layout import top_edges
from .palette import BACKGROUND, MATERIALS, PART_CLASSES, Palette

# Element rectangles in module units (x0, x1, y0, y1), y measured down from the module top.
WINDOW = (0.25, 0.75, 0.20, 0.74)
DOOR = (0.30, 0.70, 0.25, 1.0)
SHOPFRONT = (0.04, 0.96, 0.18, 1.0)
FRENCH_WINDOW = (0.32, 0.68, 0.14, 0.62)
BALCONY = (0.06, 0.94, 0.56, 0.92)
SILL = (0.21, 0.79, 0.74, 0.81)
CORNICE_DEPTH = 0.14          # top band of a facade's highest modules
PLINTH_HEIGHT = 0.12          # bottom band of ground-floor modules

KINDS = ("none", "wall", "window", "door", "balcony", "shopfront", "other")
_KIND = {name: i for i, name in enumerate(KINDS)}


@dataclass
class PixelLayout:
    """Per-pixel facts both the label map and the texture are computed from."""
    kind: np.ndarray        # int[H, W] index into KINDS
    part: np.ndarray        # int[H, W] part id of the module (-1 none)
    lx: np.ndarray          # float[H, W] position in the module, 0 left .. 1 right
    ly: np.ndarray          # float[H, W] position in the module, 0 top .. 1 bottom
    top_edge: np.ndarray    # bool[H, W] module on the facade's top edge
    ground: np.ndarray      # bool[H, W] module on the ground (z = 0)
    module_px: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.kind.shape

    def inside(self, rect) -> np.ndarray:
        x0, x1, y0, y1 = rect
        return (self.lx >= x0) & (self.lx < x1) & (self.ly >= y0) & (self.ly < y1)


def module_kinds(parts: np.ndarray, part_names) -> np.ndarray:
    """``int[rows, cols]`` KINDS index of every module (custom parts are ``other``)."""
    lookup = np.array([_KIND.get(name if name != "roof" and name != "ground" else "wall",
                                 _KIND["other"]) for name in part_names] + [_KIND["none"]])
    return lookup[np.where(parts == NO_PART, len(part_names), parts)]


def pixel_layout(parts: np.ndarray, part_names, module_px: int, on_ground: bool) -> PixelLayout:
    """The per-pixel layout of a facade grid ``parts[z, column]`` (row 0 lowest)."""
    m = int(module_px)
    grid = np.asarray(parts)[::-1]                       # top row first, as images are
    kinds = module_kinds(grid, part_names)
    rows, cols = grid.shape
    tops = top_edges(np.asarray(parts))[::-1]
    ground = np.zeros_like(tops)
    if on_ground:
        ground[-1] = grid[-1] != NO_PART
    offsets = (np.arange(m) + 0.5) / m
    expand = lambda a: np.repeat(np.repeat(a, m, axis=0), m, axis=1)  # noqa: E731
    return PixelLayout(kind=expand(kinds), part=expand(grid.astype(np.int64)),
                       lx=np.tile(offsets, cols)[None, :].repeat(rows * m, axis=0),
                       ly=np.tile(offsets, rows)[:, None].repeat(cols * m, axis=1),
                       top_edge=expand(tops), ground=expand(ground), module_px=m)


# -- label maps ---------------------------------------------------------------------------
def element_masks(layout: PixelLayout) -> dict[str, np.ndarray]:
    """Boolean masks of every drawn element, in drawing order (later wins)."""
    k = layout.kind
    masks = {
        "window": (k == _KIND["window"]) & layout.inside(WINDOW)
        | (k == _KIND["balcony"]) & layout.inside(FRENCH_WINDOW),
        "door": (k == _KIND["door"]) & layout.inside(DOOR),
        "shopfront": (k == _KIND["shopfront"]) & layout.inside(SHOPFRONT),
        "balcony": (k == _KIND["balcony"]) & layout.inside(BALCONY),
    }
    plinth_ok = (k == _KIND["wall"]) | (k == _KIND["window"]) | (k == _KIND["other"])
    masks["plinth"] = layout.ground & plinth_ok & (layout.ly >= 1.0 - PLINTH_HEIGHT)
    masks["cornice"] = layout.top_edge & (k != _KIND["none"]) & (layout.ly < CORNICE_DEPTH)
    return masks


def label_classes(layout: PixelLayout, palette: Palette, material: str, part_names) -> np.ndarray:
    """``int64[H, W]`` palette class per pixel."""
    if material not in MATERIALS:
        raise ValueError(f"material must be one of {', '.join(MATERIALS)}, got {material!r}")
    out = np.full(layout.shape, palette.index(BACKGROUND), dtype=np.int64)
    out[layout.kind != _KIND["none"]] = palette.index(material)
    other = layout.kind == _KIND["other"]
    if other.any():
        names = np.array([palette.index(PART_CLASSES.get(n, n)) if PART_CLASSES.get(n, n) in palette.names
                          else palette.index(material) for n in part_names])
        out[other] = names[layout.part[other]]
    for name, mask in element_masks(layout).items():
        out[mask] = palette.index(name)
    return out


# -- procedural texture ---------------------------------------------------------------------
def smooth_noise(shape, cells: float, rng: np.random.Generator) -> np.ndarray:
    """Value noise in [-1, 1]: a random lattice about ``cells`` pixels apart, bilinear."""
    h, w = shape
    gh, gw = int(np.ceil(h / cells)) + 2, int(np.ceil(w / cells)) + 2
    lattice = rng.uniform(-1.0, 1.0, size=(gh, gw))
    y = (np.arange(h) + 0.5) / cells
    x = (np.arange(w) + 0.5) / cells
    y0, x0 = y.astype(int), x.astype(int)
    ty, tx = (y - y0)[:, None], (x - x0)[None, :]
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)
    a, b = lattice[y0][:, x0], lattice[y0][:, x0 + 1]
    c, d = lattice[y0 + 1][:, x0], lattice[y0 + 1][:, x0 + 1]
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty


def _colour(rng: np.random.Generator, base, spread: float = 0.02) -> np.ndarray:
    return np.clip(np.asarray(base, dtype=np.float64) + rng.normal(0.0, spread, 3), 0.0, 1.0)


def _paint(image: np.ndarray, mask: np.ndarray, colour) -> None:
    image[mask] = np.broadcast_to(colour, image.shape)[mask] if np.ndim(colour) == 3 else colour


def _wall(layout: PixelLayout, material: str, rng: np.random.Generator) -> np.ndarray:
    h, w = layout.shape
    if material == "plaster":
        base = _colour(rng, (0.86, 0.82, 0.74), 0.012)
        grain = smooth_noise((h, w), max(layout.module_px / 3, 2.0), rng)[..., None]
        return np.broadcast_to(base, (h, w, 3)) * (1.0 + 0.025 * grain)
    # courses and bricks repeat with the module grid, so a texture's brick joints are
    # fixed by where the label map's modules are (not by where an image happens to start)
    m = layout.module_px
    courses = max(2, int(round(m / 4)))                      # per module
    py = np.minimum((layout.ly * m).astype(np.int64), m - 1)  # pixel row inside the module
    px = np.minimum((layout.lx * m).astype(np.int64), m - 1)
    course = py * courses // m
    u = (px + (course % 2) * (m // 4)) % m                    # half-brick bond: 2 bricks per module
    brick = u * 2 // m
    base = _colour(rng, (0.60, 0.31, 0.21), 0.012)
    col = np.arange(w)[None, :] // m + np.zeros((h, 1), dtype=np.int64)
    row = np.arange(h)[:, None] // m + np.zeros((1, w), dtype=np.int64)
    brick_id = ((row * 4096 + col) * courses + course) * 2 + brick
    _, brick_id = np.unique(brick_id, return_inverse=True)
    shade = rng.normal(0.0, 0.02, int(brick_id.max()) + 1)[brick_id.reshape(h, w)][..., None]
    image = np.broadcast_to(base, (h, w, 3)) + shade
    mortar = ((py * courses) % m >= m - courses) | (u * 2 % m >= m - 2)
    _paint(image, mortar, _colour(rng, (0.76, 0.73, 0.68), 0.015))
    return image


def _window(image, layout, mask, rect, rng, frame_colour) -> None:
    """Frame, glass (lighter at the top, a reflection band) and a mullion cross."""
    x0, x1, y0, y1 = rect
    u = (layout.lx - x0) / (x1 - x0)
    v = (layout.ly - y0) / (y1 - y0)
    frame = 1.0 / max(layout.module_px * (x1 - x0), 1.0) + 0.02     # about one pixel
    glass_top, glass_bottom = _colour(rng, (0.52, 0.62, 0.70), 0.015), _colour(rng, (0.16, 0.21, 0.27), 0.01)
    glass = glass_top + (glass_bottom - glass_top) * v[..., None]
    glass = glass + 0.10 * ((u + 0.6 * v) % 1.0 < 0.18)[..., None]
    _paint(image, mask, glass)
    edge = (u < frame) | (u > 1 - frame) | (v < frame) | (v > 1 - frame)
    mullion = (np.abs(u - 0.5) < frame / 2) | (np.abs(v - 0.35) < frame / 2)
    _paint(image, mask & (edge | mullion), frame_colour)


def texture_image(layout: PixelLayout, material: str, rng: np.random.Generator) -> np.ndarray:
    """``uint8[H, W, 3]`` procedural texture matching ``label_classes`` of ``layout``."""
    k, masks = layout.kind, element_masks(layout)
    image = _wall(layout, material, rng).copy()
    frame_colour = _colour(rng, (0.93, 0.92, 0.88), 0.015)
    sill = (k == _KIND["window"]) & layout.inside(SILL)
    _paint(image, sill, _colour(rng, (0.80, 0.79, 0.75), 0.015))
    # shadow under sills and cornice, dirt streaks running down from the sills
    streak_strength = rng.uniform(0.05, 0.08)
    below_sill = (k == _KIND["window"]) & layout.inside((SILL[0] + 0.04, SILL[1] - 0.04, SILL[3], 1.0))
    fade = np.clip(1.0 - (layout.ly - SILL[3]) / (1.0 - SILL[3]), 0.0, 1.0)
    image[below_sill] *= (1.0 - streak_strength * fade[below_sill])[:, None]
    _window(image, layout, masks["window"], WINDOW, rng, frame_colour)
    french = masks["window"] & (k == _KIND["balcony"])
    if french.any():
        _window(image, layout, french, FRENCH_WINDOW, rng, frame_colour)
    _door(image, layout, masks["door"], rng)
    _shopfront(image, layout, masks["shopfront"], rng)
    _balcony(image, layout, masks["balcony"], rng)
    _plinth(image, layout, masks["plinth"], rng)
    _cornice(image, layout, masks["cornice"], rng)
    dirt = smooth_noise(layout.shape, layout.module_px * 2.5, rng)[..., None]
    image *= 1.0 - rng.uniform(0.02, 0.04) * (dirt + 1.0) / 2.0
    image += rng.normal(0.0, 0.006, image.shape)
    image[k == _KIND["none"]] = 0.0
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _door(image, layout, mask, rng) -> None:
    if not mask.any():
        return
    x0, x1, y0, y1 = DOOR
    u, v = (layout.lx - x0) / (x1 - x0), (layout.ly - y0) / (y1 - y0)
    wood = _colour(rng, (0.40, 0.24, 0.14), 0.015)
    _paint(image, mask, wood)
    panel = ((np.abs(u - 0.5) > 0.08) & (u > 0.15) & (u < 0.85)
             & (((v > 0.1) & (v < 0.45)) | ((v > 0.55) & (v < 0.9))))
    _paint(image, mask & panel, wood * 0.78)
    edge = (u < 0.07) | (u > 0.93) | (v < 0.05)
    _paint(image, mask & edge, wood * 0.6)
    handle = (np.abs(u - 0.8) < 0.05) & (np.abs(v - 0.55) < 0.04)
    _paint(image, mask & handle, np.array([0.80, 0.70, 0.35]))


def _shopfront(image, layout, mask, rng) -> None:
    if not mask.any():
        return
    x0, x1, y0, y1 = SHOPFRONT
    u, v = (layout.lx - x0) / (x1 - x0), (layout.ly - y0) / (y1 - y0)
    sign = _colour(rng, (0.14, 0.30, 0.26), 0.015)
    glass = _colour(rng, (0.22, 0.28, 0.33), 0.01)
    _paint(image, mask, glass + 0.25 * (1.0 - v[..., None]) * 0.4)
    _paint(image, mask & (v < 0.22), sign)
    lettering = (v > 0.07) & (v < 0.15) & (np.abs(u - 0.5) < 0.3) & ((u * 12) % 1.0 < 0.55)
    _paint(image, mask & lettering, _colour(rng, (0.90, 0.85, 0.60), 0.02))
    _paint(image, mask & (v > 0.88), sign * 0.8)
    _paint(image, mask & (v >= 0.22) & (v <= 0.88) & ((np.abs(u - 1 / 3) < 0.02) | (np.abs(u - 2 / 3) < 0.02)),
           np.array([0.12, 0.12, 0.13]))


def _balcony(image, layout, mask, rng) -> None:
    if not mask.any():
        return
    x0, x1, y0, y1 = BALCONY
    u, v = (layout.lx - x0) / (x1 - x0), (layout.ly - y0) / (y1 - y0)
    image[mask] *= 0.55                                   # shadow behind the railing
    slab = _colour(rng, (0.70, 0.70, 0.68), 0.02)
    metal = _colour(rng, (0.14, 0.14, 0.16), 0.02)
    _paint(image, mask & (v > 0.78), slab)
    _paint(image, mask & (v < 0.12), metal)
    bars = ((u * 9) % 1.0 < 0.3) & (v <= 0.78)
    _paint(image, mask & bars, metal)


def _plinth(image, layout, mask, rng) -> None:
    stone = _colour(rng, (0.42, 0.42, 0.43), 0.02)
    _paint(image, mask, stone)
    joint = mask & (np.abs(layout.lx - 0.5) > 0.47)
    _paint(image, joint, stone * 0.75)


def _cornice(image, layout, mask, rng) -> None:
    stone = _colour(rng, (0.80, 0.78, 0.72), 0.02)
    _paint(image, mask, stone)
    band = layout.ly / CORNICE_DEPTH
    _paint(image, mask & (band > 0.75), stone * 0.55)       # shadow line under the moulding
    dentils = mask & (band > 0.45) & (band <= 0.75) & ((layout.lx * 6) % 1.0 < 0.5)
    _paint(image, dentils, stone * 0.85)


def render_facade(facade, part_names, palette: Palette, material: str, module_px: int,
                  rng: np.random.Generator | None = None):
    """``(label classes int64[H, W], texture uint8[H, W, 3] or None)`` of a ``Facade``;
    the texture is drawn only when ``rng`` is given."""
    layout = pixel_layout(facade.parts, part_names, module_px, on_ground=facade.bottom == 0)
    classes = label_classes(layout, palette, material, part_names)
    texture = texture_image(layout, material, rng) if rng is not None else None
    return classes, texture
