"""Plain data classes shared by the CityGML / CityJSON readers and the voxeliser (numpy only).

A file is read into a :class:`CityFile`: its buildings (:class:`CityBuilding`), one line per
building that could not be read (``errors``), the file's CRS and whatever licence /
attribution metadata it carries. A building is a flat list of :class:`Surface` objects, each
a semantic class (``KINDS``) with its polygons (exterior ring + interior rings, float64
``[N, 3]`` world coordinates, rings not repeated at the end).

:func:`proc_ml.citygml.voxelize_building` turns a building into an :class:`ImportedBuilding`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..alignment import rotation_z

#: Boundary surfaces of the building shell, in the CityGML 2.0 / 3.0 class names.
SHELL_KINDS = ("WallSurface", "RoofSurface", "GroundSurface", "OuterCeilingSurface",
               "OuterFloorSurface", "ClosureSurface")
#: Openings (CityGML 3.0 ``WindowSurface`` / ``DoorSurface`` and CityJSON ``Window`` /
#: ``Door`` are read as these).
OPENING_KINDS = ("Window", "Door")
#: ``Unclassified``: geometry with no semantic surface (LoD1/LoD2 solids, a CityJSON
#: geometry without ``semantics``); ``BuildingInstallation``: balconies, dormers, stairs...
#: attached to the building (kept for statistics, not part of the shell).
KINDS = SHELL_KINDS + OPENING_KINDS + ("Unclassified", "BuildingInstallation")
#: At most this many characters of a value from the file (an id, a CRS name, a parser
#: message) are quoted in an error line or a note: lines stay short whatever the file holds.
QUOTE_LIMIT = 80


def short(value, limit: int = QUOTE_LIMIT) -> str:
    """``value`` as one line of at most ``limit`` characters: whitespace runs collapsed,
    the middle of a longer text replaced by ``...`` (its start and end kept)."""
    text = " ".join(str(value).split())
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    return text[:head] + "..." + text[len(text) - (limit - 3 - head):]


@dataclass
class Polygon:
    """A planar polygon: ``exterior`` float64[N, 3] and ``interiors`` (holes), world units."""
    exterior: np.ndarray
    interiors: tuple[np.ndarray, ...] = ()
    polygon_id: str | None = None

    @property
    def rings(self) -> tuple[np.ndarray, ...]:
        return (self.exterior,) + tuple(self.interiors)


@dataclass
class Surface:
    """One semantic surface (a ``WallSurface``, a ``Window``...) and its polygons.

    ``parent`` is the index (in ``CityBuilding.surfaces``) of the wall / roof an opening is
    attached to, or ``None``.
    """
    kind: str
    polygons: list[Polygon]
    lod: int
    surface_id: str | None = None
    parent: int | None = None


def keep_surfaces(surfaces: list[Surface], keep) -> list[Surface]:
    """The surfaces whose index is in ``keep`` (a set or bool sequence), with every
    ``parent`` index renumbered (None where the parent is not kept)."""
    chosen = [i for i in range(len(surfaces)) if i in keep] if isinstance(keep, (set, frozenset)) \
        else [i for i, k in enumerate(keep) if k]
    new = {old: n for n, old in enumerate(chosen)}
    out = []
    for i in chosen:
        s = surfaces[i]
        out.append(Surface(s.kind, s.polygons, s.lod, s.surface_id,
                           new.get(s.parent) if s.parent is not None else None))
    return out


@dataclass
class CityBuilding:
    """A building (its BuildingParts merged in) as read from a CityGML / CityJSON file.

    ``lod`` is the highest LoD the building has geometry in; ``surfaces`` holds the
    surfaces of that LoD only. ``crs`` is the CRS name as the file writes it and ``epsg``
    its EPSG code when one could be parsed (horizontal code of a compound CRS).
    """
    building_id: str
    source: str
    lod: int
    surfaces: list[Surface]
    crs: str | None = None
    epsg: int | None = None
    part_ids: tuple[str, ...] = ()
    attributes: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def polygons(self, kinds=None) -> list[Polygon]:
        """All polygons of the surfaces whose kind is in ``kinds`` (all when None)."""
        return [p for s in self.surfaces if kinds is None or s.kind in kinds for p in s.polygons]

    def count(self, kind: str) -> int:
        return sum(1 for s in self.surfaces if s.kind == kind)

    @property
    def has_openings(self) -> bool:
        return any(s.kind in OPENING_KINDS for s in self.surfaces)


@dataclass
class CityFile:
    """What :func:`proc_ml.citygml.read_city_file` returns for one file."""
    path: str
    format: str                       # 'CityGML 2.0', 'CityGML 3.0', 'CityJSON 1.1', ...
    buildings: list[CityBuilding]
    errors: list[str]                 # one line per building that could not be read
    crs: str | None = None            # the file-level CRS name, if any
    metadata: dict = field(default_factory=dict)   # licence / attribution / producer


@dataclass
class ImportedBuilding:
    """A building on proc-ml's grid.

    Frames: ``rotation_deg`` is the angle (degrees, counter-clockwise seen from above) of
    the grid's +x axis from the world's +x axis (east for a projected CRS); ``origin`` is
    the **world** position (the file's CRS, unrotated) of the low corner of cell (0, 0, 0).
    A grid-frame offset ``g`` (metres along the grid axes) lies at world
    ``origin + Rz(rotation_deg) @ g``; cell ``(i, j, k)`` spans ``g`` in
    ``[i, i+1] x [j, j+1] x [k, k+1] * cell_size``. Layer ``k`` spans heights
    ``origin[2] + [k, k+1] * cell_size``, ``origin[2]`` being the building's lowest point.
    """
    building_id: str
    source: str
    lod: int
    occupancy: np.ndarray             # uint8[X, Y, Z]
    labels: np.ndarray | None         # int8[X, Y, Z, 6] (LoD3+), None for LoD1/LoD2
    rotation_deg: float
    origin: np.ndarray                # float64[3], world coordinates
    cell_size: float
    street_sides: tuple[str, ...]     # '+x', '-x', '+y', '-y' carrying a real opening
    stats: dict
    notes: list[str] = field(default_factory=list)
    crs: str | None = None
    parts: tuple[str, ...] = ()       # part vocabulary the labels index into
    #: bool[X, Y, Z, 6] (with labels): exterior faces whose label the source supports --
    #: top and bottom faces, and side faces on a street side. A blank wall elsewhere may
    #: just be a side the street scan never saw.
    label_known: np.ndarray | None = None
    #: float32[X, Y, Z, 6, 2] (with labels): share of each side face covered by windows
    #: ([..., 0]) and doors ([..., 1]) -- the numbers the labels threshold; soft targets.
    opening_cover: np.ndarray | None = None
    #: The source file's licence / attribution / producer metadata (``CityFile.metadata``).
    file_metadata: dict = field(default_factory=dict)

    def grid_to_world(self, points: np.ndarray) -> np.ndarray:
        """World coordinates of grid-frame points float64[..., 3] (metres from the origin)."""
        return np.asarray(points, dtype=np.float64) @ rotation_z(self.rotation_deg).T + self.origin

    def world_to_grid(self, points: np.ndarray) -> np.ndarray:
        """Grid-frame coordinates (metres from cell (0,0,0)'s low corner) of world points."""
        return (np.asarray(points, dtype=np.float64) - self.origin) @ rotation_z(self.rotation_deg)

    @property
    def cell_to_world(self) -> np.ndarray:
        """float64[4, 4]: homogeneous (i, j, k) cell-index coordinates -> world."""
        m = np.eye(4)
        m[:3, :3] = rotation_z(self.rotation_deg) * self.cell_size
        m[:3, 3] = self.origin
        return m
