"""File-level entry points: pick the reader, import many files, collect one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DatasetError
from ..procedural.parts import DEFAULT_PARTS
from .cityjson import read_cityjson
from .gml import read_citygml
from .model import CityFile, ImportedBuilding
from .voxelize import DEFAULT_CELL_SIZE, voxelize_building

GML_SUFFIXES = (".gml", ".xml")
JSON_SUFFIXES = (".json", ".cityjson")          # .city.json ends in .json


def city_format(path: str | os.PathLike) -> str:
    """'citygml' or 'cityjson', by suffix, else by the first character of the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in GML_SUFFIXES:
        return "citygml"
    if suffix in JSON_SUFFIXES:
        return "cityjson"
    try:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if head.startswith(b"<"):
        return "citygml"
    if head.startswith(b"{"):
        return "cityjson"
    raise DatasetError(f"{path}: not a CityGML or CityJSON file (expected "
                       f"{', '.join(GML_SUFFIXES + JSON_SUFFIXES)}, or XML / JSON content)")


def read_city_file(path: str | os.PathLike, crs: str | None = None) -> CityFile:
    """Read the buildings of one CityGML (1.0/2.0/3.0) or CityJSON (1.0-2.0) file.

    ``crs`` overrides the file's CRS name (for files that give none or a wrong one).
    A file that cannot be read at all raises ``DatasetError`` (one line); a building that
    cannot be read is one line in ``CityFile.errors`` and the others are still returned.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if city_format(path) == "citygml":
        return read_citygml(path, crs)
    return read_cityjson(path, crs)


def expand_paths(paths) -> list[Path]:
    """Files as given, folders as their CityGML / CityJSON files (sorted, not recursive)."""
    out = []
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file()
                          and f.suffix.lower() in GML_SUFFIXES + JSON_SUFFIXES)
        else:
            out.append(p)
    return out


def import_city_files(paths, cell_size: float = DEFAULT_CELL_SIZE, method: str = "flux",
                      crs: str | None = None, check_watertight: bool = True,
                      parts: tuple[str, ...] = DEFAULT_PARTS,
                      ) -> tuple[list[ImportedBuilding], list[str]]:
    """Read and voxelise every building of every file (folders: their city files).

    Returns the imported buildings and one line per file or building that failed; one
    bad building never stops the others, one bad file never stops the other files.
    """
    imported, errors = [], []
    for path in expand_paths(paths):
        try:
            city = read_city_file(path, crs)
        except DatasetError as exc:
            errors.append(str(exc))
            continue
        errors += city.errors
        for building in city.buildings:
            try:
                result = voxelize_building(building, cell_size, method, parts,
                                           check_watertight=check_watertight)
            except DatasetError as exc:
                errors.append(str(exc))
                continue
            result.file_metadata = dict(city.metadata)
            imported.append(result)
    return imported, errors
