"""One generated building: massing, style and face labels, from (config, seed, index)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..encoding import STYLE_FEATURES
from .config import ARCHETYPES
from .massing import height_map, occupancy_from_heights
from .parts import Vocabulary
from .rules import add_noise, label_faces


@dataclass(frozen=True)
class Style:
    """Per-building style features the labels depend on (written into every dataset)."""
    street_side: int       # 0..3 -> +x, -x, +y, -y
    window_period: int     # 1, 2 or 3
    shopfront: bool
    balconies: bool

    def vector(self) -> np.ndarray:
        vec = np.zeros(len(STYLE_FEATURES), dtype=np.float32)
        vec[self.street_side] = 1.0
        vec[3 + self.window_period] = 1.0
        vec[7] = float(self.shopfront)
        vec[8] = float(self.balconies)
        return vec

    @classmethod
    def from_vector(cls, vec) -> "Style":
        vec = np.asarray(vec, dtype=np.float32)
        return cls(int(np.argmax(vec[:4])), int(np.argmax(vec[4:7])) + 1,
                   bool(vec[7] > 0.5), bool(vec[8] > 0.5))


@dataclass
class Building:
    building_id: int
    archetype: str
    occupancy: np.ndarray   # uint8[X, Y, Z]
    labels: np.ndarray      # int8[X, Y, Z, 6], -1 = no face
    style: Style
    extras: dict = field(default_factory=dict)   # grid extras (formats.grid_npz.EXTRAS)
    mesh: object | None = None   # the grammar's sloped, labelled mesh (meshes.LotMesh), on request


def building_rng(seed: int, index: int) -> np.random.Generator:
    """Independent stream per building: results do not depend on worker count or order."""
    return np.random.default_rng([int(seed), int(index)])


def _pick(rng: np.random.Generator, probabilities: np.ndarray) -> int:
    """Index drawn with the given probabilities from one ``rng.random()``.

    The same draw as ``rng.choice(n, p=probabilities)`` (numpy's own algorithm), without its
    per-call argument checks, which cost more than the rest of the draw.
    """
    cdf = probabilities.cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def draw_massing(cfg: dict, rng: np.random.Generator) -> tuple[str, np.ndarray, Style]:
    """Archetype, height map and style: every random draw a building needs, in fixed order."""
    weights = np.array([float(cfg["archetypes"].get(a, 0.0)) for a in ARCHETYPES])
    archetype = ARCHETYPES[_pick(rng, weights / weights.sum())]
    hm, street = height_map(archetype, rng, cfg["grid"]["size"])
    st = cfg["style"]
    street_side = int(rng.integers(4)) if street is None else street
    periods = st["window_periods"]
    period = int(periods[int(rng.integers(len(periods)))])  # = rng.choice(periods)
    style = Style(street_side, period, bool(rng.random() < st["shopfront_probability"]),
                  bool(rng.random() < st["balcony_probability"]))
    return archetype, hm, style


def generate_building(cfg: dict, seed: int, index: int, mesh: bool = False) -> Building:
    """Building ``index`` of a dataset with ``seed``: by the facade grammar (``rules:
    facade``, the default) or the original rules (``rules: legacy``). ``mesh``: also build
    the grammar's sloped mesh (``Building.mesh``; the legacy rules have none)."""
    if cfg.get("rules", "legacy") == "facade":
        return generate_facade_building(cfg, seed, index, mesh)
    return generate_legacy_building(cfg, seed, index)


def generate_legacy_building(cfg: dict, seed: int, index: int) -> Building:
    """The original rules (``rules.py``): kept so earlier datasets and figures reproduce."""
    rng = building_rng(seed, index)
    archetype, hm, style = draw_massing(cfg, rng)
    vocab = Vocabulary(tuple(cfg["parts"]))
    occ = occupancy_from_heights(hm, cfg["grid"]["size"][2])
    labels = add_noise(label_faces(occ, style, vocab), cfg["noise"], vocab, rng)
    return Building(index, archetype, occ, labels, style)


def draw_facade_lot(cfg: dict, rng: np.random.Generator):
    """``(lot, style, layouts)``: every random draw of a grammar building, in fixed order
    (the lot, its placement, the facade style, the walls' openings)."""
    from .facades import draw_style, layout_walls
    from .lots import draw_lot, place

    fc = cfg["facade"]
    size, cell = cfg["grid"]["size"], float(cfg["grid"]["cell_size"])
    extent = tuple(n * cell for n in size)
    lot = place(draw_lot(rng, fc, extent, cell, cfg["archetypes"]), rng, fc, size, cell)
    style = draw_style(rng, fc, lot.shop)
    return lot, style, layout_walls(lot, style, rng)


def generate_facade_building(cfg: dict, seed: int, index: int, mesh: bool = False) -> Building:
    """The facade grammar (``lots.py``, ``facades.py``): a lot drawn in metres, placed in the
    grid, voxelised (``facade.voxelizer``: its height field by the import's half-volume
    rule, or its sloped mesh by ``proc_ml.voxelize`` as ``proc-ml predict`` does), its side
    faces labelled by the openings its walls carry."""
    from .facades import WallTable, label_grid

    rng = building_rng(seed, index)
    lot, style, layouts = draw_facade_lot(cfg, rng)
    size, cell = cfg["grid"]["size"], float(cfg["grid"]["cell_size"])
    vocab = Vocabulary(tuple(cfg["parts"]))
    fc = cfg["facade"]
    lot_mesh = None
    if mesh or fc["voxelizer"] == "mesh":
        from .meshes import lot_mesh as build_mesh
        lot_mesh = build_mesh(lot, WallTable(lot, layouts, style), vocab, fc["shopfront_part"])
    if fc["voxelizer"] == "mesh":
        occ = _voxelize_mesh(lot, lot_mesh, size, cell)
    else:
        occ = lot.occupancy(size, cell)
    if not occ.any():                       # a sliver on a tiny grid: keep one cell
        occ[size[0] // 2, size[1] // 2, 0] = True
    labels = label_grid(occ, lot, layouts, style, cell, vocab, fc["shopfront_part"])
    labels = add_noise(labels, cfg["noise"], vocab, rng)
    street = lot.street_sides()
    sides = ("+x", "-x", "+y", "-y")
    legacy = Style(sides.index(street[0]) if street else 3, 1, style.ground == "shop", False)
    neighbours = (lot.occupancy(size, cell, lot.neighbours) & ~occ if lot.neighbours
                  else np.zeros_like(occ))
    extras = {"street": np.array([s in street for s in sides]), "neighbours": neighbours}
    return Building(index, lot.block, occ.view(np.uint8), labels, legacy, extras, lot_mesh)


def _voxelize_mesh(lot, lot_mesh, size, cell: float) -> np.ndarray:
    """The lot's mesh voxelised by ``proc_ml.voxelize`` (as ``proc-ml predict`` does a user's
    mesh: its grid starts at the mesh's low corner), put in the dataset's grid. The lot and
    its mesh are moved by less than a cell so that corner lies on a cell boundary."""
    from ..voxelize import voxelize

    low = lot_mesh.vertices.min(axis=0)
    shift = low - np.floor(low / cell + 1e-9) * cell
    shift[2] = 0.0
    lot.offset = (lot.offset[0] - shift[0], lot.offset[1] - shift[1])
    lot_mesh.vertices = lot_mesh.vertices - shift
    grid = voxelize(lot_mesh.vertices, lot_mesh.triangles, cell, align=False)
    start = np.round(grid.origin / cell).astype(int)
    occ = np.zeros(tuple(size), dtype=bool)
    src = grid.occupancy.astype(bool)
    dst = tuple(slice(max(0, a), min(n, a + m)) for a, n, m in zip(start, size, src.shape))
    cut = tuple(slice(d.start - a, d.stop - a) for d, a in zip(dst, start))
    occ[dst] = src[cut]
    return occ
