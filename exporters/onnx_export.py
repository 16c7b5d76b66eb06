"""ONNX export of trained runs, with embedded proc-ml metadata and a parity check.

Default exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export based). The legacy
TorchScript exporter (``dynamo=False``) is kept as ``exporter="legacy"``; docs/onnx.md
explains the choice. Both give fully dynamic batch / grid / cell axes; the dynamo one
also writes the stride constraint into the symbolic dims (``4*x_div4``).

The model is written to a temporary file, checked with ``onnx.checker``, compared with
PyTorch through ``proc_ml.runtime`` on real dataset samples and on a grid size (or cell
count) not seen at export, and only then renamed into place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from proc_ml import __version__
from proc_ml.errors import ModelError
from proc_ml.fileio import atomic_path
from proc_ml.formats import MANIFEST
from proc_ml.runinfo import RunInfo
from proc_ml.runtime.metadata import ModelMetadata

EXPORTERS = ("dynamo", "legacy")
DEFAULT_OPSET = 18
TOLERANCE = 1e-4
# Loggers the exporters report through; raised to ERROR while exporting.
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo",
                  "torch.fx.experimental.symbolic_shapes", "onnxscript")


@contextlib.contextmanager
def quiet_exporter(verbose: bool = False):
    """Silence exporter chatter (deprecation/future warnings, progress lines, INFO/WARNING
    logs such as "torchvision is not installed"); exceptions still propagate."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            for category in (DeprecationWarning, FutureWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _dynamic_dims(info: RunInfo):
    """Dynamic axes from the run info's tensor layout: dynamo ``dynamic_shapes`` dims and
    legacy ``dynamic_axes`` (a stride multiple becomes ``stride * Dim(name_divN)``)."""
    from torch.export import Dim

    dims, axes = {}, {}
    for index, axis in enumerate(info.input_axes()):
        if not axis.dynamic:
            continue
        if axis.multiple > 1:
            dims[index] = axis.multiple * Dim(f"{axis.name}_div{axis.multiple}", min=1)
        else:
            dims[index] = Dim(axis.name, min=axis.minimum)
        axes[index] = axis.name
    return dims, axes


def export_model_proto(model, example: np.ndarray, info: RunInfo, opset: int, exporter: str,
                       verbose: bool = False):
    """The torch model as an ``onnx.ModelProto`` with dynamic axes (no metadata yet)."""
    import onnx
    import torch

    if exporter not in EXPORTERS:
        raise ModelError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    in_name, out_name = info.input_name(), info.output_name()
    dyn_shapes, dyn_axes = _dynamic_dims(info)
    out_axes = {i: a.name for i, a in enumerate(info.output_axes()) if a.dynamic}
    args = (torch.from_numpy(np.ascontiguousarray(example)),)
    with quiet_exporter(verbose):
        try:
            if exporter == "dynamo":
                program = torch.onnx.export(model, args, dynamo=True, input_names=[in_name],
                                            output_names=[out_name], dynamic_shapes=(dyn_shapes,),
                                            opset_version=opset, verbose=verbose, optimize=True)
                return program.model_proto
            buf = io.BytesIO()
            torch.onnx.export(model, args, buf, dynamo=False, input_names=[in_name],
                              output_names=[out_name], opset_version=opset,
                              dynamic_axes={in_name: dyn_axes, out_name: out_axes},
                              do_constant_folding=True)
            return onnx.load_from_string(buf.getvalue())
        except ModelError:
            raise
        except Exception as exc:  # exporters raise many types; report one line
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            raise ModelError(f"{exporter} ONNX export of {info.family} failed: "
                             f"{type(exc).__name__}: {lines[0] if lines else ''}") from None


def _graph_shape(value_info) -> list:
    return [d.dim_param if d.dim_param else int(d.dim_value)
            for d in value_info.type.tensor_type.shape.dim]


def attach_metadata(proto, run, exporter_info: dict) -> ModelMetadata:
    """Write the proc-ml metadata (docs/onnx.md) into ``proto.metadata_props``."""
    import onnx

    meta = ModelMetadata.for_info(run.info, proc_ml_version=__version__, metrics=run.metrics,
                                  exporter=exporter_info,
                                  input_shape=_graph_shape(proto.graph.input[0]),
                                  output_shape=_graph_shape(proto.graph.output[0]))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta.to_props())
    proto.producer_name = "proc-ml"
    proto.producer_version = __version__
    proto.doc_string = (f"proc-ml {meta.family} ({meta.kind} model) for {meta.task}; "
                        f"see the proc_ml.* metadata keys")
    return meta


def check_model(proto, where: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ModelError(f"{where}: onnx.checker rejected the exported model "
                         f"({str(exc).strip().splitlines()[0]})") from None


def compare_with_torch(model, onnx_path, samples, device: str = "cpu"):
    """``[(name, max abs difference)]`` between PyTorch and onnxruntime (via proc_ml.runtime)."""
    import torch

    from proc_ml.runtime.session import ModelSession

    session = ModelSession(onnx_path, device=device)
    diffs = []
    with torch.no_grad():
        for name, x in samples:
            expected = model(torch.from_numpy(x)).numpy()
            got = session.run(x)
            if got.shape != expected.shape:
                raise ModelError(f"{onnx_path}: output shape {got.shape} on {name}, "
                                 f"PyTorch gives {expected.shape}")
            diffs.append((name, float(np.abs(got - expected).max(initial=0.0))))
    return diffs


def export_run(run_dir, out, *, opset: int = DEFAULT_OPSET, checkpoint: str = "best",
               exporter: str = "dynamo", data_dir=None, tolerance: float = TOLERANCE,
               verbose: bool = False, log: Callable[[str], None] = print) -> dict:
    """Export a run to ``out``; raise ``ModelError`` (and write nothing) if parity fails."""
    import torch

    from proc_ml.trainers import load_run

    model, run = load_run(run_dir, checkpoint)
    data_dir = data_dir if data_dir is not None else _run_data_dir(run)
    samples = run.task.parity_inputs(run, data_dir)
    proto = export_model_proto(model, samples[0][1], run.info, opset, exporter, verbose)
    meta = attach_metadata(proto, run, {"exporter": exporter, "opset": opset,
                                        "torch": torch.__version__,
                                        "checkpoint": checkpoint, "epoch": run.epoch})
    check_model(proto, str(out))
    with atomic_path(out) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        diffs = compare_with_torch(model, tmp, samples)
        for name, diff in diffs:
            log(f"  parity {name}: max |onnxruntime - torch| = {diff:.2e}")
        worst = max(diffs, key=lambda d: d[1])
        if not worst[1] <= tolerance:
            raise ModelError(f"{out}: onnxruntime differs from PyTorch by {worst[1]:.2e} on "
                             f"{worst[0]} (tolerance {tolerance:g}); model not written")
    return {"out": str(out), "family": meta.family, "exporter": exporter, "opset": opset,
            "input_shape": meta.input_shape, "max_abs_diff": worst[1],
            "parity": dict(diffs), "bytes": os.path.getsize(out),
            "data": str(data_dir) if data_dir else "generated buildings"}


def _run_data_dir(run):
    """The dataset a run was trained on, when the run recorded it and it still exists."""
    value = getattr(run.info, "data_dir", None)
    if value and Path(value, MANIFEST).is_file():
        return value
    return None
