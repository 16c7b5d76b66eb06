"""Finding the assets of a folder: recursive, sorted, deterministic, safe with symlinks.

* Hidden files and folders (name starting with '.') are skipped, as is the batch's own
  output folder when it lies inside the asset folder.
* Symlinked files are followed when their target lies inside the asset folder; a link that
  points outside it or nowhere becomes a failed item with a clear error (not silently
  dropped). Symlinked folders are not entered (no cycles, no escaping the folder).
  ``follow_symlinks=True`` follows both everywhere, entering each real folder once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..fileio import display_name
from ..meshio import extension_of
from .assets import ASSET_EXTENSIONS


@dataclass(frozen=True)
class FoundAsset:
    rel: str                 # path relative to the asset folder, '/'-separated; bytes of a
                             # name that are not UTF-8 are written as \xNN escapes
    path: Path               # the file to read (a symlink's resolved target)
    problem: str | None = None   # why it cannot be processed (bad symlink), else None


def parse_extensions(values) -> tuple[str, ...]:
    """``["obj,ply", ".STL"]`` -> ``("obj", "ply", "stl")``; None -> every supported type."""
    if not values:
        return ASSET_EXTENSIONS
    if isinstance(values, str):
        values = [values]
    out = []
    for value in values:
        for ext in value.split(","):
            ext = ext.strip().lower().lstrip(".")
            if ext and ext not in out:
                out.append(ext)
    return tuple(out)


#: Files that travel with assets (materials, buffers, textures, notes): never counted as
#: "not read" when a task passes them over.
COMPANION_SUFFIXES = frozenset({
    ".mtl", ".bin", ".png", ".jpg", ".jpeg", ".tga", ".bmp", ".tif", ".tiff", ".webp", ".exr",
    ".hdr", ".ktx2", ".dds", ".txt", ".md", ".json", ".xml", ".csv", ".yaml", ".yml", ".log",
    ".lock", ".pdf", ".html"})

#: Why an asset name that is a FIFO, socket, device or folder is not read (reading a FIFO
#: would wait forever for a writer).
NOT_A_FILE = "not a regular file (a FIFO, socket, device or folder)"


def walk_assets(root, extensions=ASSET_EXTENSIONS, exclude=(), follow_symlinks=False,
                others: dict | None = None) -> list[FoundAsset]:
    """Every asset under ``root`` with one of ``extensions``, sorted by relative path.
    ``others``, when given, counts the files passed over by type (``{".fbx": 3}``; hidden
    files and ``COMPANION_SUFFIXES`` are not counted)."""
    root = Path(root).resolve()
    wanted = {e.lower().lstrip(".") for e in extensions}
    excluded = {Path(p).resolve() for p in exclude}
    found: list[FoundAsset] = []
    visited = {root}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if _enter(here / d, excluded, visited, follow_symlinks))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if not _wanted(name, wanted):
                kind = Path(name).suffix.lower() or "(no extension)"
                if others is not None and kind not in COMPANION_SUFFIXES:
                    others[kind] = others.get(kind, 0) + 1
                continue
            found.append(_found(root, here / name, follow_symlinks))
    found.sort(key=lambda a: a.rel)
    return found


def _wanted(name: str, wanted: set) -> bool:
    return extension_of(name) in wanted or Path(name).suffix.lower().lstrip(".") in wanted


def _enter(path: Path, excluded: set, visited: set, follow_symlinks: bool) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_symlink() and not follow_symlinks:
        return False
    real = path.resolve()
    if real in excluded or path in excluded or real in visited:
        return False
    visited.add(real)
    return True


def _found(root: Path, path: Path, follow_symlinks: bool) -> FoundAsset:
    rel = display_name(path.relative_to(root).as_posix())
    if not path.is_symlink():
        return FoundAsset(rel, path, None if path.is_file() else NOT_A_FILE)
    target = path.resolve()
    if not target.exists():
        return FoundAsset(rel, path, f"broken symlink (points to "
                                     f"{display_name(os.readlink(path))})")
    if not target.is_file():
        return FoundAsset(rel, path, f"symlink to {display_name(str(target))}: {NOT_A_FILE}")
    if not follow_symlinks and root not in target.parents:
        return FoundAsset(rel, path, f"symlink points outside the asset folder "
                                     f"({display_name(str(target))}); use --follow-symlinks "
                                     f"to allow it")
    return FoundAsset(rel, target)
