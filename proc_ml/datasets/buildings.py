"""Readers for building datasets: manifest, CSV tables, grids, meshes and point clouds."""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .. import FORMAT_VERSION
from ..encoding import STYLE_FEATURES
from ..errors import DatasetError
from ..grid import DIRECTIONS, exterior_faces
from ..meshing import to_z_up

MANIFEST = "dataset.yaml"
_MANIFEST_KEYS = ("format", "format_version", "parts", "count", "grid_size", "split")


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path}: not a proc-ml dataset (no {MANIFEST}; create one with "
                           f"'proc-ml generate buildings')")
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DatasetError(f"{path}:{' line ' + str(mark.line + 1) if mark else ''} invalid YAML") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: expected a mapping at top level")
    for key in _MANIFEST_KEYS:
        if key not in manifest:
            raise DatasetError(f"{path}: missing field '{key}'")
    if manifest["format"] != "proc-ml-buildings":
        raise DatasetError(f"{path}: field 'format' is '{manifest['format']}', expected 'proc-ml-buildings'")
    if manifest["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {manifest['format_version']} is not supported "
                           f"(this proc-ml reads version {FORMAT_VERSION})")
    return manifest


def read_labels_json(path: str | os.PathLike) -> dict:
    try:
        legend = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(legend, dict) or not isinstance(legend.get("parts"), list):
        raise DatasetError(f"{path}: field 'parts' (a list of part names) is missing")
    return legend


@dataclass
class BuildingRecord:
    """One building as stored in ``grids/*.npz``."""
    building_id: int
    archetype: str
    occupancy: np.ndarray  # uint8[X, Y, Z]
    labels: np.ndarray     # int8[X, Y, Z, 6]
    style: np.ndarray      # float32[len(STYLE_FEATURES)]


