"""``proc-ml generate buildings``: generate buildings in parallel and write every format.

Workers generate chunks of buildings and write the per-building files (grids, meshes,
point clouds) themselves; the dataset-wide tables are assembled in building order by the
parent (``proc_ml.datasets.writer.DatasetIndex``), so the output is byte-identical for a
seed whatever the number of workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from proc_ml.datasets.writer import BuildingArrays, DatasetIndex, index_rows, write_building_files
from proc_ml.errors import ConfigError
from proc_ml.fileio import FolderLock, die_with_parent, remove_stale_temps
from proc_ml.formats import FORMATS, LAYOUTS
from proc_ml.procedural import ARCHETYPES, generate_building
from proc_ml.procedural.lots import HOUSE_BLOCKS


def building_arrays(building) -> BuildingArrays:
    """A generated ``Building`` as the arrays the dataset writers take."""
    return BuildingArrays(building.building_id, building.archetype, building.occupancy,
                          building.labels, building.style.vector(), dict(building.extras),
                          building.mesh)


def _generate_chunk(job) -> list[dict]:
    cfg, seed, ids, out, formats, layout = job
    n_parts = len(cfg["parts"])
    results = []
    for building_id in ids:
        mesh = "meshes" in formats or "points" in formats
        b = building_arrays(generate_building(cfg, seed, building_id, mesh=mesh))
        write_building_files(out, b, formats, cfg["parts"], cfg["grid"]["cell_size"],
                             cfg["points"]["per_building"], seed)
        results.append(index_rows(b, n_parts, formats, layout))
    return results


def _chunks(count: int, size: int):
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def generate_dataset(cfg: dict, count: int, seed: int, out, formats=FORMATS, workers: int | None = None,
                     layout: str = "named", progress: bool = True, on_progress=None) -> dict:
    """Generate ``count`` buildings into ``out``; return the manifest that was written.
    ``on_progress(done, count)`` is called as chunks of buildings finish."""
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
    workers = max(1, workers or os.cpu_count() or 1)
    jobs = [(cfg, seed, ids, str(out), tuple(formats), layout) for ids in _chunks(count, 16)]

    with FolderLock(out, LOCK_NAME, "generate", remove=True):
        # a killed run's temp files (tables streamed into .NAME.<token>.tmp, per-building
        # files mid-write) go before this run writes; the lock keeps a running one's
        remove_stale_temps(out)
        return _generate(cfg, count, seed, out, formats, workers, layout, progress, jobs,
                         on_progress)


#: Lock file of a dataset folder while ``generate`` writes it (removed at the end).
LOCK_NAME = ".proc-ml-generate.lock"


def _generate(cfg, count, seed, out, formats, workers, layout, progress, jobs,
              on_progress=None) -> dict:
    from tqdm import tqdm
    bar = tqdm(total=count, unit="bldg", desc="generate", disable=not progress)
    done = 0
    with DatasetIndex(out, cfg["parts"], formats, layout) as index:
        # workers die with this process: a killed generate leaves no worker writing on
        pool = (ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))
                if workers > 1 and len(jobs) > 1 else None)
        try:
            results = pool.map(_generate_chunk, jobs) if pool else map(_generate_chunk, jobs)
            for chunk in results:
                for rows in chunk:
                    index.add(rows)
                bar.update(len(chunk))
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, count)
        finally:
            if pool:
                pool.shutdown()
            bar.close()
    return index.finish(cell_size=cfg["grid"]["cell_size"], grid_size=cfg["grid"]["size"], seed=seed,
                        source="proc-ml generate", style_present=True,
                        archetypes=(HOUSE_BLOCKS + ARCHETYPES if cfg["rules"] == "facade" else ARCHETYPES),
                        split=(cfg["split"]["val"], cfg["split"]["test"]), generator=cfg)
