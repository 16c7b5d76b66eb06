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

from ..fileio import write_text

JSONL = "manifest.jsonl"
CSV = "manifest.csv"
CSV_COLUMNS = ("asset", "status", "error", "seconds", "outputs", "summary", "asset_sha256",
               "asset_bytes", "model_sha256", "settings_sha256", "task", "finished")


def read_records(path) -> tuple[dict[str, dict], int]:
    """``(latest record per asset, number of unreadable lines)``."""
    latest, damaged = {}, 0
    try:
        raw = Path(path).read_bytes()
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
        self._fh = open(self.path, "ab")
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
        self._fh.write(_line(record).encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records[record["asset"]] = record

    def write_csv(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for asset in sorted(self.records):
            writer.writerow([_csv_value(self.records[asset].get(c)) for c in CSV_COLUMNS])
        write_text(self.out_dir / CSV, buf.getvalue())


def _line(record: dict) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)
