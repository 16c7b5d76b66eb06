"""What the CSV formats (faces.csv, adjacency.csv, buildings.csv) share: a header line,
and a strict row reader whose errors name the file and the line."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError

#: First columns of the per-cell tables.
ID_COLUMNS = ("building_id", "x", "y", "z")


def header_line(columns) -> bytes:
    return (",".join(columns) + "\n").encode()


def read_rows(path: Path, expected_header: list[str] | None, n_columns: int | None):
    """Yield (line number, fields) for each data row, checking header and column count."""
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    with fh:
        first = True
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split(",")
            if first and expected_header is not None:
                first = False
                if fields != expected_header:
                    bad = next((i for i, (a, b) in enumerate(zip(fields, expected_header)) if a != b),
                               min(len(fields), len(expected_header)))
                    got = fields[bad] if bad < len(fields) else "<end of line>"
                    want = expected_header[bad] if bad < len(expected_header) else "<end of line>"
                    raise DatasetError(f"{path}: line 1: header column {bad + 1} is '{got}', expected '{want}'")
                continue
            first = False
            if n_columns is not None and len(fields) != n_columns:
                raise DatasetError(f"{path}: line {lineno}: expected {n_columns} columns, got {len(fields)}")
            yield lineno, fields
        if first and expected_header is not None:
            raise DatasetError(f"{path}: empty file (expected the header line "
                               f"'{','.join(expected_header[:3])},...')")


def numbers(path, lineno, fields, cast):
    """``fields`` cast to numbers; the first that is not one is named in the error."""
    try:
        return [cast(v) for v in fields]
    except ValueError:
        bad = next(v for v in fields if not _is_number(v, cast))
        raise DatasetError(f"{path}: line {lineno}: '{bad}' is not a number") from None


def _is_number(text, cast) -> bool:
    try:
        cast(text)
        return True
    except ValueError:
        return False
