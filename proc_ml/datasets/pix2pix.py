"""Paired image datasets for pix2pix (label map -> texture), in the layouts users have.

Two layouts are read, detected from the folder:

* **label folders**: ``labels/NAME.png`` (colour-coded label maps; RGBA and palette-mode
  PNGs are read as RGB), ``images/NAME.*`` (the matching photo or texture, same size) and
  a palette: ``palette.json``, ``palette.txt`` (``NAME = R:G:B`` or ``NAME R G B`` lines,
  ``proc_ml.formats.facades``), the ``facades.json`` manifest's, or a file given as
  ``palette``. Every label colour must be in the palette; one that is not stops with a
  line naming the file, the colour and a pixel. Splits, first that applies: ``split``
  fractions (exact counts), split lists ``splits/{train,val,test}.txt`` (unlisted pairs are
  left out), the ``facades.json`` pairs, else a stable hash of the name (10 % val, 10 % test).
* **side by side** (the layout of the pix2pix reference datasets): ``train/``, ``test/``
  and optionally ``val/`` folders of images holding A and B side by side (A left).
  ``direction`` ``AtoB`` learns A -> B, ``BtoA`` learns B -> A (the CMP facades need
  ``BtoA``: their A is the photo).

Without a validation split (side-by-side without ``val/``, split lists without
``val.txt``), ``val_fraction`` of the training pairs (exact count, chosen by a stable hash
of the name) become the validation split; ``split_source`` says where the splits came from.

``pair(name)`` returns the full-resolution ``uint8[H, W, 3]`` (input, target); ``prepare``
returns one pair at a square working size as ``uint8[S, S, 7]`` (input RGB, target RGB,
mask), resampled by kind: label maps nearest-neighbour (palette colours stay exact),
photos with ``photo_filter`` (``bicubic`` by default, as the reference; ``area``
averages). ``aspect`` brings non-square images to the square: ``squash`` (resize, the
reference), ``pad`` (fit the longer side, pad the shorter with background, masked out) or
``crop`` (fit the shorter side, keep the centred square). ``PreparedPairs`` serves those
items from memory, from a cache file read item by item, or prepared on every access.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DatasetError
from ..textures.images import IMAGE_SUFFIXES
from ..formats.facades import (IMAGES_DIR, LABELS_DIR, MANIFEST, PALETTE_FILE, PALETTE_TEXT,
                               SPLITS, SPLITS_DIR, read_manifest, read_palette, read_split_lists)
from ..textures.palette import BACKGROUND, Palette

DIRECTIONS = ("AtoB", "BtoA")
ASPECTS = ("squash", "pad", "crop")
PHOTO_FILTERS = ("bicubic", "area", "bilinear", "lanczos", "nearest")
#: Channels of a prepared pair: input RGB, target RGB, mask (1 = scored pixel).
CHANNELS = 7
#: Bumped when prepared pairs (and so cache files) change.
PREPARE_VERSION = 1


def _image_files(folder: Path) -> dict[str, list[Path]]:
    """Every image of ``folder`` by name (stem): a name may have several files."""
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            out.setdefault(p.stem, []).append(p)
    return out


def _one_per_name(files: dict[str, list[Path]]) -> dict[str, Path]:
    """One image per name; two files of one name (``x.jpg`` and ``x.png``) are one line,
    never one of them picked in silence."""
    for paths in files.values():
        if len(paths) > 1:
            raise DatasetError(f"{paths[0]} and {paths[1].name} share the name '{paths[0].stem}': "
                               f"keep one image per name in {paths[0].parent}")
    return {stem: paths[0] for stem, paths in files.items()}


def _images_in(folder: Path) -> dict[str, Path]:
    return _one_per_name(_image_files(folder))


def _label_and_image_files(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The label and the photo of every name. With ``labels/`` and ``images/`` the same
    folder (the CMP facade database unpacks photo ``x.jpg``, label map ``x.png`` and
    ``x.xml`` into one folder), the PNG of a name is its label map and the other file its
    photo; otherwise each folder holds one image per name."""
    label_dir, image_dir = root / LABELS_DIR, root / IMAGES_DIR
    if not (label_dir.is_dir() and image_dir.is_dir() and label_dir.resolve() == image_dir.resolve()):
        return _images_in(label_dir), _images_in(image_dir)
    labels, images = {}, {}
    for stem, paths in _image_files(label_dir).items():
        pngs = [p for p in paths if p.suffix.lower() == ".png"]
        others = [p for p in paths if p.suffix.lower() != ".png"]
        if len(pngs) != 1 or len(others) > 1:
            raise DatasetError(f"{label_dir}: '{stem}' has {', '.join(p.name for p in paths)}; "
                               f"with labels/ and images/ one folder, a name needs its label "
                               f"map as .png and its photo in another format")
        labels[stem] = pngs[0]
        if others:
            images[stem] = others[0]
    return labels, images


