"""``proc-ml generate buildings``: generate buildings in parallel and write every format.

Workers generate chunks of buildings and write the per-building files (grids, meshes,
point clouds) themselves; the dataset-wide tables are assembled in building order by the
parent, so the output is byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from proc_ml import FORMAT_VERSION, __version__
from proc_ml.encoding import STYLE_FEATURES, adjacency_feature_names
from proc_ml.errors import ConfigError
from proc_ml.fileio import atomic_path, write_bytes, write_npz, write_text
from proc_ml.grid import DIRECTIONS
from proc_ml.meshing import quad_mesh, sample_points
from proc_ml.procedural import ARCHETYPES, Vocabulary, generate_building

from . import tables
from .meshes import MESH_FORMATS, legend_json, mesh_bytes, point_cloud_ply

FORMATS = ("faces", "adjacency", "grids", "meshes", "points")
LAYOUTS = ("named", "opara")
MANIFEST = "dataset.yaml"


def building_stem(building_id: int) -> str:
    return f"b{building_id:06d}"


def parse_formats(text: str | None) -> tuple[str, ...]:
    if not text or text == "all":
        return FORMATS
    chosen = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad:
        raise ConfigError(f"--formats: unknown format '{bad[0]}' (choose from {', '.join(FORMATS)} or all)")
    return chosen


def split_ids(count: int, seed: int, val: float, test: float) -> dict[str, list[int]]:
    """Deterministic train/val/test split by building, from the dataset seed."""
    order = np.random.default_rng([int(seed), 0x5B1]).permutation(count)
    n_test, n_val = int(round(count * test)), int(round(count * val))
    return {"train": sorted(order[n_test + n_val:].tolist()),
            "val": sorted(order[n_test:n_test + n_val].tolist()),
            "test": sorted(order[:n_test].tolist())}


def grid_arrays(building) -> dict:
    return {"occupancy": building.occupancy.astype(np.uint8),
            "labels": building.labels.astype(np.int8),
            "style": building.style.vector(),
            "archetype": np.array(building.archetype),
            "building_id": np.array(building.building_id, dtype=np.int64)}


def _write_building_files(building, out: Path, formats, cfg, vocab: Vocabulary, seed: int):
    stem = building_stem(building.building_id)
    if "grids" in formats:
        write_npz(out / "grids" / f"{stem}.npz", grid_arrays(building))
    if "meshes" not in formats and "points" not in formats:
        return
    mesh = quad_mesh(building.occupancy, building.labels, cfg["grid"]["cell_size"])
    colours = vocab.colours()
    if "meshes" in formats:
        for fmt in MESH_FORMATS:
            write_bytes(out / "meshes" / f"{stem}.{fmt}", mesh_bytes(mesh, fmt, vocab.names, colours))
    if "points" in formats:
        rng = np.random.default_rng([int(seed), building.building_id, 1])
        pts, normals, parts = sample_points(mesh, cfg["points"]["per_building"], rng)
        write_npz(out / "points" / f"{stem}.npz", {"points": pts, "normals": normals, "parts": parts})
        write_bytes(out / "points" / f"{stem}.ply", point_cloud_ply(pts, normals, parts, colours))


def _generate_chunk(job) -> list[dict]:
    cfg, seed, ids, out, formats = job
    vocab = Vocabulary(tuple(cfg["parts"]))
    results = []
    for building_id in ids:
        b = generate_building(cfg, seed, building_id)
        _write_building_files(b, Path(out), formats, cfg, vocab, seed)
        rec = {"buildings": tables.buildings_row(b), "archetype": b.archetype,
               "part_counts": np.bincount(b.labels[b.labels >= 0], minlength=len(vocab)),
               "cells": int(b.occupancy.sum())}
        if "adjacency" in formats or "faces" in formats:
            coords, adjacency = tables.adjacency_rows(b)
            if "adjacency" in formats:
                rec["adjacency"] = adjacency
            if "faces" in formats:
                rec["faces"] = tables.faces_rows(b, len(vocab), coords)
        results.append(rec)
    return results


def _chunks(count: int, size: int):
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def generate_dataset(cfg: dict, count: int, seed: int, out, formats=FORMATS, workers: int | None = None,
                     layout: str = "named", progress: bool = True) -> dict:
    """Generate ``count`` buildings into ``out``; return the manifest that was written."""
    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout must be one of {', '.join(LAYOUTS)}, got '{layout}'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    vocab = Vocabulary(tuple(cfg["parts"]))
    workers = max(1, workers or os.cpu_count() or 1)
    jobs = [(cfg, seed, ids, str(out), tuple(formats)) for ids in _chunks(count, 16)]

    tables_wanted = {"buildings": tables.buildings_header()}
    if "faces" in formats:
        tables_wanted["faces"] = None if layout == "opara" else tables.faces_header(vocab.names)
    if "adjacency" in formats:
        tables_wanted["adjacency"] = tables.adjacency_header()

    from tqdm import tqdm
    bar = tqdm(total=count, unit="bldg", desc="generate", disable=not progress)
    part_counts = np.zeros(len(vocab), dtype=np.int64)
    archetypes: dict[str, int] = {}
    cells = 0
    with _TableWriters(out, tables_wanted) as writers:
        pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
        try:
            results = pool.map(_generate_chunk, jobs) if pool else map(_generate_chunk, jobs)
            for chunk in results:
                for rec in chunk:
                    faces = rec.get("faces")
                    if faces is not None and layout == "opara":
                        rec["faces"] = tables.opara_rows(faces)
                    writers.write(rec)
                    part_counts += rec["part_counts"]
                    archetypes[rec["archetype"]] = archetypes.get(rec["archetype"], 0) + 1
                    cells += rec["cells"]
                bar.update(len(chunk))
        finally:
            if pool:
                pool.shutdown()
            bar.close()

    write_text(out / "labels.json", legend_json(vocab.names, vocab.colours()))
    manifest = build_manifest(cfg, count=count, seed=seed, formats=formats, layout=layout,
                              cells=cells, part_counts=part_counts,
                              archetype_counts={a: archetypes.get(a, 0) for a in ARCHETYPES},
                              archetypes=list(ARCHETYPES), source="proc-ml generate",
                              style_present=True)
    write_text(out / MANIFEST, yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None))
    return manifest


def build_manifest(cfg: dict, *, count: int, seed: int, formats, layout: str, cells: int,
                   part_counts, archetype_counts: dict, archetypes: list, source: str,
                   style_present: bool, grid_size=None) -> dict:
    """The ``dataset.yaml`` mapping (docs/formats.md), shared by every dataset writer."""
    vocab = Vocabulary(tuple(cfg["parts"]))
    return {
        "format": "proc-ml-buildings",
        "format_version": FORMAT_VERSION,
        "proc_ml_version": __version__,
        "source": source,
        "style_present": bool(style_present),
        "seed": int(seed),
        "count": int(count),
        "grid_size": [int(n) for n in (grid_size or cfg["grid"]["size"])],
        "cell_size": float(cfg["grid"]["cell_size"]),
        "parts": list(vocab.names),
        "directions": list(DIRECTIONS),
        "style_features": list(STYLE_FEATURES),
        "adjacency_features": list(adjacency_feature_names(with_style=True)),
        "archetypes": list(archetypes),
        "formats": list(formats),
        "layout": layout,
        "stats": {"cells": int(cells), "faces": int(np.sum(part_counts)),
                  "faces_per_part": {n: int(c) for n, c in zip(vocab.names, part_counts)},
                  "buildings_per_archetype": dict(archetype_counts)},
        "split": split_ids(count, seed, cfg["split"]["val"], cfg["split"]["test"]),
        "generator": cfg,
    }


class _TableWriters:
    """Stream dataset-wide CSVs into temp files; rename them into place only on success."""

    def __init__(self, out: Path, headers: dict):
        self.out, self.headers = out, headers
        self._contexts, self._files = {}, {}

    def __enter__(self):
        for name, header in self.headers.items():
            ctx = atomic_path(self.out / f"{name}.csv")
            path = ctx.__enter__()
            self._contexts[name] = ctx
            fh = open(path, "wb")
            if header is not None:
                fh.write(tables.header_line(header))
            self._files[name] = fh
        return self

    def write(self, rec: dict):
        for name, fh in self._files.items():
            fh.write(rec[name])

    def __exit__(self, *exc):
        for fh in self._files.values():
            fh.close()
        for ctx in self._contexts.values():
            ctx.__exit__(*exc)
        return False
