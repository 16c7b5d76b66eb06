"""``OUT/manifest.jsonl`` (one JSON record per asset per run) and its ``manifest.csv`` view.

Crash safety: every record is appended and fsync'ed on its own line, after the item's
outputs were renamed into place, so a record never names an output that is not complete.
Reading tolerates a truncated or garbled line (the kill happened mid-write); the latest
record of an asset wins. At the start of a run the file is rewritten atomically with only
the latest record per asset, which drops damaged lines and bounds its size.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..errors import OutputError
from ..fileio import display_name, open_append, os_error_text, write_text
from ..validation import json_safe

JSONL = "manifest.jsonl"
CSV = "manifest.csv"
CSV_COLUMNS = ("asset", "status", "error", "seconds", "outputs", "summary", "asset_sha256",
               "asset_bytes", "model_sha256", "settings_sha256", "task", "finished")


def read_records(path) -> tuple[dict[str, dict], int]:
    """``(latest record per asset, number of unreadable lines)``."""
    latest, damaged = {}, 0
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{display_name(str(path))}: the manifest is a symbolic link; refusing "
                          f"to read or write through it (remove it)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return latest, 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            damaged += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("asset"), str):
            damaged += 1
            continue
        latest[record["asset"]] = record
    return latest, damaged


class Manifest:
    """The manifest of one output folder, opened for appending."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / JSONL
        self.records, self.damaged_lines = read_records(self.path)
        self._fh = None

    def __enter__(self):
        self.compact()
        try:
            self._fh = open_append(self.path)
        except OSError as exc:
            raise OutputError(f"cannot open the manifest: {os_error_text(exc)}") from None
        return self

    def __exit__(self, *exc):
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return False

    def compact(self) -> None:
        """Rewrite the file atomically with the latest record per asset, sorted by asset."""
        if not self.records and not self.path.exists():
            return
        write_text(self.path, "".join(_line(self.records[k]) for k in sorted(self.records)))

    def append(self, record: dict) -> None:
        """Append one record durably, or not at all: when the write fails (full disk, I/O
        error) the file is cut back to its previous end and ``OutputError`` says why."""
        if self._fh is None:
            raise OutputError(f"{display_name(str(self.path))}: the manifest is not open")
        data = _line(record).encode("utf-8")
        fd = self._fh.fileno()
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, end)
            except OSError:
                pass
            raise OutputError(f"cannot append to the manifest {display_name(str(self.path))} "
                              f"({os_error_text(exc)}); the batch stopped, every asset "
                              f"recorded so far is kept") from None
        self.records[record["asset"]] = record

    def write_csv(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for asset in sorted(self.records):
            writer.writerow([_csv_value(self.records[asset].get(c)) for c in CSV_COLUMNS])
        write_text(self.out_dir / CSV, buf.getvalue())


def _line(record: dict) -> str:
    """One strict JSON line (NaN / infinity become null: the file stays valid JSON)."""
    return json.dumps(json_safe(record), separators=(",", ":"), allow_nan=False) + "\n"


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return str(value)
