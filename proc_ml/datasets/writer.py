"""Writing a building dataset folder (docs/formats.md): the per-building files and the
dataset-wide index (buildings.csv, faces.csv, adjacency.csv, labels.json, dataset.yaml).

Every writer of building datasets goes through here: ``proc-ml generate buildings``
(workers write buildings, the parent streams the index in building order), the DCC export
(a building per cook, the index rebuilt from grids/), and the real-building import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..colours import part_colours
from ..fileio import atomic_path, write_bytes
from ..formats import (FORMATS, LEGEND, TABLES, adjacency_csv, buildings_csv, faces_csv,
                       grid_npz, grid_path, labelled_mesh, legend, manifest, mesh_path,
                       point_cloud, points_path)
from ..formats.tables import header_line
from ..grid import exterior_faces
from ..meshing import quad_mesh, sample_points, sample_triangle_points

#: Points sampled per building when no generator config says otherwise.
POINTS_PER_BUILDING = 2048


@dataclass
class BuildingArrays:
    """One building as plain arrays: what every dataset writer needs."""
    building_id: int
    archetype: str
    occupancy: np.ndarray            # uint8[X, Y, Z]
    labels: np.ndarray | None        # int8[X, Y, Z, 6], -1 where no face; None: massing to label
    style: np.ndarray                # float32[9] (zeros when the source has no style)
    extras: dict = field(default_factory=dict)   # optional grid arrays (formats.grid_npz.EXTRAS)
    #: the building's own mesh (vertices, triangles, triangle_parts; e.g. the facade grammar's
    #: sloped roofs), written to meshes/ and sampled for points/ instead of the voxel faces
    mesh: object | None = None


def write_building_files(out: str | os.PathLike, b: BuildingArrays, formats, parts,
                         cell_size: float, points_per_building: int = POINTS_PER_BUILDING,
                         seed: int = 0) -> None:
    """grids/, meshes/ and points/ files of one building (those ``formats`` asks for)."""
    if "grids" in formats:
        grid_npz.write(grid_path(out, b.building_id), b.building_id, b.archetype,
                       b.occupancy, b.labels, b.style, **b.extras)
    if "meshes" not in formats and "points" not in formats:
        return
    if b.mesh is not None:
        vertices, triangles, tri_parts = b.mesh.vertices, b.mesh.triangles, b.mesh.triangle_parts
    else:
        quads = quad_mesh(b.occupancy, b.labels, cell_size)
        vertices, triangles, tri_parts = quads.vertices, quads.triangles, quads.triangle_parts
    colours = part_colours(parts)
    if "meshes" in formats:
        for fmt in labelled_mesh.FORMATS:
            write_bytes(mesh_path(out, b.building_id, fmt),
                        labelled_mesh.mesh_bytes(vertices, triangles, tri_parts, fmt, parts, colours))
    if "points" in formats:
        rng = np.random.default_rng([int(seed), int(b.building_id), 1])
        if b.mesh is not None:
            pts, normals, labels = sample_triangle_points(vertices, triangles, tri_parts,
                                                          points_per_building, rng)
        else:
            pts, normals, labels = sample_points(quads, points_per_building, rng)
        point_cloud.write_npz_cloud(points_path(out, b.building_id, "npz"), pts, normals, labels)
        point_cloud.write_ply_cloud(points_path(out, b.building_id, "ply"), pts, normals, labels, colours)


def index_rows(b: BuildingArrays, n_parts: int, formats, layout: str = "named") -> dict:
    """The dataset-wide table rows of one building (bytes per table) and its counts."""
    labels = b.labels
    if labels is None:      # massing to label: exterior faces without a part
        labels = np.where(exterior_faces(b.occupancy), 0, -1).astype(np.int8)
        counts = np.zeros(n_parts, dtype=np.int64)
    else:
        counts = np.bincount(labels[labels >= 0].astype(np.int64), minlength=n_parts)
    rows = {"buildings": buildings_csv.row(b.building_id, b.archetype, b.occupancy, labels, b.style),
            "archetype": b.archetype, "cells": int(np.asarray(b.occupancy).sum()),
            "part_counts": counts}
    if "adjacency" in formats or "faces" in formats:
        coords, adjacency = adjacency_csv.rows(b.building_id, b.occupancy, b.style)
        if "adjacency" in formats:
            rows["adjacency"] = adjacency
        if "faces" in formats:
            if b.labels is None:
                raise ValueError("faces.csv needs part labels (leave 'faces' out for massing)")
            named = faces_csv.rows(b.building_id, b.labels, coords, n_parts)
            rows["faces"] = faces_csv.opara_rows(named) if layout == "opara" else named
    return rows


class DatasetIndex:
    """Streams the dataset-wide tables into temp files (renamed into place only when the
    ``with`` block succeeds), counts what it was given, and ends with labels.json and
    dataset.yaml (``finish``)."""

    def __init__(self, out: str | os.PathLike, parts, formats=FORMATS, layout: str = "named"):
        self.out, self.parts = Path(out), list(parts)
        self.formats, self.layout = tuple(formats), layout
        headers = {"buildings": buildings_csv.header()}
        if "faces" in self.formats:
            headers["faces"] = None if layout == "opara" else faces_csv.header(self.parts)
        if "adjacency" in self.formats:
            headers["adjacency"] = adjacency_csv.header()
        self.headers = headers
        self.part_counts = np.zeros(len(self.parts), dtype=np.int64)
        self.archetypes: dict[str, int] = {}
        self.cells = self.count = 0
        self._contexts, self._files = {}, {}

    def __enter__(self):
        for name, header in self.headers.items():
            ctx = atomic_path(self.out / TABLES[name])
            self._contexts[name] = ctx
            fh = open(ctx.__enter__(), "wb")
            if header is not None:
                fh.write(header_line(header))
            self._files[name] = fh
        return self

    def add(self, rows: dict) -> None:
        for name, fh in self._files.items():
            fh.write(rows[name])
        self.part_counts += rows["part_counts"]
        self.archetypes[rows["archetype"]] = self.archetypes.get(rows["archetype"], 0) + 1
        self.cells += rows["cells"]
        self.count += 1

    def __exit__(self, *exc):
        for fh in self._files.values():
            fh.close()
        for ctx in self._contexts.values():
            ctx.__exit__(*exc)
        return False

    def finish(self, *, cell_size: float, grid_size, seed: int, source: str, style_present: bool,
               archetypes=None, split=(0.1, 0.1), generator: dict | None = None,
               extra: dict | None = None) -> dict:
        """Write labels.json and dataset.yaml; return the manifest. ``archetypes``: the names
        the source knows (default: those seen), every one counted in the stats."""
        names = list(archetypes) if archetypes is not None else sorted(self.archetypes)
        legend.write(self.out / LEGEND, self.parts)
        result = manifest.build(
            parts=self.parts, cell_size=cell_size, grid_size=grid_size, count=self.count,
            seed=seed, formats=self.formats, layout=self.layout, cells=self.cells,
            part_counts=self.part_counts,
            archetype_counts={a: self.archetypes.get(a, 0) for a in names}, archetypes=names,
            source=source, style_present=style_present, split=split, generator=generator,
            extra=extra)
        manifest.write(self.out, result)
        return result
