"""File-level entry points: pick the reader, import many files, collect one-line errors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from ..procedural.parts import DEFAULT_PARTS
from .cityjson import read_cityjson, read_cityjson_seq
from .gml import read_citygml
from .model import CityFile, ImportedBuilding
from .voxelize import DEFAULT_CELL_SIZE, TooSmall, voxelize_building

GML_SUFFIXES = (".gml", ".xml", ".citygml")
JSON_SUFFIXES = (".json", ".cityjson", ".jsonl")     # .city.json / .city.jsonl end in these
#: Archives: refused with a hint to unpack them (suffix or magic bytes).
ARCHIVES = {".zip": b"PK\x03\x04", ".gz": b"\x1f\x8b", ".7z": b"7z\xbc\xaf\x27\x1c"}


def city_format(path: str | os.PathLike) -> str:
    """'citygml', 'cityjson' or 'cityjsonseq' (``.jsonl``), by suffix, else by the file's
    first bytes."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        with open(path, "rb") as fh:
            raw = fh.read(512)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if suffix in ARCHIVES or any(raw.startswith(magic) for magic in ARCHIVES.values()):
        raise DatasetError(f"{path}: an archive ({suffix or 'compressed'}); unpack it and import "
                           f"the city files inside")
    if suffix in GML_SUFFIXES:
        return "citygml"
    if suffix == ".jsonl":
        return "cityjsonseq"
    if suffix in JSON_SUFFIXES:
        return "cityjson"
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "citygml"
    if head.startswith(b"{"):
        return "cityjson"
    raise DatasetError(f"{path}: not a CityGML or CityJSON file (expected "
                       f"{', '.join(GML_SUFFIXES + JSON_SUFFIXES)}, or XML / JSON content)")


def read_city_file(path: str | os.PathLike, crs: str | None = None) -> CityFile:
    """Read the buildings of one CityGML (1.0/2.0/3.0), CityJSON (1.0-2.0) or CityJSON text
    sequence (``.city.jsonl``) file.

    ``crs`` overrides the file's CRS name (for files that give none or a wrong one).
    A file that cannot be read at all raises ``DatasetError`` (one line); a building that
    cannot be read is one line in ``CityFile.errors`` and the others are still returned.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    kind = city_format(path)
    if kind == "citygml":
        return read_citygml(path, crs)
    if kind == "cityjsonseq":
        return read_cityjson_seq(path, crs)
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


@dataclass
class CityImport:
    """What :func:`import_city_files` returns: the ``buildings`` on the grid, one line per
    file or building that failed (``errors``), and one line per building ``skipped`` as
    smaller than half a cell (:class:`~proc_ml.citygml.voxelize.TooSmall`)."""
    buildings: list[ImportedBuilding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def import_city_files(paths, cell_size: float = DEFAULT_CELL_SIZE, method: str = "flux",
                      crs: str | None = None, check_watertight: bool = True,
                      parts: tuple[str, ...] = DEFAULT_PARTS) -> CityImport:
    """Read and voxelise every building of every file (folders: their city files).

    One bad building never stops the others, one bad file never stops the other files.
    """
    result = CityImport()
    for path in expand_paths(paths):
        try:
            city = read_city_file(path, crs)
        except DatasetError as exc:
            result.errors.append(str(exc))
            continue
        result.errors += city.errors
        for building in city.buildings:
            try:
                imported = voxelize_building(building, cell_size, method, parts,
                                             check_watertight=check_watertight)
            except TooSmall as exc:
                result.skipped.append(str(exc))
                continue
            except DatasetError as exc:
                result.errors.append(str(exc))
                continue
            imported.file_metadata = dict(city.metadata)
            result.buildings.append(imported)
    return result
