"""PNG reading and atomic PNG writing (Pillow; numpy arrays in and out)."""

from __future__ import annotations

import io
import os

import numpy as np

from ..errors import DatasetError
from ..fileio import write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def to_signed(images) -> np.ndarray:
    """``uint8[H, W, 3]`` -> ``float32[3, H, W]``, or ``uint8[B, H, W, 3]`` (or a list of
    same-size images) -> ``float32[B, 3, H, W]``, in [-1, 1]: what the image nets read."""
    batch = np.asarray(images if isinstance(images, np.ndarray) else np.stack(images))
    array = np.moveaxis(batch[..., :3], -1, -3).astype(np.float32)
    return np.ascontiguousarray(array / np.float32(127.5) - np.float32(1.0))


def from_signed(array) -> np.ndarray:
    """``float[3, H, W]`` (or ``[B, 3, H, W]``) in [-1, 1] -> ``uint8[H, W, 3]`` (or
    ``[B, H, W, 3]``), rounded to the nearest value (ties to even)."""
    values = np.rint((np.clip(np.asarray(array, dtype=np.float32), -1.0, 1.0) + 1.0) * 127.5)
    return np.ascontiguousarray(np.moveaxis(values, -3, -1).astype(np.uint8))


#: Pillow modes of more than 8 bits per value (16-bit grayscale PNG and TIFF, 32-bit).
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def rgb_image(im, path, kind: str = "photo"):
    """A Pillow image as it is meant to be seen, in 8-bit RGB: turned upright by its EXIF
    orientation (cameras store the pixels sideways and say so), palette and alpha dropped,
    grey made RGB. Values over 8 bits (16-bit PNG / TIFF): a ``"photo"`` is scaled to 0..255;
    a ``"labels"`` map keeps its values (class indices, colours), which must be 0..255."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in WIDE_MODES:
        values = np.asarray(im, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if kind == "labels":
            if top > 255 or values.min(initial=0) < 0:
                raise DatasetError(f"{path}: a {im.mode} label map with values up to {top:g}; "
                                   f"label maps hold colours or class indices 0..255")
        elif top > 255:
            values = values * (255.0 / (65535.0 if top <= 65535 else top))
        im = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if im.mode == "P":
        im = im.convert("RGBA")
    return im.convert("RGB")


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``uint8[H, W, 3]`` (or ``[H, W]``) as PNG, atomically."""
    write_bytes(path, png_bytes(image))


def read_rgb(path: str | os.PathLike, kind: str = "labels") -> np.ndarray:
    """``uint8[H, W, 3]`` of an image file (upright, 8-bit: :func:`rgb_image`; ``kind``
    ``"labels"`` or ``"photo"``); errors name the file. The size in the header is checked
    against the memory budget before any pixel is decoded (a few bytes of PNG can declare
    billions of pixels)."""
    from PIL import Image, UnidentifiedImageError

    from .. import budget
    from ..errors import LimitError

    import warnings

    try:
        with warnings.catch_warnings():
            # proc-ml checks the size itself (below); PIL's own warning would be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            width, height = im.size
            try:
                budget.check(width * height * 4 * 4, f"decoding a {width}x{height} image")
            except LimitError as exc:
                raise DatasetError(f"{path}: {exc}") from None
            return np.asarray(rgb_image(im, path, kind), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image not found") from None
    except Image.DecompressionBombError:
        raise DatasetError(f"{path}: the image declares more pixels than proc-ml reads "
                           f"(an image bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None
