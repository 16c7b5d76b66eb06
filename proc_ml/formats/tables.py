"""What the CSV formats (faces.csv, adjacency.csv, buildings.csv) share: a header line,
and a strict row reader whose errors name the file and the line.

Strict means: UTF-8 text (a BOM and Windows line ends are accepted), the expected header
and column count, integers where integers belong (``1.5`` and ``1e3`` are not cell
coordinates), finite numbers everywhere (``nan``/``inf`` are refused), and every value in
the range its column allows (see the readers); the memory a file needs once parsed is
checked against the budget before reading (``proc_ml.budget``).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from ..errors import DatasetError

#: First columns of the per-cell tables.
ID_COLUMNS = ("building_id", "x", "y", "z")
#: Cells per axis of any grid proc-ml writes (generator grid.size, the mesh and CityGML
#: voxelisers, the DCC export all stop at 256): larger cell coordinates are refused.
MAX_AXIS = 256
#: Largest building id (ids index files b000000.npz...; C ints downstream).
MAX_ID = 2 ** 31 - 1
#: Memory a parsed CSV row takes per byte of text (Python lists of numbers): the budget check.
PARSE_FACTOR = 12

_INT = re.compile(r"[+-]?[0-9]+")


def check_unique_cells(path: Path, ids, lines) -> None:
    """Each ``(building_id, x, y, z)`` on one row only: a cell listed twice would have two
    sets of labels or features (a copy-paste or a second export appended), one silently
    winning. ``ids`` int64[N, 4], ``lines`` the row's line numbers."""
    import numpy as np

    ids = np.asarray(ids).reshape(-1, 4)
    if len(ids) < 2:
        return
    _, first, inverse = np.unique(ids, axis=0, return_index=True, return_inverse=True)
    repeated = np.nonzero(first[inverse.ravel()] != np.arange(len(ids)))[0]
    if repeated.size:
        row = int(repeated[0])
        b, x, y, z = ids[row].tolist()
        raise DatasetError(f"{path}: line {lines[row]}: building {b} cell ({x}, {y}, {z}) is "
                           f"listed twice (first on line {lines[first[inverse.ravel()[row]]]})")


def header_line(columns) -> bytes:
    return (",".join(columns) + "\n").encode()


def read_rows(path: Path, expected_header: list[str] | None, n_columns: int | None):
    """Yield (line number, fields) for each data row, checking encoding, header and column
    count."""
    from .. import budget
    from ..errors import LimitError

    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not a CSV file") from None
    with fh:
        try:
            budget.check(os.fstat(fh.fileno()).st_size * PARSE_FACTOR, f"reading {path}")
        except LimitError as exc:
            raise DatasetError(str(exc)) from None
        first = True
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}: line {lineno}: not UTF-8 text (byte "
                                   f"0x{raw[exc.start]:02x}); save the file as UTF-8") from None
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [f.strip() for f in line.split(",")]
            if first and expected_header is not None:
                first = False
                if fields != expected_header:
                    bad = next((i for i, (a, b) in enumerate(zip(fields, expected_header)) if a != b),
                               min(len(fields), len(expected_header)))
                    got = fields[bad] if bad < len(fields) else "<end of line>"
                    want = expected_header[bad] if bad < len(expected_header) else "<end of line>"
                    raise DatasetError(f"{path}: line 1: header column {bad + 1} is '{_short(got)}', "
                                       f"expected '{want}'")
                continue
            first = False
            if n_columns is not None and len(fields) != n_columns:
                raise DatasetError(f"{path}: line {lineno}: expected {n_columns} columns, got {len(fields)}")
            yield lineno, fields
        if first and expected_header is not None:
            raise DatasetError(f"{path}: empty file (expected the header line "
                               f"'{','.join(expected_header[:3])},...')")


def _short(text: str) -> str:
    """A value for an error line: at most 40 characters, control characters escaped."""
    text = text if len(text) <= 40 else text[:37] + "..."
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def numbers(path, lineno, fields, cast, low=None, high=None, columns=None):
    """``fields`` as ``cast`` (int: whole numbers only; float: finite numbers only), each
    within ``[low, high]`` when given; the first bad one is named in the error (with its
    column name when ``columns`` are given)."""
    out = []
    if cast is int:
        low = -(2 ** 63) if low is None else low
        high = 2 ** 63 - 1 if high is None else high
    for index, text in enumerate(fields):
        value = _parse(text, cast)
        where = f" (column '{columns[index]}')" if columns is not None else ""
        if value is None:
            if cast is int and _parse(text, float) is not None:
                raise DatasetError(f"{path}: line {lineno}: '{_short(text)}' is not a whole "
                                   f"number{where}")
            if cast is float and _is_float(text):
                raise DatasetError(f"{path}: line {lineno}: '{_short(text)}' is not a finite "
                                   f"number{where}")
            raise DatasetError(f"{path}: line {lineno}: '{_short(text)}' is not a number{where}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise DatasetError(f"{path}: line {lineno}: {_short(text)} is out of range{where}: "
                               f"expected {low}..{high}")
        out.append(value)
    return out


def _parse(text: str, cast):
    if cast is int:
        return int(text) if _INT.fullmatch(text) and len(text) <= 40 else None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
