"""``proc-ml batch``: run a model over whole asset folders, resumable, locally or on Ray.

Inference path: numpy + onnxruntime (+ trimesh for mesh IO), never torch. See docs/batch.md.
"""

from .assets import ASSET_EXTENSIONS, Asset, AssetError, Limits, load_asset
from .items import FAILED, OK, SKIPPED, ItemResult, TaskOutput, WorkItem
from .manifest import CSV, JSONL, read_records
from .runner import BatchReport, BatchSettings, run_batch
from .tasks import TASKS, BatchTask, get_task, register_task
from .walker import parse_extensions, walk_assets

__all__ = ["ASSET_EXTENSIONS", "Asset", "AssetError", "BatchReport", "BatchSettings", "BatchTask",
           "CSV", "FAILED", "ItemResult", "JSONL", "Limits", "OK", "SKIPPED", "TASKS", "TaskOutput",
           "WorkItem", "get_task", "load_asset", "parse_extensions", "read_records",
           "register_task", "run_batch", "walk_assets"]
