"""One generated building: massing, style and face labels, from (config, seed, index)."""

from __future__ import annotations

from dataclasses import dataclass

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


def generate_building(cfg: dict, seed: int, index: int) -> Building:
    rng = building_rng(seed, index)
    archetype, hm, style = draw_massing(cfg, rng)
    vocab = Vocabulary(tuple(cfg["parts"]))
    occ = occupancy_from_heights(hm, cfg["grid"]["size"][2])
    labels = add_noise(label_faces(occ, style, vocab), cfg["noise"], vocab, rng)
    return Building(index, archetype, occ, labels, style)
