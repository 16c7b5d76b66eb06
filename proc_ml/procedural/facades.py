"""The facade grammar: floors, bays and openings on every wall, and the grid faces they label.

Rules (CGA-like, per wall of every wing, :func:`layout_walls`):

* **Floors.** A ground floor (``ground_floor_height``; shop ground floors are taller), upper
  floors (``floor_height``) up to the eaves; above the eaves a gable end has attic storeys.
* **Bays** are counted from the wall's own ends: ``n = max(1, round(length / bay_width))``
  equal bays, an opening centred in each bay tile, so the same massing gets the same
  openings wherever it stands in the grid.
* **Roles.** ``street`` walls: a window in every bay of every upper floor (but for a
  windowless bay column, e.g. a stair core, with ``windowless_bay``); the ground floor is a
  shop (glazing in every bay), residential (windows) or a plinth (blank), and carries the
  entrance(s). ``back`` / ``court`` walls: regular, sparse (every other bay) or blank, by
  ``back``. ``side`` walls: the same choice by ``side``. ``party`` walls (touching a
  neighbour) and ``return`` walls (the short sides of a projection) are blank.
* **Entrances** on the main street wall's ground floor, by ``entrance``: ``centre`` (the
  middle bay; of two middles, either), ``end`` (the first or last bay), ``group`` (every
  2nd-4th bay from a random start: a row of units), ``any`` (a random bay). A back wall gets a
  back door with ``back_door``.
* **Attics.** A gable end gets a window in its middle bay on each attic storey with
  ``attic_windows``.
* **Noise.** Each upper-floor opening is dropped with ``opening_noise`` (per floor).

Openings are rectangles in metres (``window_width`` x ``window_height`` above a sill; doors
``door_width`` x ``door_height`` from the floor; shop glazing the bay less its piers). Every
exterior side face of the grid is rasterised (``labelling.SUB`` bins a side), each bin is
given to the nearest wall facing its way within ``labelling.DEPTH_TOLERANCE`` cells, and the
face is labelled by ``labelling.side_parts``: the real-building import's coverage rule, so a
generated grid and an imported one mean the same thing. Bins above a wall's top (the side
faces of roof steps) and bins where a neighbour or another wing stands in front of the wall
get no opening: **wall**, as the import labels them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..grid import DIRECTION_VECTORS, DOWN, NO_PART, UP, along_axis, exterior_faces_by_direction
from ..labelling import DEPTH_TOLERANCE, SUB, WINDOW_THRESHOLD, main_faces, side_parts
from .lots import Lot, Wall, _pick, _uniform, union_height, walls_of
from .parts import Vocabulary

NONE, WINDOW, DOOR, SHOP = 0, 1, 2, 3
ROLES = ("street", "back", "court", "side", "party", "return")
ENTRANCES = ("centre", "end", "group", "any")
DENSITIES = ("regular", "sparse", "blank")
GROUND_FLOORS = ("shop", "residential", "plinth")
#: Shop glazing: from this height above the floor to this much under the next floor.
SHOP_SILL, SHOP_HEAD_GAP, SHOP_PIER = 0.3, 0.5, 0.5
#: An attic storey needs this much height under the ridge (m).
ATTIC_MIN_HEIGHT = 2.2
#: How far in front of a wall (m) another solid blocks it (a neighbour: a party wall).
PROBE = 0.3


@dataclass
class FacadeStyle:
    """Per-building choices of the grammar (drawn by :func:`draw_style`)."""
    ground: str                 # shop | residential | plinth
    entrance: str               # centre | end | group | any
    back: str                   # regular | sparse | blank
    side: str                   # regular | sparse | blank
    bay_width: float
    window_width: float
    window_height: float
    sill: float
    ground_sill: float
    door_width: float
    door_height: float
    windowless_bay: bool
    attic_windows: bool
    back_door: bool
    noise: float


def draw_style(rng: np.random.Generator, cfg: dict, shop: bool) -> FacadeStyle:
    ground_weights = dict(cfg["ground_floor"])
    ground = "shop" if shop else _pick(rng, {k: v for k, v in ground_weights.items()
                                               if k != "shop"} or {"residential": 1.0})
    return FacadeStyle(
        ground=ground, entrance=_pick(rng, cfg["entrance"]), back=_pick(rng, cfg["back"]),
        side=_pick(rng, cfg["side"]), bay_width=_uniform(rng, cfg["bay_width"]),
        window_width=_uniform(rng, cfg["window_width"]),
        window_height=_uniform(rng, cfg["window_height"]), sill=_uniform(rng, cfg["sill"]),
        ground_sill=_uniform(rng, cfg["ground_sill"]), door_width=_uniform(rng, cfg["door_width"]),
        door_height=_uniform(rng, cfg["door_height"]),
        windowless_bay=bool(rng.random() < cfg["windowless_bay"]),
        attic_windows=bool(rng.random() < cfg["attic_windows"]),
        back_door=bool(rng.random() < cfg["back_door"]), noise=float(cfg["opening_noise"]))


@dataclass
class WallLayout:
    """Openings of one wall: ``kinds[bay, storey]`` on bays of ``bay`` metres from ``a``;
    storeys start at ``bases`` (metres above ground, ascending)."""
    wall: Wall
    bay: float
    bases: np.ndarray           # float[S]
    kinds: np.ndarray           # int8[B, S]
    main_street: bool = False


def _storey_bases(wing, wall: Wall, attic: bool) -> np.ndarray:
    bases = [0.0] + [wing.ground_height + i * wing.floor_height for i in range(wing.floors - 1)]
    if attic and wall.gable:
        ridge = float(wall.top(wing, np.array(wall.length / 2)))
        z = wing.eave
        while z + ATTIC_MIN_HEIGHT < ridge:
            bases.append(z)
            z += wing.floor_height
    return np.array(bases)


def _density_mask(rng, density: str, bays: int, storeys: int) -> np.ndarray:
    if density == "regular":
        return np.ones((bays, storeys), dtype=bool)
    if density == "sparse":
        start = int(rng.integers(2))
        col = (np.arange(bays) % 2) == start
        if not col.any():
            col[0] = True
        return np.repeat(col[:, None], storeys, axis=1)
    return np.zeros((bays, storeys), dtype=bool)


def _entrance_bays(rng, style: FacadeStyle, bays: int) -> list[int]:
    if style.entrance == "centre":
        mid = (bays - 1) / 2
        return [int(np.floor(mid)) if rng.random() < 0.5 else int(np.ceil(mid))]
    if style.entrance == "end":
        return [0 if rng.random() < 0.5 else bays - 1]
    if style.entrance == "group":
        step = int(rng.integers(2, 5))
        return list(range(int(rng.integers(step)) % bays, bays, step)) or [0]
    return [int(rng.integers(bays))]


def layout_walls(lot: Lot, style: FacadeStyle, rng: np.random.Generator) -> list[WallLayout]:
    """Every wall's openings (see the module docstring)."""
    walls = walls_of(lot.wings)
    street_walls = [i for i, w in enumerate(walls) if w.role == "street"]
    main = max(street_walls, key=lambda i: (walls[i].wing == 0, walls[i].length), default=None)
    layouts = []
    for i, wall in enumerate(walls):
        wing = lot.wings[wall.wing]
        bays = max(1, int(round(wall.length / style.bay_width)))
        bases = _storey_bases(wing, wall, style.attic_windows)
        storeys = len(bases)
        kinds = np.zeros((bays, storeys), dtype=np.int8)
        upper = slice(1, wing.floors)
        attic = slice(wing.floors, storeys)
        if wall.role == "street":
            kinds[:, upper] = WINDOW
            if style.windowless_bay and bays >= 3:
                kinds[int(rng.integers(bays)), upper] = NONE
            kinds[:, 0] = {"shop": SHOP, "residential": WINDOW, "plinth": NONE}[style.ground]
        elif wall.role in ("back", "court", "side"):
            density = style.side if wall.role == "side" else style.back
            mask = _density_mask(rng, density, bays, storeys)
            kinds[mask] = WINDOW
            kinds[:, attic] = NONE
        if wall.role in ("street", "back", "court", "side") and storeys > 1:
            drop = rng.random((bays, wing.floors - 1)) < style.noise
            kinds[:, upper][drop] = NONE
        if style.attic_windows and wall.gable and storeys > wing.floors and wall.role != "party" \
                and wall.role != "return" and not (wall.role != "street" and style.back == "blank"):
            kinds[(bays - 1) // 2, attic] = WINDOW
        if i == main:
            for b in _entrance_bays(rng, style, bays):
                kinds[b, 0] = DOOR
        elif wall.role in ("back", "court") and style.back_door and wall.wing == 0:
            kinds[int(rng.integers(bays)), 0] = DOOR
        layouts.append(WallLayout(wall, wall.length / bays, bases, kinds, i == main))
    return layouts


# -- labelling the grid's side faces ----------------------------------------------------------
def _face_samples(ext_d: np.ndarray, d: int, cell: float):
    """Bin centres of every exterior face of direction ``d``: ``(face flat ids, xyz [N, 3])``."""
    i, j, k = np.nonzero(ext_d)
    flat = np.ravel_multi_index((i, j, k), ext_d.shape)
    offs = (np.arange(SUB) + 0.5) / SUB
    su, sz = (a.ravel() for a in np.meshgrid(offs, offs, indexing="ij"))
    u_axis = along_axis(d)
    base = np.stack([i, j, k], axis=1).astype(float)
    plane_axis = 0 if d < 2 else 1
    pts = np.repeat(base, SUB * SUB, axis=0)
    pts[:, u_axis] += np.tile(su, len(i))
    pts[:, 2] += np.tile(sz, len(i))
    pts[:, plane_axis] += 1.0 if d in (0, 2) else 0.0
    return np.repeat(flat, SUB * SUB), pts * cell


class WallTable:
    """Every wall of a lot as arrays, to find which wall a point on a facade belongs to and
    which opening (if any) covers it. Shared by the grid labels and the mesh labels."""

    def __init__(self, lot: Lot, layouts: list[WallLayout], style: FacadeStyle):
        self.lot, self.style = lot, style
        walls = [lay.wall for lay in layouts]
        self.wing_of = np.array([w.wing for w in walls])
        self.sides = [w.side for w in walls]
        self.normals = np.array([w.normal for w in walls])                  # [W, 2]
        self.planes = np.array([w.plane for w in walls])
        self.lo = np.array([w.a for w in walls])
        self.length = np.array([w.b for w in walls]) - self.lo
        self.tangent = np.stack([np.abs(self.normals[:, 1]), np.abs(self.normals[:, 0])], axis=1)
        self.n_bays = max(lay.kinds.shape[0] for lay in layouts)
        self.n_storeys = max(lay.kinds.shape[1] for lay in layouts)
        self.kinds = np.zeros((len(walls), self.n_bays, self.n_storeys), dtype=np.int8)
        self.bases = np.full((len(walls), self.n_storeys + 1), np.inf)
        for w, lay in enumerate(layouts):
            b, st = lay.kinds.shape
            self.kinds[w, :b, :st] = lay.kinds
            self.bases[w, :st] = lay.bases
        self.bay_w = np.array([lay.bay for lay in layouts])
        self.n_b = np.array([lay.kinds.shape[0] for lay in layouts])
        wings = [lot.wings[wl.wing] for wl in walls]
        self.eave = np.array([wg.eave for wg in wings])
        self.gable = np.array([wl.gable and wg.roof == "gable" for wl, wg in zip(walls, wings)])
        self.slope = np.tan(np.radians([wg.pitch for wg in wings]))
        self.max_rise = np.array([wg.max_rise for wg in wings])
        self.solids = lot.wings + lot.neighbours

    def assign(self, local: np.ndarray, z: np.ndarray, facing: np.ndarray, tolerance: float):
        """For points (local metres ``[N, 2]``, heights ``[N]``) on faces whose outward
        normal is ``facing`` (local, ``[2]``): ``(rows, wall, u)`` of the points that lie on a
        wall facing that way within ``tolerance`` metres, under its top (not a roof step) and
        with nothing standing right in front of it (a neighbour: a party wall)."""
        empty = (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
        cand = np.nonzero(self.normals @ facing >= np.cos(np.radians(45.0)))[0]
        if not len(cand) or not len(local):
            return empty
        depth = local @ self.normals[cand].T - self.planes[cand]           # [N, W'] outward +
        u = local @ self.tangent[cand].T - self.lo[cand]                    # [N, W'] from the start
        ok = (np.abs(depth) <= tolerance) & (u >= -0.05) & (u <= self.length[cand] + 0.05)
        dist = np.where(ok, np.abs(depth), np.inf)
        pick = dist.argmin(axis=1)
        rows = np.nonzero(np.isfinite(dist[np.arange(len(pick)), pick]))[0]
        w = cand[pick[rows]]
        uu = u[rows, pick[rows]]
        dd = depth[rows, pick[rows]]
        zz = z[rows]
        rise = np.minimum(self.slope[w] * np.clip(np.minimum(uu, self.length[w] - uu), 0.0, None),
                          self.max_rise[w])
        under = zz <= self.eave[w] + np.where(self.gable[w], rise, 0.0) + 1e-6
        probe = local[rows] - dd[:, None] * self.normals[w] + PROBE * self.normals[w]
        blocked = union_height(self.solids, probe[:, 0], probe[:, 1]) > zz
        keep = under & ~blocked
        return rows[keep], w[keep], uu[keep]

    def openings(self, w: np.ndarray, u: np.ndarray, z: np.ndarray):
        """``(kind, opening id)`` at wall points: kind ``NONE / WINDOW / DOOR / SHOP`` where
        an opening's rectangle covers the point, the id of its (wall, bay, storey) tile."""
        st = self.style
        bay = np.clip(np.floor(u / self.bay_w[w]).astype(int), 0, self.n_b[w] - 1)
        storey = np.maximum((z[:, None] >= self.bases[w]).sum(axis=1) - 1, 0)
        storey = np.minimum(storey, self.n_storeys - 1)
        kind = self.kinds[w, bay, storey]
        du = np.abs(u - (bay + 0.5) * self.bay_w[w])
        zin = z - self.bases[w, storey]
        sill = np.where(storey == 0, st.ground_sill, st.sill)
        window = (kind == WINDOW) & (du <= st.window_width / 2) & (zin >= sill) \
            & (zin <= sill + st.window_height)
        door = (kind == DOOR) & (du <= st.door_width / 2) & (zin <= st.door_height)
        storey_h = self.bases[w, storey + 1] - self.bases[w, storey]
        storey_h = np.where(np.isfinite(storey_h), storey_h, 3.0)
        shop = (kind == SHOP) & (du <= self.bay_w[w] / 2 - SHOP_PIER / 2) & (zin >= SHOP_SILL) \
            & (zin <= storey_h - SHOP_HEAD_GAP)
        out = np.select([door, window, shop], [DOOR, WINDOW, SHOP], NONE).astype(np.int8)
        return out, (w * self.n_bays + bay) * self.n_storeys + storey


def label_grid(occ: np.ndarray, lot: Lot, layouts: list[WallLayout], style: FacadeStyle,
               cell: float, vocab: Vocabulary, shop_part: str = "window") -> np.ndarray:
    """``int8[X, Y, Z, 6]`` parts on exactly the exterior faces (the import's coverage rule,
    ``labelling.side_parts``, on ``SUB`` x ``SUB`` bins per face)."""
    roles = {r: vocab.role(r) for r in ("wall", "window", "door", "roof", "ground")}
    shop = vocab.role(shop_part) if shop_part != "window" else roles["window"]
    ext = exterior_faces_by_direction(occ)
    labels = np.full(occ.shape + (6,), NO_PART, dtype=np.int8)
    table = WallTable(lot, layouts, style)
    bin_area = (cell / SUB) ** 2
    n_faces = occ.size
    for d in range(4):
        if not ext[d].any():
            continue
        face, pts = _face_samples(ext[d], d, cell)
        facing = lot.direction_to_local(DIRECTION_VECTORS[d][:2].astype(float))
        rows, w, u = table.assign(lot.to_local(pts[:, :2]), pts[:, 2], facing,
                                  DEPTH_TOLERANCE * cell)
        kind, opening = table.openings(w, u, pts[rows, 2])
        face = face[rows]
        cover = {k: np.bincount(face[kind == k], minlength=n_faces) / (SUB * SUB)
                 for k in (WINDOW, SHOP, DOOR)}
        main_door = main_faces(opening[kind == DOOR], face[kind == DOOR], bin_area, n_faces)
        if shop == roles["window"]:
            glazing = (kind == WINDOW) | (kind == SHOP)
            main_window = main_faces(opening[glazing], face[glazing], bin_area, n_faces)
            part = side_parts(cover[WINDOW] + cover[SHOP], cover[DOOR], main_window, main_door,
                              roles["wall"], roles["window"], roles["door"])
        else:
            # shop glazing is its own part: a face holding most of a shop opening is a
            # shopfront face, not a window face (only windows make window faces)
            main_window = main_faces(opening[kind == WINDOW], face[kind == WINDOW], bin_area,
                                     n_faces)
            main_shop = main_faces(opening[kind == SHOP], face[kind == SHOP], bin_area, n_faces)
            part = side_parts(cover[WINDOW], cover[DOOR], main_window, main_door,
                              roles["wall"], roles["window"], roles["door"])
            shop_face = ((cover[SHOP] >= WINDOW_THRESHOLD) | main_shop) & (part == roles["wall"])
            part = np.where(shop_face, np.int8(shop), part)
        np.copyto(labels[..., d], part.reshape(occ.shape), where=ext[d])
    np.copyto(labels[..., UP], np.int8(roles["roof"]), where=ext[UP])
    np.copyto(labels[..., DOWN], np.int8(roles["wall"]), where=ext[DOWN])
    np.copyto(labels[:, :, 0, DOWN], np.int8(roles["ground"]), where=ext[DOWN][:, :, 0])
    return labels
