"""The one onnxruntime session wrapper every proc-ml caller uses (numpy + onnxruntime only),
and the one cache of what is loaded from model files.

``load_model(path, device)`` returns a cached ``ModelSession``. ``cached(kind, path, ...)``
is the cache itself: the CLI, batch workers, the Houdini SOPs and the Blender operators
keep sessions, predictors and DCC sessions in it, keyed by (what, resolved path, file
modification time and size, device, thread counts), so repeated calls reuse one loaded
model and a re-exported model file is picked up automatically.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .. import budget
from ..errors import ModelError
from ..validation import library_message
from .metadata import ModelMetadata
from .providers import DEVICES, resolve_providers

#: Most objects kept alive at once (each holds, or holds a session with, the model's weights).
CACHE_SIZE = 8
# onnxruntime log severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal.
_LOG_SEVERITY = 3

_cache: "OrderedDict[tuple, ModelSession]" = OrderedDict()
_cache_lock = threading.Lock()


def _ort():
    import onnxruntime as ort
    ort.set_default_logger_severity(_LOG_SEVERITY)
    return ort


def session_options(intra_op_threads: int = 0, inter_op_threads: int = 0, providers=()):
    """Graph optimisation on (ORT_ENABLE_ALL), quiet logging, thread counts (0 = ort default);
    DirectML needs memory patterns off (onnxruntime's DirectML provider docs)."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = _LOG_SEVERITY
    opts.intra_op_num_threads = int(intra_op_threads)
    opts.inter_op_num_threads = int(inter_op_threads)
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if "DmlExecutionProvider" in providers:
        opts.enable_mem_pattern = False
    if budget.hard_limit_active():
        # under a hard memory limit (batch workers) the CPU arena would keep the largest
        # input's peak for the worker's lifetime: allocate and free per run instead
        opts.enable_cpu_mem_arena = False
    return opts


class ModelSession:
    """An onnxruntime session plus the model's proc-ml metadata and input checks."""

    def __init__(self, path: str | os.PathLike, device: str = "auto",
                 intra_op_threads: int = 0, inter_op_threads: int = 0):
        self.path = Path(path)
        check_model_file(self.path)
        self.device = device
        providers = resolve_providers(device)
        ort = _ort()
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=session_options(intra_op_threads, inter_op_threads,
                                                             providers),
                providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for bad files
            hint = _version_hint(exc, ort)
            reason = _too_new(exc) if hint else library_message(exc)
            raise ModelError(f"{self.path}: not a loadable ONNX model ({reason}){hint}") from None
        self.providers = self.session.get_providers()
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props, str(self.path))
        self._check_graph_matches_metadata()

    def _check_graph_matches_metadata(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        meta = self.metadata
        if len(inputs) != 1 or inputs[0].name != meta.input_name:
            raise ModelError(f"{self.path}: graph inputs {[i.name for i in inputs]} do not match "
                             f"the metadata input '{meta.input_name}'")
        if outputs[0].name != meta.output_name:
            raise ModelError(f"{self.path}: graph output '{outputs[0].name}' does not match "
                             f"the metadata output '{meta.output_name}'")
        shape = inputs[0].shape
        fixed = [(g, m) for g, m in zip(shape, meta.input_shape) if isinstance(g, int) and isinstance(m, int)]
        if len(shape) != len(meta.input_shape) or any(g != m for g, m in fixed):
            raise ModelError(f"{self.path}: graph input shape {shape} does not match the "
                             f"metadata shape {meta.input_shape}")

    @property
    def uses_gpu(self) -> bool:
        """True when the first provider is not the CPU."""
        return self.providers[0] != "CPUExecutionProvider"

    def run(self, array: np.ndarray) -> np.ndarray:
        """Run the model on one input array (checked against the metadata first)."""
        self.metadata.check_input(array, str(self.path))
        if not np.isfinite(array).all():
            raise ModelError(f"{self.path}: the input holds NaN or infinite values")
        try:
            output = self.session.run([self.metadata.output_name],
                                      {self.metadata.input_name: array})[0]
        except MemoryError:
            raise ModelError(f"{self.path}: out of memory running the model on an input of "
                             f"shape {list(array.shape)}") from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own types, many lines
            raise ModelError(f"{self.path}: inference failed on an input of shape "
                             f"{list(array.shape)} ({_ort_reason(exc)})") from None
        if not np.isfinite(output).all():
            raise ModelError(f"{self.path}: the model produced NaN or infinite outputs (a broken "
                             f"or badly trained model)")
        return output


def _version_hint(exc: Exception, ort) -> str:
    """What to do when this onnxruntime is older than the file's IR version or opset."""
    text = str(exc)
    lower = text.lower()
    if "ir version" in lower or ("opset" in lower and "support" in lower):
        return (f"; this onnxruntime {ort.__version__} is older than the file needs: re-export "
                f"it with 'proc-ml export onnx RUN --target-ort {_major_minor(ort.__version__)}' "
                f"(docs/onnx.md)")
    return ""


def _too_new(exc: Exception) -> str:
    """onnxruntime's own words on the version it refused (its message starts with a C++
    signature several hundred characters long)."""
    import re

    found = re.search(r"(Unsupported model IR version[^\n]*|[^\n:]*opset[^\n]*)", str(exc))
    return found.group(1).strip()[:200] if found else library_message(exc)


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _ort_reason(exc: Exception) -> str:
    """onnxruntime's failure in a few words (its messages span lines and name graph nodes)."""
    text = str(exc)
    if "alloc" in text.lower() or "bad_alloc" in text:
        return "out of memory"
    return library_message(exc, limit=160)


def model_file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """(resolved path, mtime_ns, size) of a model file; ``ModelError`` when it is missing."""
    text = str(path or "").strip()
    if not text:
        raise ModelError("no model file set: point the model setting at a .onnx file exported "
                         "with 'proc-ml export onnx'")
    given = Path(text).expanduser()
    check_model_file(given)
    resolved = given.resolve()
    stat = resolved.stat()
    return str(resolved), stat.st_mtime_ns, stat.st_size


#: Suffixes of PyTorch checkpoints (``proc-ml train`` writes RUN/checkpoints/best.pt).
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def check_model_file(path: str | os.PathLike) -> None:
    """``ModelError`` unless ``path`` is a file; a training run folder or a PyTorch
    checkpoint given where an ONNX model belongs gets the export command to run."""
    path = Path(path)
    if path.is_dir():
        if (path / "checkpoints").is_dir() or (path / "config.yaml").is_file():
            raise ModelError(f"{path}: a training run folder, not an ONNX model; export it "
                             f"first: proc-ml export onnx {path} --out model.onnx")
        raise ModelError(f"{path}: not a model file (it is a folder)")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        run = path.parent.parent if path.parent.name == "checkpoints" else Path("RUN")
        raise ModelError(f"{path}: a PyTorch checkpoint, not an ONNX model; export it first: "
                         f"proc-ml export onnx {run} --checkpoint {path} --out model.onnx")


def cached(kind: str, path: str | os.PathLike, device: str, threads: tuple, build):
    """The object ``build(resolved_path)`` makes from a model file, from the cache when the
    same ``kind`` of object was built from the same file version, device and threads."""
    if device not in DEVICES:
        raise ModelError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")
    if any(int(t) < 0 for t in threads):
        raise ModelError(f"threads must be >= 0 (0 = onnxruntime's default), got {threads}")
    file_key = model_file_key(path)
    key = (kind, *file_key, device, tuple(int(t) for t in threads))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = build(file_key[0])
    with _cache_lock:
        for stale in [k for k in _cache if k[:2] == key[:2] and k[2:4] != key[2:4]]:
            del _cache[stale]
        _cache[key] = value
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return value


class Loaded:
    """A class built from a model file whose ``open`` keeps one instance per file version,
    device and threads in the shared cache (``cached``)."""

    @classmethod
    def open(cls, model_path: str | os.PathLike, device: str = "auto", intra_op_threads: int = 0,
             inter_op_threads: int = 0):
        return cached(cls.__qualname__, model_path, device, (intra_op_threads, inter_op_threads),
                      lambda resolved: cls(resolved, device, intra_op_threads, inter_op_threads))


def load_model(path: str | os.PathLike, device: str = "auto", intra_op_threads: int = 0,
               inter_op_threads: int = 0) -> ModelSession:
    """A cached ``ModelSession``; a changed file (new mtime or size) gets a fresh session."""
    return cached("session", path, device, (intra_op_threads, inter_op_threads),
                  lambda resolved: ModelSession(resolved, device, intra_op_threads, inter_op_threads))


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
