"""Torch-free inference: numpy + onnxruntime only (DCC adapters, batch jobs, the CLI).

* ``load_model(path, device="auto")``: cached ``ModelSession`` (provider choice, quiet
  CPU fallback, input checks against the model's proc-ml metadata).
* ``PartsPredictor(path).predict(occupancy, style=None) -> (labels, probs)``
  (``PartsPredictor.open`` takes it from the one model cache).
* ``run_grids`` / ``run_cells`` / ``run_cell_sets``: batching for many small inputs.
* ``default_model(task)``: the model installed with proc-ml (the default ``--model``).
"""

from .batching import group_by_shape, run_cell_sets, run_cells, run_grids
from .metadata import ModelMetadata
from .models import DEFAULT_MODELS, default_model
from .parts import PartsPredictor, face_accuracy
from .providers import (DEVICES, cuda_status, provider_note, provider_status, resolve_device,
                        resolve_providers)
from .session import ModelSession, cached, clear_cache, load_model, session_options

__all__ = ["DEFAULT_MODELS", "DEVICES", "ModelMetadata", "default_model", "ModelSession", "PartsPredictor", "cached", "clear_cache",
           "cuda_status", "face_accuracy", "group_by_shape", "load_model", "provider_note",
           "provider_status", "resolve_device", "resolve_providers", "run_cell_sets", "run_cells",
           "run_grids", "session_options"]
