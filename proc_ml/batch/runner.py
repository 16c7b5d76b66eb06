"""``run_batch``: plan the work items of a folder, run them, record them in the manifest.

Workers write each asset's outputs (every file atomically) into ``OUT/<asset path>/``, a
folder the driver checked to lie inside OUT; the driver alone writes the manifest, one
fsync'ed record per asset after its outputs are complete. Before an asset that has an ok
record is redone, an "interrupted" failed record is appended, so if the run is killed while
its files are being replaced no ok record ever names a mix of old and new files. A lock
file keeps two batches off one OUT; temp files a killed run left are removed at the start.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import OutputError, ProcMLError
from ..fileio import (FolderLock, check_output_folder, file_sha256, os_error_text,
                      remove_stale_temps, safe_join)
from ..runtime.session import check_model_file
from .assets import AssetError, Limits, one_line
from .items import (FAILED, OK, SKIPPED, ItemResult, WorkItem, item_out_dir, output_rel,
                    settings_sha256)
from .manifest import CSV, Manifest
from .tasks import BatchTask, get_task
from .walker import FoundAsset, walk_assets
from .worker import WorkerSpec

LOCK_NAME = ".proc-ml-batch.lock"
INTERRUPTED = "the run stopped before this asset finished (killed?); it is redone on the next run"


@dataclass
class BatchSettings:
    asset_dir: str
    out_dir: str
    task: str = "parts"
    model: str = ""
    workers: int = 1
    executor: str = "local"                 # local | ray
    address: str | None = None              # Ray cluster address (None: start a local Ray)
    options: dict = field(default_factory=dict)   # task options, e.g. {"cell_size": 1.0}
    force: bool = False
    extensions: tuple[str, ...] | None = None     # None: the task's asset types
    timeout: float | None = None            # seconds per asset
    limits: Limits = field(default_factory=Limits)
    follow_symlinks: bool = False
    progress: bool = True
    gpus_per_worker: float | None = None    # Ray: GPU share per actor (None: 1 / workers per GPU)
    on_record: Callable | None = None       # on_record(record, done, total) per manifest record


@dataclass
class BatchReport:
    counts: dict                            # status -> assets, this run
    failures: list                          # (asset, error), this run
    seconds: float
    executor: str
    records: list                           # manifest records written by this run
    others: dict = field(default_factory=dict)   # files passed over by type: {".fbx": 3}
    gone: list = field(default_factory=list)     # assets of earlier runs deleted since

    @property
    def exit_code(self) -> int:
        return 2 if self.failures else 0


def run_batch(settings: BatchSettings, task: BatchTask | None = None, executor=None) -> BatchReport:
    """Process every asset of ``settings.asset_dir``; see docs/batch.md."""
    start = time.perf_counter()
    task = task or get_task(settings.task)
    asset_dir, out_dir = _check_folders(settings.asset_dir, settings.out_dir)
    model = Path(settings.model)
    check_model_file(model)       # not found / a run folder or checkpoint: says how to export
    options = {k: settings.options[k] for k in task.option_names if k in settings.options}
    hashes = {"model_sha256": file_sha256(model),
              "settings_sha256": settings_sha256(task.name, task.version, options),
              "task": task.name}
    # the device changes where a model runs, not what it outputs: not part of the skip hash
    worker_options = {**options, "device": settings.options.get("device", "auto")}
    spec = WorkerSpec(task.opener, str(model.resolve()), worker_options, settings.limits)
    executor = executor or make_executor(settings, spec)
    check_output_folder(out_dir)
    with FolderLock(out_dir, LOCK_NAME, "batch"):
        remove_stale_temps(out_dir)
        others: dict = {}
        found = walk_assets(asset_dir, settings.extensions or task.extensions, exclude=[out_dir],
                            follow_symlinks=settings.follow_symlinks, others=others)
        if not found and others:
            raise ProcMLError(f"{asset_dir}: no asset of a type the {task.name} task reads "
                              f"({describe_others(others)}); export them as a type it reads "
                              f"(docs/batch.md) or choose --extensions")
        manifest = Manifest(out_dir)
        gone = _forget_deleted_assets(manifest, asset_dir, out_dir, found)
        with manifest:
            run = _Run(settings, out_dir, manifest, hashes, len(found))
            try:
                items = run.plan(found)
                for item in items:
                    run.mark_started(item)
                with contextlib.closing(executor.run(items)) as results:
                    for result in results:
                        run.record_result(result)
            except BaseException:
                run.close()
                with contextlib.suppress(OSError, ProcMLError):
                    manifest.write_csv()        # best effort: the error in flight is the news
                raise
            run.close()
            try:
                manifest.write_csv()
            except OSError as exc:
                raise OutputError(f"cannot write {CSV}: {os_error_text(exc)} (manifest.jsonl "
                                  f"is complete)") from None
    return BatchReport(run.counts, run.failures, time.perf_counter() - start,
                       executor.describe(), run.records, others, gone)


def _forget_deleted_assets(manifest: Manifest, asset_dir: Path, out_dir: Path,
                           found: list) -> list[str]:
    """Assets an earlier run recorded whose files are gone from ``asset_dir``: their records
    leave the manifest and the outputs listed in them are removed, so the manifest and OUT
    describe the assets that exist. An asset only passed over this time (another
    ``--extensions``, an excluded folder) still exists and keeps both."""
    seen = {asset.rel for asset in found}
    gone = []
    for rel, record in sorted(manifest.records.items()):
        if rel in seen or "\\x" in rel:      # (escaped non-UTF-8 names: never guessed at)
            continue
        try:
            if os.path.lexists(safe_join(asset_dir, rel)):
                continue
        except ProcMLError:
            continue
        for out_rel in record.get("outputs") or ():
            with contextlib.suppress(ProcMLError, OSError):
                safe_join(out_dir, out_rel).unlink(missing_ok=True)
        with contextlib.suppress(ProcMLError, OSError):
            folder = item_out_dir(out_dir, rel)
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        del manifest.records[rel]
        gone.append(rel)
    return gone


def describe_others(others: dict, most: int = 6) -> str:
    """``{".fbx": 3, ".blend": 1}`` -> ``"4 other files: 3 .fbx, 1 .blend"``."""
    ranked = sorted(others.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{n} {kind}" for kind, n in ranked[:most])
    more = f", {len(ranked) - most} more types" if len(ranked) > most else ""
    return f"{sum(others.values())} other files: {shown}{more}"


def make_executor(settings: BatchSettings, spec: WorkerSpec):
    if settings.executor == "local":
        from .local import LocalExecutor
        return LocalExecutor(spec, settings.workers, settings.timeout)
    if settings.executor == "ray":
        from .ray_executor import RayExecutor
        return RayExecutor(spec, settings.workers, settings.timeout, settings.address,
                           settings.gpus_per_worker)
    raise ProcMLError(f"--executor must be local or ray, got '{settings.executor}'")


def _check_folders(asset_dir, out_dir) -> tuple[Path, Path]:
    assets, out = Path(asset_dir).resolve(), Path(out_dir).resolve()
    if not assets.is_dir():
        raise ProcMLError(f"{asset_dir}: " + ("a file, not a folder (proc-ml batch takes a folder "
                                             "of assets; proc-ml predict takes one file)"
                                             if assets.exists() else "asset folder not found"))
    if out == assets or out in assets.parents:
        raise ProcMLError(f"--out {out_dir} must not be the asset folder or contain it "
                          f"(outputs would be read back as assets)")
    return assets, out


class _Run:
    """Bookkeeping of one run: skip decisions, writing results, records, progress."""

    def __init__(self, settings: BatchSettings, out_dir: Path, manifest: Manifest, hashes: dict,
                 total: int):
        from tqdm import tqdm

        self.settings, self.out_dir, self.manifest, self.hashes = settings, out_dir, manifest, hashes
        self.previous = dict(manifest.records)    # records from earlier runs, per asset
        self.counts = {OK: 0, SKIPPED: 0, FAILED: 0}
        self.failures, self.records, self.planned = [], [], {}
        self.total = total
        self.names: set[str] = set()
        self.bar = tqdm(total=total, unit="asset", desc="batch", disable=not settings.progress,
                        dynamic_ncols=True, smoothing=0.1)

    def plan(self, found: list[FoundAsset]) -> list[WorkItem]:
        """Work items to run; records bad symlinks, pre-check failures and skips right away."""
        items = []
        for asset in found:
            try:
                item = self._item(asset)
            except (ProcMLError, OSError) as exc:
                self._append(self._record(asset.rel, FAILED, error=one_line(exc)))
                continue
            if self._unchanged(item):
                previous = self.previous[item.rel]
                self._append(self._record(item.rel, SKIPPED, item=item, outputs=previous["outputs"],
                                          summary=previous.get("summary") or {}))
            else:
                self.planned[item.rel] = item
                items.append(item)
        return items

    def _item(self, asset: FoundAsset) -> WorkItem:
        if asset.problem:
            raise AssetError(asset.problem)
        if asset.rel in self.names:
            raise AssetError("its name collides with another asset's once bytes that are not "
                             "UTF-8 are written as \\x escapes; rename one of them")
        self.names.add(asset.rel)
        try:
            out_dir = item_out_dir(self.out_dir, asset.rel)
        except ProcMLError as exc:   # its message starts with the asset path the record names
            raise AssetError(str(exc).removeprefix(f"{asset.rel}: ")) from None
        if out_dir.is_file() or out_dir == self.out_dir:
            raise AssetError(f"its output folder {out_dir} is taken by a file")
        size = Path(asset.path).stat().st_size
        self.settings.limits.check_bytes(size)
        return WorkItem(asset.rel, str(asset.path), file_sha256(asset.path), size, str(out_dir))

    def _unchanged(self, item: WorkItem) -> bool:
        previous = self.previous.get(item.rel)
        if self.settings.force or not _succeeded(previous):
            return False
        if previous.get("asset_sha256") != item.sha256:
            return False
        if any(previous.get(key) != value for key, value in self.hashes.items()):
            return False
        return all(_is_output(self.out_dir, rel) for rel in previous.get("outputs") or ())

    def mark_started(self, item: WorkItem) -> None:
        """Withdraw an ok record before the item's files are replaced (see module doc)."""
        if _succeeded(self.previous.get(item.rel)):
            self.manifest.append(self._record(item.rel, FAILED, item=item, error=INTERRUPTED))

    def record_result(self, result: ItemResult) -> None:
        item = self.planned[result.rel]
        outputs = [output_rel(item.rel, name) for name in result.files]
        self._remove_stale_outputs(item.rel, keep=set(outputs) if result.status == OK else set())
        if result.status == OK:
            self._append(self._record(item.rel, OK, item=item, outputs=outputs,
                                      summary=result.summary, seconds=result.seconds))
        else:
            self._append(self._record(item.rel, FAILED, item=item, error=result.error,
                                      seconds=result.seconds))

    def _remove_stale_outputs(self, rel: str, keep: set) -> None:
        """Files of an earlier success that this result does not produce again (a failed
        asset keeps no outputs of an older version; the manifest says it failed)."""
        previous = self.previous.get(rel) or {}
        for out_rel in previous.get("outputs") or ():
            if out_rel in keep:
                continue
            try:
                safe_join(self.out_dir, out_rel).unlink(missing_ok=True)
            except (ProcMLError, OSError):
                pass

    def _record(self, rel: str, status: str, item: WorkItem | None = None, error: str | None = None,
                outputs=(), summary=None, seconds: float = 0.0) -> dict:
        return {"asset": rel, "status": status, "error": error, "seconds": round(seconds, 4),
                "asset_sha256": item.sha256 if item else None,
                "asset_bytes": item.size if item else None,
                **self.hashes, "outputs": list(outputs), "summary": summary or {},
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def _append(self, record: dict) -> None:
        self.manifest.append(record)
        self.records.append(record)
        self.counts[record["status"]] += 1
        if record["status"] == FAILED:
            self.failures.append((record["asset"], record["error"]))
        self.bar.set_postfix(ok=self.counts[OK], skipped=self.counts[SKIPPED],
                             failed=self.counts[FAILED], refresh=False)
        self.bar.update(1)
        if self.settings.on_record is not None:
            self.settings.on_record(record, len(self.records), self.total)

    def close(self) -> None:
        self.bar.close()


def _succeeded(record: dict | None) -> bool:
    return bool(record) and record.get("status") in (OK, SKIPPED)


def _is_output(out_dir: Path, rel: str) -> bool:
    try:
        return safe_join(out_dir, rel).is_file()
    except ProcMLError:
        return False
