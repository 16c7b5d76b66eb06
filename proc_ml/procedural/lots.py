"""Massing in metres for the facade grammar: houses on lots, in rows, at corners, detached.

A building is a few **wings** (boxes up to their eaves with a roof, ``proc_ml.procedural.
roofs``) drawn in a local frame whose street runs along the building's ``-y`` side. Houses
stand in a **row** (neighbours on both sides: party walls), at a **row end** (one
neighbour), on a **corner** (two street sides, one neighbour), **detached**, or free-standing
on an **island** (streets on three or four sides: facades all round); the
neighbours are wings too, used for party walls and as context. Other massings come from the
legacy archetypes (``massing.py``), their rectangles turned into wings.

The lot is then placed in the grid: a quarter turn (the street side), an optional small
rotation (walls not on the grid's axes), and an offset that puts the building's low corner
on a cell boundary like the real-building import does (``proc-ml import citygml``), or,
with ``half_cell_offsets``, anywhere inside a cell. Occupancy is the import's rule on the
height field: a cell is filled when more than half of its volume is under the roof.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labelling import FILL_THRESHOLD
from .massing import ARCHETYPE_FUNCTIONS
from .roofs import ROOFS, gable_end_rise, roof_rise

#: Area samples per cell side for the occupancy of the height field.
COLUMN_SAMPLES = 8
#: Sides of a wing / lot in the local frame; ``-y`` faces the street.
LOCAL_SIDES = ("+x", "-x", "+y", "-y")
_NORMALS = {"+x": (1.0, 0.0), "-x": (-1.0, 0.0), "+y": (0.0, 1.0), "-y": (0.0, -1.0)}
BLOCKS = ("row", "row_end", "corner", "detached", "island", "archetype")
#: The blocks that are houses (a lot's ``block``; "archetype" lots carry the archetype's name).
HOUSE_BLOCKS = BLOCKS[:-1]


@dataclass
class Wing:
    x0: float
    x1: float
    y0: float
    y1: float
    eave: float                 # metres above ground
    roof: str = "flat"
    ridge_x: bool = True        # a gable's ridge runs along x
    pitch: float = 40.0         # degrees
    max_rise: float = 6.0       # metres above the eaves
    ground_height: float = 3.5  # ground floor
    floor_height: float = 3.0   # upper floors
    floors: int = 1
    roles: dict = field(default_factory=dict)   # local side -> facade role

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Roof height at local points (0 outside the wing)."""
        dx = np.minimum(x - self.x0, self.x1 - x)
        dy = np.minimum(y - self.y0, self.y1 - y)
        inside = (dx >= 0) & (dy >= 0)
        rise = roof_rise(self.roof, np.maximum(dx, 0), np.maximum(dy, 0), self.ridge_x,
                         self.pitch, self.max_rise)
        return np.where(inside, self.eave + rise, 0.0)


@dataclass
class Wall:
    """One side of a wing: outward ``normal`` (local), ``plane`` (its coordinate along the
    normal's axis), extent ``a..b`` along the other axis, role and top."""
    wing: int
    side: str
    normal: tuple[float, float]
    plane: float
    a: float
    b: float
    role: str
    gable: bool                 # a gable end: its top follows the roof

    @property
    def length(self) -> float:
        return self.b - self.a

    def top(self, wing: Wing, u: np.ndarray) -> np.ndarray:
        """Top of the wall above ground at ``u`` (metres from ``a``)."""
        if not self.gable:
            return np.full(np.shape(u), wing.eave)
        return wing.eave + gable_end_rise(wing.roof, u, self.length, wing.pitch, wing.max_rise)


def walls_of(wings: list[Wing]) -> list[Wall]:
    out = []
    for i, w in enumerate(wings):
        gable_x = w.roof == "gable" and w.ridge_x       # ridge along x: gable ends at +-x
        gable_y = w.roof == "gable" and not w.ridge_x
        out += [Wall(i, "+x", _NORMALS["+x"], w.x1, w.y0, w.y1, w.roles.get("+x", "side"), gable_x),
                Wall(i, "-x", _NORMALS["-x"], -w.x0, w.y0, w.y1, w.roles.get("-x", "side"), gable_x),
                Wall(i, "+y", _NORMALS["+y"], w.y1, w.x0, w.x1, w.roles.get("+y", "back"), gable_y),
                Wall(i, "-y", _NORMALS["-y"], -w.y0, w.x0, w.x1, w.roles.get("-y", "street"), gable_y)]
    return out


