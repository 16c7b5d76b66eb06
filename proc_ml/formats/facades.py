"""Paired facade images (pix2pix data), "label folders" layout: ``labels/NAME.png``
(colour-coded label maps), ``images/NAME.png`` (the matching photo or texture), the label
colours as ``palette.json`` or ``palette.txt``, optional split lists ``splits/train.txt``,
``splits/val.txt``, ``splits/test.txt`` and the optional manifest ``facades.json``
(palette, sizes, seed and a split per pair; written by ``proc-ml generate facades``).
docs/pix2pix.md.

Palette files (``read_palette``):

* **JSON** (``.json``): a list of ``{"name": ..., "colour": [r, g, b]}`` entries, or
  ``{"palette": [...]}`` holding that list;
* **text** (any other suffix, e.g. ``palette.txt``): one class per line, in either form

  ``NAME = R:G:B`` (also ``R,G,B`` or ``R G B`` after the ``=``) or ``NAME R G B``

  with 0..255 integers; the class order is the line order, ``#`` starts a comment, blank
  lines are skipped, a name may contain spaces (``window frame = 40:40:40``).

Split lists (``read_split_lists``): ``splits/<split>.txt`` (``train``, ``val``, ``test``),
one pair name per line (the label file's stem, or its file name), ``#`` comments.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import DatasetError
from ..fileio import write_text
from ..textures.palette import Palette

MANIFEST = "facades.json"
PALETTE_FILE = "palette.json"
PALETTE_TEXT = "palette.txt"
SPLITS_DIR = "splits"
LABELS_DIR = "labels"
IMAGES_DIR = "images"
FORMAT = "proc-ml-facades"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


def _read_json(path: Path, what: str):
    from ..config import read_text

    text = read_text(path, what, DatasetError, limit=64 << 20)   # missing, huge, not UTF-8: one line
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


def read_palette(path: str | os.PathLike) -> Palette:
    """A palette file: JSON (``.json``: a list of ``{"name", "colour"}`` or
    ``{"palette": [...]}``) or text (any other suffix: ``NAME = R:G:B`` / ``NAME R G B``
    lines, see the module docstring)."""
    if Path(path).suffix.lower() != ".json":
        return read_palette_text(path)
    data = _read_json(Path(path), "palette file")
    if isinstance(data, dict):
        data = data.get("palette")
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of palette entries or {{\"palette\": [...]}}")
    return Palette.from_json(data, str(path))


def _text_lines(path: Path, what: str):
    """``(line number, text)`` of the non-blank lines of a text file, comments removed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read {what} ({type(exc).__name__})") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield number, line


def parse_palette_line(line: str) -> tuple[str, tuple[int, int, int]]:
    """``NAME = R:G:B`` (or ``R,G,B`` / ``R G B`` after ``=``) or ``NAME R G B`` ->
    ``(name, (r, g, b))``; ``ValueError`` when the line is neither."""
    if "=" in line:
        name, value = (part.strip() for part in line.split("=", 1))
        numbers = value.replace(":", " ").replace(",", " ").split()
    else:
        tokens = line.split()
        name, numbers = " ".join(tokens[:-3]), tokens[-3:]
    if not name or len(numbers) != 3 or not all(n.isdigit() for n in numbers):
        raise ValueError(line)
    colour = tuple(int(n) for n in numbers)
    if not all(0 <= c <= 255 for c in colour):
        raise ValueError(line)
    return name, colour


def read_palette_text(path: str | os.PathLike) -> Palette:
    """A text palette: one ``NAME = R:G:B`` or ``NAME R G B`` line per class, in order."""
    path = Path(path)
    names, colours = [], []
    for number, line in _text_lines(path, "palette file"):
        try:
            name, colour = parse_palette_line(line)
        except ValueError:
            raise DatasetError(f"{path}: line {number} '{line}' is not 'NAME = R:G:B' or "
                               f"'NAME R G B' with 0..255 integers") from None
        names.append(name)
        colours.append(colour)
    if not names:
        raise DatasetError(f"{path}: no palette entries (expected 'NAME = R:G:B' lines)")
    try:
        return Palette(tuple(names), tuple(colours))
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def read_split_lists(root: str | os.PathLike) -> dict[str, tuple[str, int]] | None:
    """``{pair name: (split, line)}`` from ``ROOT/splits/<split>.txt`` files, or None when
    the dataset has no ``splits/`` folder. Names are label-file stems (a listed file name
    loses its image suffix); one listed twice stops with the file and line."""
    from ..textures.images import IMAGE_SUFFIXES

    folder = Path(root) / SPLITS_DIR
    if not folder.is_dir():
        return None
    listed: dict[str, tuple[str, int]] = {}
    found = False
    for split in SPLITS:
        path = folder / f"{split}.txt"
        if not path.is_file():
            continue
        found = True
        for number, name in _text_lines(path, "split list"):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                name = Path(name).stem
            if name in listed:
                first = listed[name]
                raise DatasetError(f"{path}: line {number}: pair '{name}' is already listed in "
                                   f"{SPLITS_DIR}/{first[0]}.txt line {first[1]}")
            listed[name] = (split, number)
    if not found:
        raise DatasetError(f"{folder}: no split lists (expected train.txt, val.txt and/or test.txt)")
    return listed


def write_palette(root: str | os.PathLike, palette: Palette) -> None:
    write_text(Path(root) / PALETTE_FILE, json.dumps({"palette": palette.to_json()}, indent=1) + "\n")


def read_manifest(root: str | os.PathLike) -> dict:
    """``facades.json`` of a dataset folder, or ``{}`` when it has none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return {}
    data = _read_json(path, "manifest")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping at top level")
    return data


def write_manifest(root: str | os.PathLike, manifest: dict) -> None:
    write_text(Path(root) / MANIFEST, json.dumps(manifest, indent=1) + "\n")