def _hash_unit(name: str) -> float:
    return zlib.crc32(name.encode("utf-8")) / 2 ** 32


def hash_split(name: str, val: float = 0.1, test: float = 0.1) -> str:
    """A split that depends on the name only (stable across runs and machines)."""
    u = _hash_unit(name)
    return "test" if u < test else "val" if u < test + val else "train"


def _hash_order(names) -> list[str]:
    return sorted(names, key=lambda n: (_hash_unit(n), n))


def ratio_split(names, fractions) -> dict[str, str]:
    """``(train, val, test)`` fractions -> a split per name with exact counts
    (``round(fraction * n)`` val and test pairs), chosen by a stable hash of the name."""
    names = list(names)
    n = len(names)
    n_test = int(round(float(fractions[2]) * n))
    n_val = min(int(round(float(fractions[1]) * n)), n - n_test)
    order = _hash_order(names)
    out = {name: "train" for name in names}
    for name in order[:n_test]:
        out[name] = "test"
    for name in order[n_test:n_test + n_val]:
        out[name] = "val"
    return out


def carve_val(splits: dict[str, str], fraction: float) -> int:
    """Move ``round(fraction * n_train)`` training pairs (at least one when there are two
    or more) to ``val``, chosen by a stable hash; returns how many moved."""
    train = [n for n, s in splits.items() if s == "train"]
    count = int(round(fraction * len(train)))
    if fraction > 0 and len(train) >= 2:
        count = max(count, 1)
    count = min(count, max(len(train) - 1, 0))
    for name in _hash_order(train)[:count]:
        splits[name] = "val"
    return count


def check_fractions(split, val_fraction: float) -> tuple | None:
    """The ``split`` option as a ``(train, val, test)`` tuple (None: no ratio split)."""
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ConfigError(f"config key 'dataset.val_fraction' must be in [0, 1), got {val_fraction!r}")
    if split is None:
        return None
    try:
        values = tuple(float(v) for v in split)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"config key 'dataset.split' must be three fractions [train, val, test] "
                          f">= 0 summing to 1, got {split!r}")
    return values


