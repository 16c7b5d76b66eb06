"""labels.json: the legend every mesh and point cloud of a dataset uses
(``{"parts": [...], "colours": {"wall": [r, g, b], ...}}``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..colours import part_colours
from ..errors import DatasetError
from ..fileio import write_text


def legend_json(names) -> str:
    colours = part_colours(names)
    return json.dumps({"parts": list(names),
                       "colours": {n: list(c) for n, c in zip(names, colours)}}, indent=2) + "\n"


def write(path: str | os.PathLike, names) -> None:
    write_text(path, legend_json(names))


def read(path: str | os.PathLike) -> dict:
    try:
        legend = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(legend, dict) or not isinstance(legend.get("parts"), list):
        raise DatasetError(f"{path}: field 'parts' (a list of part names) is missing")
    return legend