def read_building_npz(path: str | os.PathLike, n_parts: int | None = None) -> BuildingRecord:
    """Read and check one grid file: shapes, dtypes, and labels exactly on exterior faces."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    for key in ("occupancy", "labels", "style"):
        if key not in arrays:
            raise DatasetError(f"{path}: missing array '{key}'")
    occ, labels, style = arrays["occupancy"], arrays["labels"], arrays["style"]
    if occ.ndim != 3:
        raise DatasetError(f"{path}: field 'occupancy' must be 3-D [X, Y, Z], got shape {occ.shape}")
    if labels.shape != occ.shape + (6,):
        raise DatasetError(f"{path}: field 'labels' must have shape {occ.shape + (6,)}, got {labels.shape}")
    if style.shape != (len(STYLE_FEATURES),):
        raise DatasetError(f"{path}: field 'style' must have {len(STYLE_FEATURES)} values, got shape {style.shape}")
    if labels.size and labels.min() < -1:
        raise DatasetError(f"{path}: field 'labels' holds {int(labels.min())}; "
                           f"only -1 (no face) and part indices are allowed")
    has_face = labels >= 0
    if not np.array_equal(has_face, exterior_faces(occ)):
        raise DatasetError(f"{path}: field 'labels' must label exactly the exterior faces of 'occupancy'")
    if n_parts is not None and labels.max(initial=-1) >= n_parts:
        raise DatasetError(f"{path}: field 'labels' holds part {int(labels.max())}, "
                           f"but the vocabulary has {n_parts} parts")
    return BuildingRecord(int(arrays.get("building_id", -1)), str(arrays.get("archetype", "")),
                          occ.astype(np.uint8), labels.astype(np.int8), style.astype(np.float32))


def _read_csv(path: Path, expected_header: list[str] | None, n_columns: int | None):
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


def _numbers(path, lineno, fields, cast):
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


def read_faces_csv(path: str | os.PathLike, parts, layout: str = "named"):
    """``faces.csv`` -> ``(ids int64[N, 4], one_hot uint8[N, 6, K])``.

    With ``layout='opara'`` the file is headerless 0/1 rows and ids are not present
    (returned as an empty ``[N, 0]`` array).
    """
    path = Path(path)
    K = len(parts)
    if layout == "opara":
        header, id_cols = None, 0
    else:
        from proc_ml.exporters.tables import faces_header  # the writer owns the column names
        header, id_cols = faces_header(parts), 4
    ncols = id_cols + 6 * K
    rows = [(_numbers(path, n, f, int), n) for n, f in _read_csv(path, header, ncols)]
    data = np.array([r for r, _ in rows], dtype=np.int64).reshape(-1, ncols)
    one_hot = data[:, id_cols:]
    bad = np.nonzero(~np.isin(one_hot, (0, 1)).all(axis=1) | (one_hot.reshape(-1, 6, K).sum(-1) > 1).any(-1))[0]
    if bad.size:
        raise DatasetError(f"{path}: line {rows[bad[0]][1]}: each face block must be one-hot "
                           f"(a single 1, or all 0 for no face)")
    return data[:, :id_cols], one_hot.reshape(-1, 6, K).astype(np.uint8)


def read_adjacency_csv(path: str | os.PathLike):
    """``adjacency.csv`` -> ``(ids int64[N, 4], features float32[N, F], feature names)``."""
    path = Path(path)
    from proc_ml.exporters.tables import adjacency_header
    header = adjacency_header()
    rows = [_numbers(path, n, f, float) for n, f in _read_csv(path, header, len(header))]
    data = np.array(rows, dtype=np.float64).reshape(-1, len(header))
    return data[:, :4].astype(np.int64), data[:, 4:].astype(np.float32), header[4:]


def read_buildings_csv(path: str | os.PathLike) -> list[dict]:
    """``buildings.csv`` -> one dict per building: ids, archetype, sizes, counts, style."""
    path = Path(path)
    from proc_ml.exporters.tables import buildings_header
    header = buildings_header()
    n_style = len(STYLE_FEATURES)
    rows = []
    for lineno, fields in _read_csv(path, header, len(header)):
        ints = _numbers(path, lineno, fields[:1] + fields[2:-n_style], int)
        style = _numbers(path, lineno, fields[-n_style:], float)
        rows.append({"building_id": ints[0], "archetype": fields[1],
                     "size": tuple(ints[1:4]), "cells": ints[4], "faces": ints[5],
                     "style": np.array(style, dtype=np.float32)})
    return rows


def read_labelled_mesh(path: str | os.PathLike, parts):
    """A labelled mesh -> ``(trimesh.Trimesh, int32 part per triangle)``.

    PLY carries a ``part`` face property; GLB and OBJ carry one object per part name.
    Vertices come back in proc-ml's z-up frame for every format (GLB is stored y-up).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".ply":
            mesh = trimesh.load(path, process=False, force="mesh")
            raw = mesh.metadata.get("_ply_raw", {}).get("face", {}).get("data")
            if raw is None or "part" not in (raw.dtype.names or ()):
                raise DatasetError(f"{path}: PLY has no per-face 'part' property")
            return mesh, np.asarray(raw["part"], dtype=np.int32)
        if suffix == ".obj":
            mesh = trimesh.load(path, process=False, force="mesh")
            return mesh, _obj_object_parts(path, parts, len(mesh.faces))
        if suffix in (".glb", ".gltf"):
            scene = trimesh.load(path, process=False, force="scene")
            meshes, labels = [], []
            for node in scene.graph.nodes_geometry:
                transform, name = scene.graph[node]
                if name not in parts:
                    raise DatasetError(f"{path}: object '{name}' is not a part name ({', '.join(parts)})")
                geom = scene.geometry[name].copy()
                geom.apply_transform(transform)              # world frame, y-up (glTF)
                geom.vertices = to_z_up(geom.vertices, "y")  # proc-ml frame, z-up
                meshes.append(geom)
                labels.append(np.full(len(geom.faces), list(parts).index(name), dtype=np.int32))
            if not meshes:
                raise DatasetError(f"{path}: no geometry")
            return trimesh.util.concatenate(meshes), np.concatenate(labels)
    except DatasetError:
        raise
    except Exception as exc:  # trimesh raises many types for malformed files
        raise DatasetError(f"{path}: cannot read mesh ({type(exc).__name__}: {exc})") from None
    raise DatasetError(f"{path}: unsupported mesh format '{suffix}' (expected .ply, .glb, .obj)")


