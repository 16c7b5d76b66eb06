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


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``uint8[H, W, 3]`` (or ``[H, W]``) as PNG, atomically."""
    write_bytes(path, png_bytes(image))


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """``uint8[H, W, 3]`` of an image file; errors name the file. The size in the header is
    checked against the memory budget before any pixel is decoded (a few bytes of PNG can
    declare billions of pixels)."""
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
            if im.mode == "P":
                im = im.convert("RGBA")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image not found") from None
    except Image.DecompressionBombError:
        raise DatasetError(f"{path}: the image declares more pixels than proc-ml reads "
                           f"(an image bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None
