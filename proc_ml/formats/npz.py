""".npz safety: what an archive of arrays holds, read from the ``.npy`` headers alone.

``np.load`` inflates a member before anyone can look at it, so a 9 MB ``.npz`` that declares
a 9.6 GB array is a memory bomb. ``check`` reads every member's header (shape, dtype) without
loading data and refuses, in one line naming the file and the array:

* object arrays (they would need pickle, which proc-ml never runs);
* members that are not ``.npy`` arrays, or whose stored size disagrees with their header;
* a total size over the caller's limit or over the memory budget (``proc_ml.budget``).

Every reader of proc-ml ``.npz`` files calls it before ``np.load``.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError

#: Most arrays one .npz may hold.
MAX_MEMBERS = 64


def headers(path: str | os.PathLike, source: str | None = None) -> dict[str, tuple[tuple, np.dtype]]:
    """``{name: (shape, dtype)}`` of every array in an ``.npz``, from the headers only."""
    path = Path(path)
    source = source or str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DatasetError(f"{source}: {len(infos)} arrays, over the limit of {MAX_MEMBERS}")
            found = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise DatasetError(f"{source}: member '{info.filename}' is not a .npy array")
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                    header_size = fh.tell()
                name = info.filename[:-4]
                if dtype.hasobject:
                    raise DatasetError(f"{source}: array '{name}' holds Python objects (it would "
                                       f"need pickle, which proc-ml never loads)")
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size != header_size + nbytes:
                    raise DatasetError(f"{source}: array '{name}' declares {list(shape)} "
                                       f"{dtype} ({nbytes} bytes) but stores "
                                       f"{info.file_size - header_size} bytes (corrupt)")
                found[name] = (tuple(int(n) for n in shape), dtype)
            return found
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{source}: file not found") from None
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, TypeError,
            SyntaxError, KeyError, NotImplementedError, RuntimeError) as exc:
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise DatasetError(f"{source}: not a readable .npz file ({text})") from None


def check(path: str | os.PathLike, *, max_bytes: int | None = None, source: str | None = None
          ) -> dict[str, tuple[tuple, np.dtype]]:
    """``headers`` plus the size checks of the module doc; returns the headers."""
    from .. import budget
    from ..errors import LimitError

    source = source or str(path)
    found = headers(path, source)
    total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in found.values())
    if max_bytes is not None and total > max_bytes:
        raise DatasetError(f"{source}: its arrays hold {total} bytes once loaded, over the "
                           f"limit of {max_bytes} (--max-bytes)")
    try:
        budget.check(total * 2, f"loading {source}")
    except LimitError as exc:
        raise DatasetError(str(exc)) from None
    return found


def load(path: str | os.PathLike, *, max_bytes: int | None = None, source: str | None = None
         ) -> dict[str, np.ndarray]:
    """Every array of a checked ``.npz`` (``allow_pickle=False``)."""
    source = source or str(path)
    check(path, max_bytes=max_bytes, source=source)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as exc:
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise DatasetError(f"{source}: not a readable .npz file ({text})") from None
