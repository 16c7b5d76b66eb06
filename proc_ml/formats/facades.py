"""Paired facade images (pix2pix data), "label folders" layout: ``labels/NAME.png``
(colour-coded label maps), ``images/NAME.png`` (the matching photo or texture),
``palette.json`` (the label colours) and the optional manifest ``facades.json`` (palette,
sizes, seed and a split per pair; written by ``proc-ml generate facades``). docs/pix2pix.md.
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
LABELS_DIR = "labels"
IMAGES_DIR = "images"
FORMAT = "proc-ml-facades"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


def _read_json(path: Path, what: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


def read_palette(path: str | os.PathLike) -> Palette:
    """A palette JSON file: a list of ``{"name", "colour"}`` or ``{"palette": [...]}``."""
    data = _read_json(Path(path), "palette file")
    if isinstance(data, dict):
        data = data.get("palette")
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of palette entries or {{\"palette\": [...]}}")
    return Palette.from_json(data, str(path))


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