def _obj_object_parts(path: Path, parts, n_faces: int) -> np.ndarray:
    """Part per triangle from the ``o NAME`` sections of an OBJ (trimesh merges them on load)."""
    labels, current = [], None
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if line.startswith("o "):
            current = line[2:].strip()
            if current not in parts:
                raise DatasetError(f"{path}: line {lineno}: object '{current}' is not a part name "
                                   f"({', '.join(parts)})")
        elif line.startswith("f "):
            if current is None:
                raise DatasetError(f"{path}: line {lineno}: face outside a named part object")
            labels.append(list(parts).index(current))
    if len(labels) != n_faces:
        raise DatasetError(f"{path}: {len(labels)} face lines but {n_faces} triangles "
                           f"(labelled OBJ files must hold triangles only)")
    return np.array(labels, dtype=np.int32)


def read_point_cloud(path: str | os.PathLike):
    """Labelled point cloud (``.npz`` or ``.ply``) -> ``(points, normals, parts)``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ("points", "normals", "parts") if k in data.files}
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    elif path.suffix == ".ply":
        import trimesh
        try:
            cloud = trimesh.load(path, process=False)
            raw = cloud.metadata["_ply_raw"]["vertex"]["data"]
            arrays = {"points": np.stack([raw[a] for a in "xyz"], 1),
                      "normals": np.stack([raw["n" + a] for a in "xyz"], 1),
                      "parts": raw["part"]}
        except (KeyError, ValueError, TypeError) as exc:
            raise DatasetError(f"{path}: PLY lacks the fields x,y,z,nx,ny,nz,part ({exc})") from None
    else:
        raise DatasetError(f"{path}: unsupported point cloud format (expected .npz or .ply)")
    for key in ("points", "normals", "parts"):
        if key not in arrays:
            raise DatasetError(f"{path}: missing field '{key}'")
    pts = np.asarray(arrays["points"], dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3 or arrays["normals"].shape != pts.shape or len(arrays["parts"]) != len(pts):
        raise DatasetError(f"{path}: fields 'points', 'normals' and 'parts' must be [N,3], [N,3], [N]")
    return pts, np.asarray(arrays["normals"], np.float32), np.asarray(arrays["parts"], np.int64)


class BuildingDataset:
    """A generated dataset on disk: manifest, vocabulary, splits and per-building grids."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.parts: list[str] = list(self.manifest["parts"])
        self.directions = list(self.manifest.get("directions", DIRECTIONS))

    def ids(self, split: str | None = None) -> list[int]:
        if split is None:
            return list(range(int(self.manifest["count"])))
        if split not in self.manifest["split"]:
            raise DatasetError(f"{self.root / MANIFEST}: no split named '{split}' "
                               f"(have {', '.join(self.manifest['split'])})")
        return list(self.manifest["split"][split])

    def grid_path(self, building_id: int) -> Path:
        return self.root / "grids" / f"b{building_id:06d}.npz"

    def building(self, building_id: int) -> BuildingRecord:
        path = self.grid_path(building_id)
        if not path.is_file():
            raise DatasetError(f"{path}: missing grid file (was the dataset generated with --formats grids?)")
        return read_building_npz(path, n_parts=len(self.parts))


def open_dataset(root: str | os.PathLike) -> BuildingDataset:
    return BuildingDataset(root)
