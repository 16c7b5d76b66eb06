"""Real buildings as proc-ml grids: CityGML 1.0/2.0/3.0 and CityJSON 1.0-2.0 (torch-free).

Three calls (all return arrays, none writes anything; bad input is a one-line
``proc_ml.errors.DatasetError``, see docs/citygml.md for the rules and measurements)::

    from proc_ml.citygml import read_city_file, voxelize_building, import_city_files

    city = read_city_file("4018265.xml")        # CityFile: .buildings, .errors, .crs, .metadata
    b = city.buildings[0]                       # CityBuilding: id, lod, crs, surfaces
    imp = voxelize_building(b, cell_size=3.0)   # ImportedBuilding
    imp.occupancy          # uint8[X, Y, Z], z up, layer k = [k, k+1] * cell above the lowest point
    imp.labels             # int8[X, Y, Z, 6] on exactly the exterior faces (with openings),
                           # None without ("massing to label"); -1 = no face
    imp.parts              # ('wall', 'window', 'door', 'roof', 'balcony', 'shopfront', 'ground')
    imp.rotation_deg, imp.origin   # grid +x axis angle from world +x; world corner of cell 0
    imp.street_sides       # e.g. ('+x', '-y'): sides with real openings (others: unknown)
    imp.label_known        # bool[X, Y, Z, 6]: faces whose label the scan supports
    imp.stats, imp.notes   # faces per part, openings per layer, watertight, method, time...

    result = import_city_files(["a.gml", "b.city.json", "folder/"], cell_size=3.0)
    result.buildings, result.errors, result.skipped   # skipped: smaller than half a cell

Modules: :mod:`.gml` and :mod:`.cityjson` (readers), :mod:`.crs`, :mod:`.geometry`
(polygon maths), :mod:`.occupancy` (fill methods), :mod:`.voxelize` (rotation, layers,
labelling rule), :mod:`.model` (the data classes).
"""

from .importer import CityImport, city_format, expand_paths, import_city_files, read_city_file
from .model import (KINDS, OPENING_KINDS, SHELL_KINDS, CityBuilding, CityFile, ImportedBuilding,
                    Polygon, Surface)
from .voxelize import DEFAULT_CELL_SIZE, MAX_CELLS_PER_AXIS, TooSmall, voxelize_building

__all__ = [
    "read_city_file", "voxelize_building", "import_city_files", "city_format", "expand_paths",
    "CityImport", "TooSmall", "CityFile", "CityBuilding", "Surface", "Polygon", "ImportedBuilding",
    "KINDS", "SHELL_KINDS", "OPENING_KINDS", "DEFAULT_CELL_SIZE", "MAX_CELLS_PER_AXIS",
]
