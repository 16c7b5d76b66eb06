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

from proc_ml import FORMAT_VERSION, __version__
from proc_ml.errors import ModelError
from proc_ml.fileio import atomic_path
from proc_ml.runtime.metadata import build_metadata

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


def _dynamic_dims(info: dict):
    """(input name, output name, dynamo ``dynamic_shapes`` dims, legacy ``dynamic_axes``)."""
    from torch.export import Dim

    if info["input_kind"] == "cells":
        return "cells", "logits", {0: Dim("cells", min=0)}, {0: "cells"}
    if info["input_kind"] in ("points", "voxels"):
        from proc_ml.trainers.shapes import shape_dynamic_dims
        return shape_dynamic_dims(info)
    if info["input_kind"] == "image":
        stride = int(info["stride"])
        dims = {0: Dim("batch", min=1), 2: stride * Dim(f"height_div{stride}", min=1),
                3: stride * Dim(f"width_div{stride}", min=1)}
        return "labels", "image", dims, {0: "batch", 2: "height", 3: "width"}
    stride = int(info.get("stride") or 1)
    dims = {0: Dim("batch", min=1)}
    for axis, name in zip((2, 3, 4), "xyz"):
        dims[axis] = stride * Dim(f"{name}_div{stride}", min=1) if stride > 1 else Dim(name, min=1)
    return "grid", "logits", dims, {0: "batch", 2: "x", 3: "y", 4: "z"}


def export_model_proto(model, example: np.ndarray, info: dict, opset: int, exporter: str,
                       verbose: bool = False):
    """The torch model as an ``onnx.ModelProto`` with dynamic axes (no metadata yet)."""
    import onnx
    import torch

    if exporter not in EXPORTERS:
        raise ModelError(f"exporter must be one of {', '.join(EXPORTERS)}, got '{exporter}'")
    in_name, out_name, dyn_shapes, dyn_axes = _dynamic_dims(info)
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
                              dynamic_axes={in_name: dyn_axes, out_name: dyn_axes},
                              do_constant_folding=True)
            return onnx.load_from_string(buf.getvalue())
        except ModelError:
            raise
        except Exception as exc:  # exporters raise many types; report one line
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            raise ModelError(f"{exporter} ONNX export of {info['family']} failed: "
                             f"{type(exc).__name__}: {lines[0] if lines else ''}") from None


def _graph_shape(value_info) -> list:
    return [d.dim_param if d.dim_param else int(d.dim_value)
            for d in value_info.type.tensor_type.shape.dim]


def attach_metadata(proto, info: dict, exporter_info: dict):
    """Write the proc-ml metadata (docs/onnx.md) into ``proto.metadata_props``."""
    import onnx

    meta = build_metadata(info, exporter=exporter_info, proc_ml_version=__version__,
                          dataset_format_version=(info.get("dataset_manifest") or {}).get(
                              "format_version", FORMAT_VERSION))
    meta.input_shape = _graph_shape(proto.graph.input[0])
    meta.output_shape = _graph_shape(proto.graph.output[0])
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta.to_props())
    proto.producer_name = "proc-ml"
    proto.producer_version = __version__
    proto.doc_string = (f"proc-ml {meta.family} for {meta.task}: parts {', '.join(meta.parts)}; "
                        f"see the proc_ml.* metadata keys")
    return meta


def check_model(proto, where: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ModelError(f"{where}: onnx.checker rejected the exported model "
                         f"({str(exc).strip().splitlines()[0]})") from None


# -- parity inputs ----------------------------------------------------------------------
def parity_inputs(info: dict, data_dir=None, n: int = 3) -> list[tuple[str, np.ndarray]]:
    """Named inputs: real samples from the run's dataset (or freshly generated buildings
    when no dataset is given) plus one size/count the export never saw."""
    if info["input_kind"] == "image":
        from proc_ml.textures.parity import parity_images
        return parity_images(info, n)
    if info["input_kind"] in ("points", "voxels"):
        from proc_ml.trainers.shapes import shape_parity_inputs
        return shape_parity_inputs(info, data_dir, n)
    records = _sample_records(info, data_dir, n)
    with_style = bool(info["with_style"])
    samples = [(name, _encode(info, occ, style if with_style else None))
               for name, occ, style in records]
    unseen = _unseen_record(info)
    samples.append((f"unseen size {list(unseen[1].shape)}",
                    _encode(info, unseen[1], unseen[2] if with_style else None)))
    if info["input_kind"] == "grid":  # a batch of 2 at that size exercises the batch axis
        samples.append(("unseen size, batch 2", np.concatenate([samples[-1][1]] * 2)))
    else:  # many buildings' cells in one run, as batch inference does
        cells = np.concatenate([x for _, x in samples])
        samples.append((f"all samples at once ({len(cells)} cells)", cells))
    return samples


def _encode(info: dict, occupancy, style) -> np.ndarray:
    from proc_ml.encoding import adjacency_features, grid_channels, pad_to_stride

    if info["input_kind"] == "grid":
        return pad_to_stride(grid_channels(occupancy, style), int(info["stride"]))[None]
    return adjacency_features(occupancy, style)[1]


def _sample_records(info: dict, data_dir, n: int):
    if data_dir is not None:
        from proc_ml.datasets import open_dataset

        data = open_dataset(data_dir)
        ids = (data.ids("test") or data.ids("val") or data.ids())[:n]
        return [(f"dataset building {i}", r.occupancy, r.style)
                for i, r in ((i, data.building(i)) for i in ids)]
    size = list((info.get("dataset_manifest") or {}).get("grid_size") or [16, 16, 16])
    return _generated(size, n, seed=1)


def _unseen_record(info: dict):
    """A building on a grid no training sample had (bigger, non-cubic, not a stride multiple)."""
    size = list((info.get("dataset_manifest") or {}).get("grid_size") or [16, 16, 16])
    unseen = [size[0] + 6, max(size[1] - 2, 6), size[2] + 3]
    return _generated(unseen, 1, seed=2)[0]


def _generated(size, n: int, seed: int):
    from proc_ml.procedural import generate_building
    from proc_ml.procedural.config import default_config

    cfg = default_config()
    cfg["grid"]["size"] = [int(v) for v in size]
    out = []
    for index in range(n):
        b = generate_building(cfg, seed, index)
        out.append((f"generated building {list(size)} #{index}", b.occupancy, b.style.vector()))
    return out


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

    model, info = load_run(run_dir, checkpoint)
    data_dir = data_dir if data_dir is not None else _run_data_dir(info)
    samples = parity_inputs(info, data_dir)
    proto = export_model_proto(model, samples[0][1], info, opset, exporter, verbose)
    meta = attach_metadata(proto, info, {"exporter": exporter, "opset": opset,
                                         "torch": torch.__version__,
                                         "checkpoint": checkpoint, "epoch": info.get("epoch")})
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


def _run_data_dir(info: dict):
    """The dataset a run was trained on, when the run recorded it and it still exists."""
    for value in (info.get("data_dir"), (info.get("config") or {}).get("data_dir")):
        if value and Path(value, "dataset.yaml").is_file():
            return value
    return None