class PairedImages:
    """A paired dataset: ``names(split)``, ``pair(name) -> (input, target)`` at full
    resolution and ``prepare(name, size, ...)`` at a square working size."""

    def __init__(self, root, layout: str, items: dict[str, tuple], splits: dict[str, str],
                 palette: Palette | None, manifest: dict, direction: str = "AtoB",
                 split_source: str = ""):
        self.root, self.layout = Path(root), layout
        self.items, self.split_of = items, splits
        self.palette, self.manifest, self.direction = palette, manifest, direction
        self.split_source = split_source
        self.palette_tolerance = 0.0          # > 0: label colours snapped (Palette.snap)

    @property
    def module_px(self) -> int | None:
        return self.manifest.get("module_px")

    def names(self, split: str | None = None) -> list[str]:
        return [n for n in self.items if split in (None, "all") or self.split_of[n] == split]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for n in self.items if self.split_of[n] == s) for s in SPLITS}

    def files(self, name: str) -> tuple[Path, ...]:
        return tuple(self.items[name])

    def background(self) -> tuple[int, int, int] | None:
        """The palette's background colour (None without a palette or background class)."""
        if self.palette is None or BACKGROUND not in self.palette.names:
            return None
        return tuple(self.palette.colours[self.palette.index(BACKGROUND)])

    def pair(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._images(name)
        return np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8)

    def _images(self, name: str):
        """The (input, target) PIL images of a pair, full resolution, label colours checked."""
        if self.layout == "labels":
            label_path, image_path = self.items[name]
            labels, image = open_rgb(label_path, "labels"), open_rgb(image_path)
            if labels.size != image.size:
                raise DatasetError(f"{label_path}: size {labels.size[0]}x{labels.size[1]} differs "
                                   f"from its image {image_path} ({image.size[0]}x{image.size[1]})")
            if self.palette_tolerance > 0:
                from PIL import Image

                labels = Image.fromarray(self.palette.snap(np.asarray(labels), self.palette_tolerance,
                                                           str(label_path)))
            else:
                self.palette.classes(np.asarray(labels), str(label_path))
            return labels, image
        (path,) = self.items[name]
        both = open_rgb(path)
        width, height = both.size
        if width % 2:
            raise DatasetError(f"{path}: side-by-side image width {width} is odd; "
                               f"expected A and B of equal width side by side")
        half = width // 2
        a, b = both.crop((0, 0, half, height)), both.crop((half, 0, width, height))
        return (a, b) if self.direction == "AtoB" else (b, a)

    def prepare(self, name: str, size: int, aspect: str = "squash",
                photo_filter: str = "bicubic") -> np.ndarray:
        """``uint8[size, size, 7]``: input RGB, target RGB and mask (1 where scored: inside
        the image and, with a palette, not background) at the working size. Label maps
        are resampled nearest-neighbour, photos (targets; both halves of side-by-side
        images) with ``photo_filter``."""
        a, b = self._images(name)
        label_input = self.layout == "labels"
        background = self.background()
        fill = background if (label_input and background is not None) else (0, 0, 0)
        a_sq, box = fit_square(a, size, aspect, "nearest" if label_input else photo_filter, fill)
        b_sq, _ = fit_square(b, size, aspect, photo_filter, (0, 0, 0))
        out = np.zeros((size, size, CHANNELS), dtype=np.uint8)
        out[..., 0:3] = np.asarray(a_sq, dtype=np.uint8)
        out[..., 3:6] = np.asarray(b_sq, dtype=np.uint8)
        left, top, right, bottom = box
        mask = out[top:bottom, left:right, 6]
        mask[...] = 1
        if label_input and background is not None:
            mask &= np.any(out[top:bottom, left:right, 0:3] != np.array(background, np.uint8), axis=2)
        return out

    def cache_key(self, names, size: int, aspect: str, photo_filter: str) -> str:
        """Hash of everything a prepared split depends on: the files (path, size,
        modification time), the names, the working size and resampling, the palette."""
        digest = hashlib.sha256()
        head = {"version": PREPARE_VERSION, "root": str(self.root.resolve()), "layout": self.layout,
                "direction": self.direction, "size": int(size), "aspect": aspect,
                "photo_filter": photo_filter,
                "palette": self.palette.to_json() if self.palette is not None else None}
        if self.palette_tolerance:
            head["palette_tolerance"] = self.palette_tolerance
        digest.update(json.dumps(head, sort_keys=True).encode())
        for name in names:
            for path in self.items[name]:
                try:
                    stat = os.stat(path)
                except OSError:
                    raise DatasetError(f"{path}: image not found") from None
                digest.update(f"{name}\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


def _filter(name: str):
    from PIL import Image

    table = {"bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX,
             "bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS,
             "nearest": Image.Resampling.NEAREST}
    if name not in table:
        raise ConfigError(f"config key 'dataset.photo_filter' must be one of "
                          f"{', '.join(PHOTO_FILTERS)}, got {name!r}")
    return table[name]


def fit_square(image, size: int, aspect: str, resample: str, fill=(0, 0, 0)):
    """A PIL image brought to ``size`` x ``size`` -> ``(image, (left, top, right, bottom))``,
    the box holding image content. ``squash``: resize (aspect ratio lost); ``pad``: the
    longer side fits, the rest is ``fill``; ``crop``: the shorter side fits, the centred
    square is kept. Shrinking with ``bicubic``/``area``/``bilinear``/``lanczos`` filters
    over the whole footprint (Pillow's resize), so photos are not aliased."""
    from PIL import Image

    filt = _filter(resample)
    w, h = image.size
    if aspect == "squash" or w == h:
        if (w, h) == (size, size):
            return image, (0, 0, size, size)
        return image.resize((size, size), filt), (0, 0, size, size)
    if aspect == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        return image.resize((size, size), filt, box=(left, top, left + side, top + side)), (0, 0, size, size)
    if aspect != "pad":
        raise ConfigError(f"config key 'dataset.aspect' must be one of {', '.join(ASPECTS)}, got {aspect!r}")
    scale = size / max(w, h)
    nw, nh = max(1, min(size, int(round(w * scale)))), max(1, min(size, int(round(h * scale))))
    canvas = Image.new("RGB", (size, size), tuple(int(c) for c in fill))
    left, top = (size - nw) // 2, (size - nh) // 2
    canvas.paste(image.resize((nw, nh), filt), (left, top))
    return canvas, (left, top, left + nw, top + nh)


def open_rgb(path, kind: str = "photo"):
    """A Pillow RGB image of ``path``, decoded now, upright and 8-bit
    (``textures.images.rgb_image``: EXIF orientation applied, 16-bit photos scaled, palette
    and alpha dropped); errors name the file."""
    from PIL import Image, UnidentifiedImageError

    from ..textures.images import rgb_image

    try:
        with Image.open(path) as im:
            return rgb_image(im, path, kind)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None


def open_pairs(root, direction: str = "AtoB", *, palette=None, split=None,
               val_fraction: float = 0.1, palette_tolerance: float = 0.0) -> PairedImages:
    """Open a paired dataset folder in either layout (see the module docstring).
    ``palette``: a palette file (JSON or text) to use instead of the folder's;
    ``palette_tolerance``: label colours within this RGB distance of a palette colour are
    read as it (``Palette.snap``; 0: exact colours only);
    ``split``: ``(train, val, test)`` fractions for label folders (exact counts);
    ``val_fraction``: share of train held out when the data has no validation split."""
    root = Path(root)
    if direction not in DIRECTIONS:
        raise DatasetError(f"direction must be AtoB or BtoA, got {direction!r}")
    fractions = check_fractions(split, val_fraction)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if not 0 <= float(palette_tolerance) <= 442:
        raise DatasetError(f"palette tolerance must be between 0 and 442 (an RGB distance), got "
                           f"{palette_tolerance}")
    if (root / LABELS_DIR).is_dir() and (root / IMAGES_DIR).is_dir():
        data = _open_label_folders(root, direction, palette, fractions, float(val_fraction))
        data.palette_tolerance = float(palette_tolerance)
        return data
    if any((root / s).is_dir() for s in SPLITS):
        if palette is not None or fractions is not None:
            raise DatasetError(f"{root}: side-by-side datasets take their splits from the train/ "
                               f"val/ test/ folders and have no palette (dataset.split and "
                               f"dataset.palette are for label folders)")
        return _open_side_by_side(root, direction, float(val_fraction))
    raise DatasetError(f"{root}: not a paired image dataset (expected labels/ + images/ + "
                       f"palette.json or palette.txt, or train/ [val/] test/ folders of "
                       f"side-by-side A|B images)")


def _find_palette(root: Path, given, manifest: dict) -> Palette:
    if given is not None:
        path = Path(given)
        if not path.is_absolute() and not path.is_file() and (root / path).is_file():
            path = root / path
        return read_palette(path)
    for name in (PALETTE_FILE, PALETTE_TEXT):
        if (root / name).is_file():
            return read_palette(root / name)
    if "palette" in manifest:
        return Palette.from_json(manifest["palette"], str(root / MANIFEST))
    raise DatasetError(f"{root}: label-map datasets need a {PALETTE_FILE} (a list of "
                       f"{{\"name\": ..., \"colour\": [r, g, b]}}) or a {PALETTE_TEXT} "
                       f"('NAME = R:G:B' lines)")


def _open_label_folders(root: Path, direction: str, given_palette, fractions,
                        val_fraction: float) -> PairedImages:
    manifest = read_manifest(root)
    palette = _find_palette(root, given_palette, manifest)
    labels, images = _label_and_image_files(root)
    if not labels:
        raise DatasetError(f"{root / LABELS_DIR}: no label images")
    missing = [n for n in labels if n not in images]
    if missing:
        raise DatasetError(f"{labels[missing[0]]}: no matching image {missing[0]}.* in {root / IMAGES_DIR}")
    lists = read_split_lists(root) if fractions is None else None
    if fractions is not None:
        splits = ratio_split(labels, fractions)
        source = "ratio " + "/".join(f"{f:g}" for f in fractions)
    elif lists is not None:
        unknown = [n for n in lists if n not in labels]
        if unknown:
            split, line = lists[unknown[0]]
            raise DatasetError(f"{root / SPLITS_DIR / (split + '.txt')}: line {line}: no pair "
                               f"'{unknown[0]}' in {root / LABELS_DIR}")
        splits = {n: lists[n][0] for n in labels if n in lists}
        source = f"{SPLITS_DIR}/*.txt"
        if not any(s == "val" for s in splits.values()):
            carved = carve_val(splits, val_fraction)
            source += f"; val carved from train ({carved} pairs, {val_fraction:g})"
    else:
        listed = {p["name"]: p["split"] for p in manifest.get("pairs", [])}
        splits = {n: listed.get(n) or hash_split(n) for n in labels}
        source = MANIFEST if listed else "name hash (10% val, 10% test)"
        bad = [n for n, s in splits.items() if s not in SPLITS]
        if bad:
            raise DatasetError(f"{root / MANIFEST}: pair {bad[0]} has split {splits[bad[0]]!r}, "
                               f"expected one of {', '.join(SPLITS)}")
    items = {n: (labels[n], images[n]) for n in labels if n in splits}
    return PairedImages(root, "labels", items, splits, palette, manifest, direction, source)


def _open_side_by_side(root: Path, direction: str, val_fraction: float) -> PairedImages:
    items, splits = {}, {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        for stem, path in _images_in(folder).items():
            key = f"{split}/{stem}"
            items[key], splits[key] = (path,), split
    if not items:
        raise DatasetError(f"{root}: train/ val/ test/ hold no images")
    source = "folders"
    if not (root / "val").is_dir():
        carved = carve_val(splits, val_fraction)
        source += f"; val carved from train ({carved} pairs, {val_fraction:g})"
    return PairedImages(root, "side-by-side", items, splits, None, {}, direction, source)


# -- prepared pairs: memory, a cache file, or prepared on access -----------------------------
class PreparedPairs:
    """``uint8[S, S, 7]`` prepared pairs (``PairedImages.prepare``) of a list of names, from
    an in-memory array (``array``), a ``.npy`` cache file read one item at a time
    (``path``; only the item's bytes are read, so memory stays flat whatever the number of
    pairs) or prepared on every access (neither)."""

    def __init__(self, data: PairedImages, names, size: int, aspect: str, photo_filter: str,
                 array: np.ndarray | None = None, path=None):
        self.data, self.names = data, list(names)
        self.size, self.aspect, self.photo_filter = int(size), aspect, photo_filter
        self.array, self.path = array, (Path(path) if path is not None else None)
        self._offset, self._fd = None, None
        if self.path is not None:
            self._offset = cache_offset(self.path, self.shape)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.names), self.size, self.size, CHANNELS)

    @property
    def source(self) -> str:
        return "memory" if self.array is not None else "file" if self.path is not None else "decode"

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        if self.array is not None:
            return self.array[index]
        if self.path is not None:
            return self._read(index)
        return self.data.prepare(self.names[index], self.size, self.aspect, self.photo_filter)

    def _read(self, index: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        count = self.size * self.size * CHANNELS
        raw = os.pread(self._fd, count, self._offset + index * count)
        if len(raw) != count:
            raise DatasetError(f"{self.path}: cache file is truncated (item {index}); delete it")
        return np.frombuffer(raw, dtype=np.uint8).reshape(self.size, self.size, CHANNELS)

    def __getstate__(self):   # DataLoader workers open their own file descriptor
        state = dict(self.__dict__)
        state["_fd"] = None
        return state

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def cache_offset(path: Path, shape) -> int:
    """Byte offset of the data in a ``.npy`` cache file of ``uint8`` ``shape``."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            header = read(fh)                       # (shape, fortran order, dtype)
            offset = fh.tell()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable cache file ({exc}); delete it") from None
    if tuple(header[0]) != tuple(shape) or header[2] != np.dtype(np.uint8) or header[1]:
        raise DatasetError(f"{path}: cache holds {tuple(header[0])}, expected {tuple(shape)}; delete it")
    return offset


def write_cache_header(fh, shape) -> None:
    np.lib.format.write_array_header_1_0(
        fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
             "shape": tuple(int(s) for s in shape)})