def union_height(wings: list[Wing], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.zeros(np.broadcast(x, y).shape)
    for w in wings:
        np.maximum(h, w.height(x, y), out=h)
    return h


@dataclass
class Lot:
    """A building (``wings``) with its ``neighbours``, the local street sides, and its
    placement in the grid (``angle_deg`` about z, then ``offset`` in metres)."""
    block: str
    wings: list[Wing]
    neighbours: list[Wing]
    street: tuple[str, ...]     # local sides facing the street
    shop: bool = False          # a shop ground floor (taller)
    angle_deg: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)

    # -- frames ---------------------------------------------------------------------------
    def _rot(self) -> np.ndarray:
        a = np.radians(self.angle_deg)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def to_local(self, xy: np.ndarray) -> np.ndarray:
        """Grid-frame metres -> local metres (``[..., 2]``)."""
        return (np.asarray(xy) - np.asarray(self.offset)) @ self._rot()

    def to_grid(self, xy: np.ndarray) -> np.ndarray:
        """Local metres -> grid-frame metres (``[..., 2]``)."""
        return np.asarray(xy) @ self._rot().T + np.asarray(self.offset)

    def direction_to_local(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v) @ self._rot()

    def grid_side(self, local_side: str) -> str:
        """The grid side (``+x -x +y -y``) a local side faces after placement (nearest)."""
        n = self._rot() @ np.array(_NORMALS[local_side])
        k = int(np.argmax([n[0], -n[0], n[1], -n[1]]))
        return LOCAL_SIDES[k]

    def street_sides(self) -> tuple[str, ...]:
        sides = {self.grid_side(s) for s in self.street}
        return tuple(s for s in LOCAL_SIDES if s in sides)

    # -- geometry ---------------------------------------------------------------------------
    def corners(self, wings: list[Wing]) -> np.ndarray:
        pts = np.array([(x, y) for w in wings for x in (w.x0, w.x1) for y in (w.y0, w.y1)])
        return pts @ self._rot().T + np.asarray(self.offset)

    def height_grid(self, shape, cell: float, wings: list[Wing] | None = None,
                    samples: int = COLUMN_SAMPLES) -> np.ndarray:
        """``float64[X * s, Y * s]`` roof heights at ``samples`` x ``samples`` points per column."""
        X, Y = shape[:2]
        offs = (np.arange(samples) + 0.5) / samples
        gx = ((np.arange(X)[:, None] + offs[None]).ravel() * cell)
        gy = ((np.arange(Y)[:, None] + offs[None]).ravel() * cell)
        xy = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1)
        local = self.to_local(xy)
        return union_height(self.wings if wings is None else wings, local[..., 0], local[..., 1])

    def occupancy(self, shape, cell: float, wings: list[Wing] | None = None) -> np.ndarray:
        """``bool[X, Y, Z]``: cells more than half under the roof (the import's flux rule
        on a height field)."""
        X, Y, Z = shape
        s = COLUMN_SAMPLES
        h = self.height_grid(shape, cell, wings).reshape(X, s, Y, s)
        occ = np.zeros((X, Y, Z), dtype=bool)
        columns = h.max(axis=(1, 3)) > 0
        if not columns.any():
            return occ
        top = min(Z, int(np.ceil(h.max() / cell)))
        hc = h.transpose(0, 2, 1, 3)[columns].reshape(-1, s * s)        # [C, s*s]
        z = np.arange(top) * cell
        fill = np.clip((hc[:, :, None] - z) / cell, 0.0, 1.0).mean(axis=1)
        occ[columns, :top] = fill > FILL_THRESHOLD
        return occ


# -- drawing lots ----------------------------------------------------------------------------
def _uniform(rng, lo_hi) -> float:
    lo, hi = lo_hi
    return float(lo + (hi - lo) * rng.random())


def _pick(rng, weights: dict) -> str:
    names = list(weights)
    p = np.array([float(weights[n]) for n in names])
    return names[int((p / p.sum()).cumsum().searchsorted(rng.random(), side="right"))]


