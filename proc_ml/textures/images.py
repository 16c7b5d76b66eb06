"""PNG reading and atomic PNG writing (Pillow; numpy arrays in and out)."""

from __future__ import annotations

import io
import os

import numpy as np

from ..errors import DatasetError
from ..fileio import write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``uint8[H, W, 3]`` (or ``[H, W]``) as PNG, atomically."""
    write_bytes(path, png_bytes(image))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """``uint8[H, W, 3]`` of an image file; errors name the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None
