"""grids/b{id:06d}.npz: one building as a voxel grid, with a part on every exterior face.

Arrays (docs/formats.md): ``occupancy`` uint8[X, Y, Z] (required); ``labels``
int8[X, Y, Z, 6] (-1 where no face; absent in a massing-to-label dataset and in users' own
occupancy files); ``style`` float32[9] (zeros when the source has none); ``archetype``
(0-d str) and ``building_id`` (0-d int64). Optional extras, written by the real-building
import and the facade grammar and read when present: ``vocab`` (str[K], the vocabulary ``labels`` index),
``street`` (bool[4]: which of +x, -x, +y, -y face the street), ``label_known``
(bool[X, Y, Z, 6]: faces whose label the source supports), ``rotation_deg`` (0-d float),
``origin`` (float64[3]), ``cell_size`` (0-d float), ``source_id`` and ``source_file`` (0-d
str), ``neighbours`` (bool[X, Y, Z]: cells of neighbouring buildings, the context of party
walls), ``label_fixed`` (bool[X, Y, Z, 6]: faces whose label an artist corrected, the
``part_fix`` attribute of the DCC adapters; training weighs them ``training.fix_weight``
times). Written with fixed zip timestamps, so the same building gives the same bytes.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoding import STYLE_FEATURES
from ..errors import DatasetError
from ..fileio import write_npz
from ..grid import exterior_faces

#: The optional arrays, and the dtype each is stored with.
EXTRAS = {"vocab": str, "street": bool, "label_known": bool, "rotation_deg": np.float64,
          "origin": np.float64, "cell_size": np.float64, "source_id": str, "source_file": str,
          "neighbours": bool, "label_fixed": bool}


@dataclass
class BuildingRecord:
    """One building as stored in ``grids/*.npz``."""
    building_id: int
    archetype: str
    occupancy: np.ndarray            # uint8[X, Y, Z]
    labels: np.ndarray | None        # int8[X, Y, Z, 6]; None when the file has none
    style: np.ndarray                # float32[len(STYLE_FEATURES)]; zeros when absent
    extras: dict = field(default_factory=dict)   # the optional arrays (EXTRAS) present

    @property
    def street_sides(self) -> tuple[str, ...] | None:
        """The sides facing the street (``street`` extra), or None when not recorded."""
        street = self.extras.get("street")
        if street is None:
            return None
        return tuple(side for side, on in zip(("+x", "-x", "+y", "-y"), street) if on)


def arrays(building_id: int, archetype: str, occupancy, labels=None, style=None, **extras) -> dict:
    out = {"occupancy": np.asarray(occupancy).astype(np.uint8)}
    if labels is not None:
        out["labels"] = np.asarray(labels).astype(np.int8)
    out["style"] = (np.zeros(len(STYLE_FEATURES), np.float32) if style is None
                    else np.asarray(style, dtype=np.float32))
    out["archetype"] = np.array(archetype)
    out["building_id"] = np.array(int(building_id), dtype=np.int64)
    for key, value in extras.items():
        if key not in EXTRAS:
            raise ValueError(f"unknown grid array '{key}' (known extras: {', '.join(EXTRAS)})")
        if value is not None:
            out[key] = np.asarray(value, dtype=EXTRAS[key])
    return out


def write(path: str | os.PathLike, building_id: int, archetype: str, occupancy, labels=None,
          style=None, **extras) -> None:
    write_npz(path, arrays(building_id, archetype, occupancy, labels, style, **extras))


def read(path: str | os.PathLike, n_parts: int | None = None,
         require_labels: bool = True) -> BuildingRecord:
    """Read and check one grid file: shapes, dtypes, and labels exactly on exterior faces.
    ``require_labels=False`` accepts a grid without ``labels`` (and without ``style``)."""
    from . import npz

    path = Path(path)
    npz.check(path)         # declared sizes against the memory budget, before any inflating
    try:
        with np.load(path, allow_pickle=False) as data:
            found = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    required = ("occupancy", "labels", "style") if require_labels else ("occupancy",)
    for key in required:
        if key not in found:
            raise DatasetError(f"{path}: missing array '{key}'")
    occ = found["occupancy"]
    if occ.ndim != 3:
        raise DatasetError(f"{path}: field 'occupancy' must be 3-D [X, Y, Z], got shape {occ.shape}")
    if occ.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: field 'occupancy' has dtype {occ.dtype}, expected numbers")
    if occ.dtype.kind == "f" and not np.isfinite(occ).all():
        raise DatasetError(f"{path}: field 'occupancy' holds NaN or infinite values")
    if occ.size == 0:
        raise DatasetError(f"{path}: field 'occupancy' is empty (shape {occ.shape})")
    occ = (occ > 0).astype(np.uint8)
    style = found.get("style")
    if style is None:
        style = np.zeros(len(STYLE_FEATURES), np.float32)
    elif style.shape != (len(STYLE_FEATURES),):
        raise DatasetError(f"{path}: field 'style' must have {len(STYLE_FEATURES)} values, got shape {style.shape}")
    elif style.dtype.kind not in "biuf" or not np.isfinite(style.astype(np.float64)).all():
        raise DatasetError(f"{path}: field 'style' must hold finite numbers")
    labels = found.get("labels")
    if labels is not None:
        labels = _checked_labels(path, labels, occ, n_parts)
    extras = {k: found[k] for k in EXTRAS if k in found}
    _check_extras(path, extras, occ.shape)
    if labels is not None and "vocab" in extras and labels.max(initial=-1) >= len(extras["vocab"]):
        raise DatasetError(f"{path}: field 'labels' holds part {int(labels.max())}, but field "
                           f"'vocab' names {len(extras['vocab'])} parts")
    building_id = _scalar(path, found, "building_id", "iu", "one whole number", -1)
    archetype = _scalar(path, found, "archetype", "U", "one text value", "")
    return BuildingRecord(int(building_id), str(archetype), occ, labels,
                          style.astype(np.float32), extras)


def _scalar(path: Path, found: dict, key: str, kinds: str, what: str, default):
    """A 0-d field of one of the dtype ``kinds``, or ``default`` when absent."""
    if key not in found:
        return default
    value = found[key]
    if value.ndim != 0 or value.dtype.kind not in kinds:
        shown = f"shape {value.shape}" if value.ndim else f"{value.dtype} {value.item()!r}"[:80]
        raise DatasetError(f"{path}: field '{key}' must be {what}, got {shown}")
    return value.item()


def _checked_labels(path: Path, labels: np.ndarray, occ: np.ndarray, n_parts: int | None) -> np.ndarray:
    if labels.shape != occ.shape + (6,):
        raise DatasetError(f"{path}: field 'labels' must have shape {occ.shape + (6,)}, got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: field 'labels' has dtype {labels.dtype}, expected integers")
    if labels.size and labels.min() < -1:
        raise DatasetError(f"{path}: field 'labels' holds {int(labels.min())}; "
                           f"only -1 (no face) and part indices are allowed")
    if not np.array_equal(labels >= 0, exterior_faces(occ)):
        raise DatasetError(f"{path}: field 'labels' must label exactly the exterior faces of 'occupancy'")
    if n_parts is not None and labels.max(initial=-1) >= n_parts:
        raise DatasetError(f"{path}: field 'labels' holds part {int(labels.max())}, "
                           f"but the vocabulary has {n_parts} parts")
    return labels.astype(np.int8)


def _check_extras(path: Path, extras: dict, shape) -> None:
    expected = {"street": (4,), "label_known": tuple(shape) + (6,), "origin": (3,),
                "label_fixed": tuple(shape) + (6,),
                "neighbours": tuple(shape),
                "rotation_deg": (), "cell_size": ()}
    for key, want in expected.items():
        if key in extras and extras[key].shape != want:
            raise DatasetError(f"{path}: field '{key}' must have shape {want}, got {extras[key].shape}")
    if "vocab" in extras:
        vocab = extras["vocab"]
        if vocab.ndim != 1 or vocab.dtype.kind != "U" or not vocab.size:
            raise DatasetError(f"{path}: field 'vocab' must be a list of part names")
        if any(any(c.isspace() for c in name) for name in vocab.tolist()):
            raise DatasetError(f"{path}: field 'vocab': part names must be one word without "
                               f"spaces, got {vocab.tolist()!r}"[:300])
        if len(set(vocab.tolist())) != len(vocab):
            raise DatasetError(f"{path}: field 'vocab' names a part twice ({', '.join(vocab)})")
    for key in ("street", "label_known", "label_fixed", "neighbours"):
        # flags: booleans, or 0/1 from a tool without a bool type (never text: "no" is true)
        value = extras.get(key)
        if value is None:
            continue
        if value.dtype.kind not in "biu" or (value.dtype.kind != "b" and value.size
                                              and not np.isin(value, (0, 1)).all()):
            raise DatasetError(f"{path}: field '{key}' must hold true/false flags, got "
                               f"{value.dtype}{' values other than 0 and 1' if value.dtype.kind in 'iu' else ''}")
        extras[key] = value.astype(bool)
    for key in ("rotation_deg", "origin", "cell_size"):
        value = extras.get(key)
        if value is None:
            continue
        if value.dtype.kind not in "iuf" or not np.isfinite(value.astype(np.float64)).all():
            raise DatasetError(f"{path}: field '{key}' must hold finite numbers")
        extras[key] = value.astype(np.float64)
    if "cell_size" in extras and not extras["cell_size"] > 0:
        raise DatasetError(f"{path}: field 'cell_size' must be > 0, got {float(extras['cell_size']):g}")
    for key in ("source_id", "source_file"):
        if key in extras and (extras[key].ndim != 0 or extras[key].dtype.kind != "U"):
            raise DatasetError(f"{path}: field '{key}' must be one text value")