def draw_storeys(rng, cfg: dict, max_height: float, shop: bool) -> tuple[int, float, float, float]:
    """``(floors, ground height, upper floor height, eave height)`` fitting ``max_height``."""
    f = _uniform(rng, cfg["floor_height"])
    g = _uniform(rng, cfg["shop_floor_height"] if shop else cfg["ground_floor_height"])
    lo, hi = cfg["floors"]
    hi = max(lo, min(hi, int((max_height - g) // f) + 1))
    n = int(rng.integers(lo, hi + 1))
    eave = g + (n - 1) * f
    if eave > max_height and g <= max_height:   # floors' low end does not fit: as many as do
        n = int((max_height - g) // f) + 1
        eave = g + (n - 1) * f
    if eave > max_height:            # a tiny grid: one squashed floor
        n, g, eave = 1, max_height, max_height
    return n, g, f, eave


def _house(rng, cfg, x0, width, y0, depth, max_height, shop, roles) -> Wing:
    n, g, f, eave = draw_storeys(rng, cfg, max_height, shop)
    roof = _pick(rng, cfg["roof"])
    ridge_x = bool(rng.random() < cfg["ridge_along_street"])
    pitch = _uniform(rng, cfg["roof_pitch_deg"])
    room = max(0.0, max_height + 2.0 - eave)   # a roof may reach into the last layer's air
    return Wing(x0, x0 + width, y0, y0 + depth, eave, roof, ridge_x, pitch,
                min(cfg["max_roof_rise"], room), g, f, n, dict(roles))


def draw_lot(rng: np.random.Generator, cfg: dict, extent: tuple[float, float, float],
             cell: float, archetype_weights: dict) -> Lot:
    """One building with its neighbours, not yet placed (see :func:`place`)."""
    fc = cfg
    block = _pick(rng, fc["blocks"])
    span = 0.9 * min(extent[0], extent[1])
    max_height = extent[2] - 0.6 * cell
    shop = bool(rng.random() < fc["ground_floor"].get("shop", 0.0) / max(
        1e-9, sum(fc["ground_floor"].values())))
    if block == "archetype":
        return _archetype_lot(rng, fc, extent, cell, archetype_weights, max_height, shop)
    lo_w, hi_w = fc["frontage"]
    width = min(span, lo_w + (min(hi_w, span) - lo_w) * rng.random() ** 1.5)
    width = max(width, min(span, lo_w))
    depth = min(span, _uniform(rng, fc["depth"]))
    roles = {"-y": "street", "+y": "back", "-x": "side", "+x": "side"}
    street = ("-y",)
    if block == "row":
        roles["-x"] = roles["+x"] = "party"
    elif block == "row_end":
        roles[("-x", "+x")[int(rng.integers(2))]] = "party"
    elif block == "corner":
        roles["+x"], roles["-x"] = "street", "party"
        street = ("-y", "+x")
    elif block == "island":      # streets all round, or on three sides with a back yard
        roles = {side: "street" for side in LOCAL_SIDES}
        if rng.random() < 0.5:
            roles["+y"] = "back"
        street = tuple(side for side in LOCAL_SIDES if roles[side] == "street")
    main = _house(rng, fc, 0.0, width, 0.0, depth, max_height, shop, roles)
    wings = [main]
    # a rear wing (L plan) behind one end
    if rng.random() < fc["rear_wing"] and depth + 3.0 < span:
        w = width * _uniform(rng, (0.35, 0.7))
        d = min(span - depth, _uniform(rng, (3.0, 10.0)))
        x0 = 0.0 if rng.random() < 0.5 else width - w
        rear_roles = {"-y": "back", "+y": "back", "-x": "back", "+x": "back"}
        if block in ("row", "row_end", "corner"):
            rear_roles["-x" if x0 == 0.0 else "+x"] = roles["-x" if x0 == 0.0 else "+x"]
        elif block == "island":  # its outer walls face the streets around (or the yard)
            rear_roles = {"-y": roles["+y"], "+y": roles["+y"], "-x": "street", "+x": "street"}
        rear = _house(rng, fc, x0, w, depth, d, min(max_height, main.eave + 0.1), False, rear_roles)
        rear.ridge_x = False
        wings.append(rear)
    # a shallow projection on the street side (a risalit / bay), full height
    if rng.random() < fc["protrusions"] and width > 6.0:
        w = min(width - 2.0, _uniform(rng, (2.0, 6.0)))
        d = _uniform(rng, (0.5, 1.5))
        x0 = _uniform(rng, (1.0, width - 1.0 - w))
        wings.append(Wing(x0, x0 + w, -d, 0.5, main.eave, "flat", True, main.pitch, 0.0,
                          main.ground_height, main.floor_height, main.floors,
                          {"-y": "street", "+y": "back", "-x": "return", "+x": "return"}))
    neighbours = []
    for side in ("-x", "+x"):
        if roles[side] != "party":
            continue
        nw = _uniform(rng, (5.0, 14.0))
        nd = _uniform(rng, (max(4.0, depth - 4.0), depth + 4.0))
        ny0 = _uniform(rng, (-1.0, 1.0))
        nx0 = -nw if side == "-x" else width
        neighbours.append(_house(rng, fc, nx0, nw, ny0, nd, max_height + 3.0, False, {}))
    return Lot(block, wings, neighbours, street, shop)


def _archetype_lot(rng, fc, extent, cell, archetype_weights, max_height, shop) -> Lot:
    """A legacy archetype's rectangles (cells) as wings in metres, with a street side."""
    names = [n for n, w in archetype_weights.items() if w > 0]
    name = _pick(rng, {n: archetype_weights[n] for n in names})
    side = int(min(extent[0], extent[1]) // cell)
    rects, _ = ARCHETYPE_FUNCTIONS[name](rng, side, side, int(extent[2] // cell))
    wings = []
    for x0, x1, y0, y1, h in rects:
        n, g, f, eave = draw_storeys(rng, {**fc, "floors": [1, max(1, int(h))]},
                                     min(max_height, h * cell), False)
        roof = _pick(rng, fc["roof"]) if rng.random() < 0.5 else "flat"
        wings.append(Wing(x0 * cell, x1 * cell, y0 * cell, y1 * cell, eave, roof,
                          bool(rng.random() < 0.5), _uniform(rng, fc["roof_pitch_deg"]),
                          min(fc["max_roof_rise"], max(0.0, max_height + 2.0 - eave)), g, f, n))
    street = ("-y", "+x") if rng.random() < fc["corner_archetypes"] else ("-y",)
    for w in wings:
        for side in LOCAL_SIDES:
            role = "street" if side in street else "back" if side == "+y" else "side"
            w.roles[side] = "court" if _faces_a_taller_wing(w, side, wings) else role
    return Lot(name, wings, [], street, shop)


def _faces_a_taller_wing(wing: Wing, side: str, wings: list[Wing]) -> bool:
    """Whether another wing at least as tall stands in front of this wall (a courtyard or
    re-entrant wall, not the building's outer face on that side)."""
    for other in wings:
        if other is wing or other.eave < wing.eave:
            continue
        if side in ("+x", "-x"):
            overlap = min(wing.y1, other.y1) - max(wing.y0, other.y0) > 0.5
            ahead = other.x0 >= wing.x1 - 1e-6 if side == "+x" else other.x1 <= wing.x0 + 1e-6
        else:
            overlap = min(wing.x1, other.x1) - max(wing.x0, other.x0) > 0.5
            ahead = other.y0 >= wing.y1 - 1e-6 if side == "+y" else other.y1 <= wing.y0 + 1e-6
        if overlap and ahead:
            return True
    return False


def place(lot: Lot, rng: np.random.Generator, cfg: dict, shape, cell: float) -> Lot:
    """Turn the lot (a quarter turn, maybe a small angle) and put it in the grid: its low
    corner on a cell boundary (``half_cell_offsets``: anywhere), inside the grid."""
    angle = 90.0 * int(rng.integers(4))
    if rng.random() < cfg["rotation_probability"]:
        angle += _uniform(rng, (-cfg["rotation_deg"], cfg["rotation_deg"]))
    lot.angle_deg, lot.offset = angle, (0.0, 0.0)
    corners = lot.corners(lot.wings)
    low, high = corners.min(axis=0), corners.max(axis=0)
    extent = np.array(shape[:2], dtype=float) * cell
    free = np.maximum(0.0, extent - (high - low))
    cells = np.floor(free / cell).astype(int)
    start = np.array([rng.integers(c + 1) for c in cells], dtype=float) * cell
    if rng.random() < cfg["half_cell_offsets"]:
        start += np.minimum(rng.random(2) * cell, np.maximum(0.0, free - start))
    lot.offset = tuple(start - low)
    return lot


__all__ = ["Wing", "Wall", "Lot", "walls_of", "union_height", "draw_lot", "place", "ROOFS",
           "BLOCKS", "draw_storeys"]
