"""Texturing a whole building: facade label maps -> textures -> atlas -> UV-mapped quads.

Every side face belongs to one facade sheet (``layout.facade_sheets``); each sheet is
drawn as a label map, turned into a texture by ``texturer`` (a pix2pix generator, see
``proc_ml.runtime.textures``; ``None`` draws the procedural texture instead), and packed
into one atlas with a roof tile and an underside tile. Each face's four corners get the
UVs of its module in its sheet's texture. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .. import budget
from ..errors import ModelError
from ..grid import DOWN, UP
from ..meshing import QUAD_CORNERS, quad_mesh
from .atlas import Atlas, pack
from .layout import RIGHT_VECTORS, Facade, sheets_from_faces
from .palette import Palette, facade_palette
from .render import render_facade, smooth_noise

#: Peak working memory per facade-sheet pixel of ``texture_faces`` (the rendered float
#: layers, label maps, textures and both atlases), for the budget check before rendering.
BYTES_PER_ATLAS_PIXEL = 64

#: Turns label maps (``uint8[H, W, 3]``) into textures of the same sizes.
Texturer = Callable[[Sequence[np.ndarray]], list]


@dataclass
class TexturedBuilding:
    vertices: np.ndarray     # float64[4F, 3], z up, metres
    triangles: np.ndarray    # int64[2F, 3]
    uv: np.ndarray           # float64[4F, 2], OpenGL convention (v = 0 at the atlas bottom)
    atlas: Atlas             # textures
    label_atlas: Atlas       # the label maps, packed the same way
    sheets: list[Facade]
    parts: np.ndarray        # int8[F] part of every quad


def recolour(classes: np.ndarray, source: Palette, target: Palette) -> np.ndarray:
    """Class ids of ``source`` drawn in the colours of the same-named ``target`` classes."""
    missing = [n for n in source.names if n not in target.names]
    used = set(np.unique(classes).tolist())
    missing = [n for n in missing if source.index(n) in used]
    if missing:
        raise ModelError(f"the model's palette has no class {', '.join(missing)} "
                         f"(it has {', '.join(target.names)})")
    lookup = np.array([target.index(n) if n in target.names else 0 for n in source.names])
    return target.rgb(lookup[classes])


def plain_tile(module_px: int, colour, rng: np.random.Generator, grain: float = 0.05) -> np.ndarray:
    noise = smooth_noise((module_px, module_px), max(module_px / 4, 1.0), rng)[..., None]
    tile = np.asarray(colour, dtype=np.float64) * (1.0 + grain * noise)
    return (np.clip(tile, 0, 1) * 255 + 0.5).astype(np.uint8)


def texture_building(occupancy: np.ndarray, labels: np.ndarray, part_names: Sequence[str],
                     texturer: Texturer | None = None, *, module_px: int = 16,
                     material: str = "plaster", cell_size: float = 1.0, seed: int = 0,
                     palette: Palette | None = None) -> TexturedBuilding:
    """Label maps, textures, atlas and UVs for every exterior face of a building.

    ``palette`` is the palette ``texturer`` expects (default: the facade palette of
    ``part_names``); label maps are drawn in it by class name.
    """
    mesh = quad_mesh(occupancy, labels, cell_size)
    faces = texture_faces(mesh.cells, mesh.directions, mesh.parts, part_names, texturer,
                          module_px=module_px, material=material, seed=seed, palette=palette)
    return TexturedBuilding(mesh.vertices, mesh.triangles, faces.uv.reshape(-1, 2), faces.atlas,
                            faces.label_atlas, faces.sheets, mesh.parts)


@dataclass
class TexturedFaces:
    uv: np.ndarray           # float64[F, 4, 2] per corner, in meshing.QUAD_CORNERS order
    atlas: Atlas
    label_atlas: Atlas
    sheets: list[Facade]


def texture_faces(cells, directions, parts, part_names: Sequence[str], texturer: Texturer | None = None,
                  *, module_px: int = 16, material: str = "plaster", seed: int = 0,
                  palette: Palette | None = None) -> TexturedFaces:
    """``texture_building`` for a face list: cell ``int[F, 3]``, direction ``int[F]``
    (0..5) and part ``int[F]`` (-1 unlabelled) of every face."""
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
    directions = np.asarray(directions, dtype=np.int64)
    part_names = list(part_names)
    ours = facade_palette(part_names)
    theirs = palette or ours
    sheets = sheets_from_faces(cells, directions, np.asarray(parts))
    if not sheets:
        raise ModelError("the building has no side faces to texture")
    pixels = sum(s.shape[0] * s.shape[1] for s in sheets) * module_px ** 2
    budget.check(pixels * BYTES_PER_ATLAS_PIXEL, f"texturing {len(sheets)} facade sheets at "
                 f"{module_px} px per module", "a smaller --module-px")
    label_maps, textures = [], []
    for k, sheet in enumerate(sheets):
        rng = np.random.default_rng([int(seed), k]) if texturer is None else None
        classes, texture = render_facade(sheet, part_names, ours, material, module_px, rng)
        label_maps.append(recolour(classes, ours, theirs))
        textures.append(texture)
    if texturer is not None:
        textures = [np.asarray(t, dtype=np.uint8) for t in texturer(label_maps)]
    rng = np.random.default_rng([int(seed), 0x700F])
    tiles = [plain_tile(module_px, (0.46, 0.45, 0.43), rng), plain_tile(module_px, (0.36, 0.36, 0.37), rng)]
    atlas = pack(textures + tiles)
    label_atlas = Atlas(np.zeros_like(atlas.image), atlas.origins)
    for (ox, oy), im in zip(atlas.origins, label_maps):
        label_atlas.image[oy:oy + im.shape[0], ox:ox + im.shape[1]] = im
    uv = face_uvs(cells, directions, sheets, atlas, module_px)
    return TexturedFaces(uv, atlas, label_atlas, sheets)


def face_uvs(cells: np.ndarray, directions: np.ndarray, sheets: list[Facade], atlas: Atlas,
             module_px: int) -> np.ndarray:
    """``float64[F, 4, 2]`` UVs of every face corner (QUAD_CORNERS order): side faces map
    to their module in their sheet's image, roofs to the roof tile, undersides to the
    underside tile (the last two atlas images)."""
    m = float(module_px)
    corners = cells[:, None, :].astype(np.float64) + QUAD_CORNERS[directions]       # [F, 4, 3]
    px = np.zeros(corners.shape[:2])
    py = np.zeros(corners.shape[:2])
    grid_shape = cells.max(axis=0) + 1
    sheet_of = _sheet_lookup(sheets, grid_shape).get_many(_face_keys(cells, directions, grid_shape))
    for k, sheet in enumerate(sheets):
        faces = (directions < 4) & (sheet_of == k)
        if not faces.any():
            continue
        ox, oy = atlas.origins[k]
        right = np.asarray(RIGHT_VECTORS[sheet.direction], dtype=np.float64)
        top = sheet.bottom + sheet.shape[0]
        px[faces] = ox + (corners[faces] @ right - sheet.left) * m
        py[faces] = oy + (top - corners[faces][..., 2]) * m
    for direction, tile in ((UP, len(sheets)), (DOWN, len(sheets) + 1)):
        faces = directions == direction
        ox, oy = atlas.origins[tile]
        local = corners[faces] - cells[faces][:, None, :]
        px[faces] = ox + local[..., 0] * m
        py[faces] = oy + (1.0 - local[..., 1]) * m
    width, height = atlas.size
    return np.stack([px / width, 1.0 - py / height], axis=-1)


def _face_keys(cells: np.ndarray, directions: np.ndarray, grid_shape) -> np.ndarray:
    X, Y, Z = (int(n) for n in grid_shape)
    c = np.asarray(cells, dtype=np.int64)
    return ((np.asarray(directions, dtype=np.int64) * X + c[:, 0]) * Y + c[:, 1]) * Z + c[:, 2]


class _Lookup:
    def __init__(self, keys: np.ndarray, values: np.ndarray):
        order = np.argsort(keys)
        self.keys, self.values = keys[order], values[order]

    def get_many(self, keys: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.keys, keys), 0, max(len(self.keys) - 1, 0))
        found = self.keys[pos] == keys
        return np.where(found, self.values[pos], -1)


def _sheet_lookup(sheets: list[Facade], grid_shape) -> _Lookup:
    keys = [_face_keys(s.faces, np.full(len(s.faces), s.direction), grid_shape) for s in sheets]
    values = [np.full(len(s.faces), k) for k, s in enumerate(sheets)]
    return _Lookup(np.concatenate(keys), np.concatenate(values))
