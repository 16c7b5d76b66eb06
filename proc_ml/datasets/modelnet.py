"""A folder of shapes in the ModelNet layout, for training on a user's own asset library.

Layout::

    ROOT/CLASS/train/*.off|obj|ply|stl|pcd|glb|gltf
    ROOT/CLASS/test/...

Every file is turned into the net's input once — ``num_points`` surface points and
normals (seeded ``trimesh.sample.sample_surface``, see ``pointclouds.shape_points``) or
a ``resolution``^3 occupancy grid — and cached as ``.npz`` under ``cache_dir`` (default
``ROOT/.proc_ml_cache``). The cache key is the SHA-256 of the file's bytes plus the
settings, so an edited asset or a new setting is recomputed and a renamed one is not;
cache files are written atomically. A file that cannot be read or holds no geometry is
skipped with a ``ShapeSkippedWarning`` naming it; the rest load.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..fileio import write_npz
from .pointclouds import SHAPE_SUFFIXES, load_shape, shape_occupancy, shape_points

SPLITS = ("train", "test")
REPRESENTATIONS = ("points", "voxels")
CACHE_DIR_NAME = ".proc_ml_cache"
#: Bump when the preprocessing changes what a cached entry holds.
CACHE_VERSION = 1


class ShapeSkippedWarning(UserWarning):
    """A shape file that could not be turned into a training example."""


@dataclass
class ShapeSettings:
    representation: str = "points"
    num_points: int = 1024
    resolution: int = 32
    seed: int = 0

    def key(self) -> dict:
        if self.representation == "points":
            return {"representation": "points", "num_points": self.num_points, "seed": self.seed,
                    "version": CACHE_VERSION}
        return {"representation": "voxels", "resolution": self.resolution, "version": CACHE_VERSION}


@dataclass
class ShapeExamples:
    """Loaded examples of one split: arrays by name, one row per kept file."""
    paths: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    arrays: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def is_shape_folder(root: str | os.PathLike) -> bool:
    root = Path(root)
    return root.is_dir() and any((d / s).is_dir() for d in root.iterdir() if d.is_dir() for s in SPLITS)


def compute_example(path, settings: ShapeSettings) -> dict:
    """The net input for one file (raises ``DatasetError`` naming the file)."""
    shape = load_shape(path)
    try:
        if settings.representation == "points":
            points, normals = shape_points(shape, settings.num_points, settings.seed)
            return {"points": points, "normals": normals}
        return {"occupancy": shape_occupancy(shape, settings.resolution)}
    except (ValueError, IndexError, MemoryError) as exc:
        raise DatasetError(f"{path}: cannot sample the shape ({type(exc).__name__}: {exc})") from None


class ShapeFolder:
    def __init__(self, root: str | os.PathLike, settings: ShapeSettings,
                 cache_dir: str | os.PathLike | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: shape folder not found")
        if settings.representation not in REPRESENTATIONS:
            raise DatasetError(f"representation must be one of {', '.join(REPRESENTATIONS)}, "
                               f"got '{settings.representation}'")
        self.settings = settings
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / CACHE_DIR_NAME
        self.classes = sorted(d.name for d in self.root.iterdir()
                              if d.is_dir() and not d.name.startswith(".")
                              and any((d / s).is_dir() for s in SPLITS))
        if len(self.classes) < 2:
            raise DatasetError(f"{self.root}: expected at least 2 class folders laid out as "
                               f"CLASS/train/*.off and CLASS/test/*.off (ModelNet layout), "
                               f"found {len(self.classes)}")

    def files(self, split: str) -> list[tuple[Path, int]]:
        if split not in SPLITS:
            raise DatasetError(f"{self.root}: no split named '{split}' (a shape folder has "
                               f"{', '.join(SPLITS)})")
        out = []
        for label, name in enumerate(self.classes):
            folder = self.root / name / split
            if folder.is_dir():
                out += [(p, label) for p in sorted(folder.iterdir())
                        if p.is_file() and p.suffix.lower() in SHAPE_SUFFIXES]
        return out

    def cache_path(self, path: Path) -> Path:
        digest = hashlib.sha256(path.read_bytes())
        digest.update(json.dumps(self.settings.key(), sort_keys=True).encode())
        return self.cache_dir / f"{digest.hexdigest()[:40]}.npz"

    def example(self, path: Path) -> dict:
        """Cached input for one file, computed (and cached) on the first request."""
        cached = self.cache_path(path)
        if cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as data:
                    return {k: data[k] for k in data.files}
            except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError):
                pass  # a damaged cache entry is recomputed and rewritten
        arrays = compute_example(path, self.settings)
        write_npz(cached, arrays)
        return arrays

    def load(self, split: str, limit: int = 0) -> ShapeExamples:
        files = self.files(split)
        if limit:
            files = files[:limit]
        examples = ShapeExamples()
        for path, label in files:
            try:
                arrays = self.example(path)
            except DatasetError as exc:
                reason = str(exc).split(": ", 1)[-1]
                examples.skipped.append((str(path), reason))
                warnings.warn(f"{path}: skipped ({reason})", ShapeSkippedWarning, stacklevel=2)
                continue
            examples.paths.append(str(path))
            examples.labels.append(label)
            examples.arrays.append(arrays)
        if not examples.paths:
            raise DatasetError(f"{self.root}: split '{split}' holds no readable shapes")
        return examples
