"""ONNX export of trained runs, with embedded proc-ml metadata and a parity check.

Default exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export based). The legacy
TorchScript exporter (``dynamo=False``) is kept as ``exporter="legacy"``; docs/onnx.md
explains the choice. Both give fully dynamic batch / grid / cell axes; the dynamo one
also writes the stride constraint into the symbolic dims (``4*x_div4``).

The model is written to a temporary file, checked with ``onnx.checker``, compared with
PyTorch through ``proc_ml.runtime`` on real dataset samples and on a grid size (or cell
count) not seen at export, and only then renamed into place.

Older onnxruntime releases: ``target_ort="1.16"`` (``--portable`` / ``--target-ort``) caps
the opset at what that release implements and writes the lowest IR version the opset and
the graph allow (the dynamo exporter always stamps IR 10, which onnxruntime < 1.18 refuses);
``proc_ml.runtime.modelfile.ORT_LIMITS`` is the table, ``set_versions`` the conversion.
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
from proc_ml.runtime.modelfile import ORT_LIMITS, PORTABLE_ORT, ort_limits  # noqa: F401

EXPORTERS = ("dynamo", "legacy")
#: eval: the model's inference graph (default); train: image models as the pix2pix
#: reference tests them (BatchNorm on the batch's own statistics, dropout sampled).
INFERENCE_MODES = ("eval", "train")
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


def replace_random_draws(proto):
    """A copy of ``proto`` whose ``RandomUniformLike`` nodes give ones instead of a draw
    (``Shape`` + ``ConstantOfShape``), and how many were replaced: the deterministic twin
    a train-mode export is compared with PyTorch through."""
    import onnx
    from onnx import TensorProto, helper

    twin = onnx.ModelProto()
    twin.CopyFrom(proto)
    nodes, replaced = [], 0
    for node in twin.graph.node:
        if node.op_type != "RandomUniformLike":
            nodes.append(node)
            continue
        dtype = next((a.i for a in node.attribute if a.name == "dtype"), TensorProto.FLOAT)
        shape_name = f"{node.output[0]}__shape"
        nodes.append(helper.make_node("Shape", [node.input[0]], [shape_name]))
        nodes.append(helper.make_node("ConstantOfShape", [shape_name], [node.output[0]],
                                      value=helper.make_tensor("one", dtype, [1], [1])))
        replaced += 1
    del twin.graph.node[:]
    twin.graph.node.extend(nodes)
    return twin, replaced


def _check_train_mode(model, proto, tmp: Path, samples, log) -> list:
    """Parity of a train-mode export: PyTorch with dropout keeping everything against the
    ONNX twin whose draws are ones; then the real graph must draw (two runs differ)."""
    import tempfile

    from proc_ml.runtime.session import ModelSession
    from proc_ml.trainers.pix2pix import SampledDropout

    dropouts = [m for m in model.modules() if isinstance(m, SampledDropout) and m.p > 0]
    twin, replaced = replace_random_draws(proto)
    if replaced < len(dropouts):
        raise ModelError(f"{tmp}: the train-mode graph has {replaced} random draws for "
                         f"{len(dropouts)} dropout layers")
    handle = tempfile.NamedTemporaryFile(dir=tmp.parent, prefix=f".{tmp.name}.", suffix=".twin.onnx",
                                         delete=False)
    twin_path = Path(handle.name)
    try:
        handle.write(twin.SerializeToString())
        handle.close()
        for m in dropouts:
            m.keep_all = True
        try:
            diffs = compare_with_torch(model, twin_path, samples)
        finally:
            for m in dropouts:
                m.keep_all = False
    finally:
        handle.close()
        twin_path.unlink(missing_ok=True)
    if dropouts:
        session = ModelSession(tmp, device="cpu")
        x = samples[min(1, len(samples) - 1)][1]
        if np.array_equal(session.run(x), session.run(x)):
            raise ModelError(f"{tmp}: the train-mode export gave the same output twice; "
                             f"its dropout does not sample")
        log(f"  dropout: {len(dropouts)} layers sample a new mask on every run")
    return diffs


def export_run(run_dir, out, *, opset: int | None = None, checkpoint: str = "best",
               exporter: str = "dynamo", data_dir=None, tolerance: float = TOLERANCE,
               verbose: bool = False, log: Callable[[str], None] = print,
               target_ort: str | None = None, ir_version: int | None = None,
               progress: Callable[..., None] | None = None,
               fit_decision: bool | None = None, inference_mode: str = "eval",
               symmetry: str | None = None) -> dict:
    """Export a run to ``out``; raise ``ModelError`` (and write nothing) if parity fails.

    ``opset`` defaults to ``DEFAULT_OPSET`` (capped at what ``target_ort`` runs);
    ``target_ort`` (e.g. ``"1.16"``) makes a file that onnxruntime release loads;
    ``ir_version`` sets the IR version explicitly (see ``set_versions``). ``progress(stage,
    done, total, **fields)`` hears of each step (``proc-ml export --json``).
    ``fit_decision``: fit a building-parts decision rule on ``data_dir``'s validation split
    (None: as the run's ``training.fit_decision`` says). ``inference_mode`` ``train`` (image
    models): the graph computes as the pix2pix reference's default test (BatchNorm on batch
    statistics, dropout on), recorded as ``proc_ml.inference_mode``; parity is checked with
    the dropout draws fixed. ``symmetry`` (building parts; None: the run's
    ``dataset.symmetry``): the turns of a building its rules do not change, recorded as
    ``proc_ml.symmetry``; prediction averages over them (docs/onnx.md)."""
    import torch

    from proc_ml.trainers import load_run

    if inference_mode not in INFERENCE_MODES:
        raise ModelError(f"inference mode must be one of {', '.join(INFERENCE_MODES)}, got '{inference_mode}'")
    limits = ort_limits(target_ort) if target_ort else None
    opset = check_opset(opset, target_ort, limits)
    model, run = load_run(run_dir, checkpoint)
    if inference_mode == "train":
        if run.info.kind != "image":
            raise ModelError(f"{run_dir}: inference mode 'train' is for image (pix2pix) models; "
                             f"this run is a {run.info.kind} model, exported in eval mode")
        from proc_ml.trainers.pix2pix import train_mode_generator

        model = train_mode_generator(model)
        run.info.inference_mode = "train"
    if symmetry is not None:
        run.info.symmetry = check_symmetry(run.info, symmetry, run_dir)
    if fit_decision and run.info.kind != "parts":
        raise ModelError(f"{run_dir}: a decision rule is fitted for building-parts models; this "
                         f"run is a {run.info.kind} model")
    data_dir = data_dir if data_dir is not None else _run_data_dir(run)
    run.info = run.task.export_info(model, run, data_dir, log=log, fit=fit_decision)
    samples = run.task.parity_inputs(run, data_dir)
    proto = export_model_proto(model, samples[0][1], run.info, opset, exporter, verbose)
    if progress:
        progress("exported", 1, 1, exporter=exporter, opset=opset)
    set_versions(proto, opset, ir_version=ir_version, target_ort=target_ort, limits=limits)
    meta = attach_metadata(proto, run, {"exporter": exporter, "opset": opset,
                                        "ir_version": int(proto.ir_version),
                                        "target_ort": target_ort,
                                        "torch": torch.__version__,
                                        "checkpoint": checkpoint, "epoch": run.epoch})
    check_model(proto, str(out))
    with atomic_path(out) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        if inference_mode == "train":
            diffs = _check_train_mode(model, proto, tmp, samples, log)
        else:
            diffs = compare_with_torch(model, tmp, samples)
        for index, (name, diff) in enumerate(diffs):
            log(f"  parity {name}: max |onnxruntime - torch| = {diff:.2e}")
            if progress:
                progress("parity", index + 1, len(diffs), input=name, max_abs_diff=diff)
        worst = max(diffs, key=lambda d: d[1])
        if not worst[1] <= tolerance:
            raise ModelError(f"{out}: onnxruntime differs from PyTorch by {worst[1]:.2e} on "
                             f"{worst[0]} (tolerance {tolerance:g}); model not written")
    return {"out": str(out), "family": meta.family, "exporter": exporter, "opset": opset,
            "ir_version": int(proto.ir_version), "target_ort": target_ort,
            "inference_mode": getattr(run.info, "inference_mode", "eval"),
            "input_shape": meta.input_shape, "max_abs_diff": worst[1],
            "parity": dict(diffs), "bytes": os.path.getsize(out),
            "data": str(data_dir) if data_dir else "generated buildings"}


def check_symmetry(info, symmetry: str, source) -> str:
    """``symmetry`` when a model with ``info`` can be averaged over it; ``ModelError`` (one
    line) otherwise."""
    from proc_ml import symmetry as symmetries

    if info.kind != "parts":
        raise ModelError(f"{source}: --symmetry is for building-parts models; this run is a "
                         f"{info.kind} model")
    try:
        return symmetries.check_symmetry(symmetry, info.input_kind, info.input_names)
    except ValueError as exc:
        raise ModelError(f"{source}: --symmetry {symmetry}: {exc}") from None


def _run_data_dir(run):
    """The dataset a run was trained on, when the run recorded it and it still exists."""
    value = getattr(run.info, "data_dir", None)
    if value and Path(value, MANIFEST).is_file():
        return value
    return None


# -- opset and IR version -------------------------------------------------------------------
def check_opset(opset: int | None, target_ort: str | None, limits) -> int:
    """The opset to export: ``opset`` or the default, checked against ``target_ort``."""
    import onnx.defs

    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        opset = min(DEFAULT_OPSET, limits[0]) if limits else DEFAULT_OPSET
    opset = int(opset)
    if not 7 <= opset <= newest:
        raise ModelError(f"--opset must be between 7 and {newest} (the newest this onnx "
                         f"{onnx.__version__} knows), got {opset}")
    if limits and opset > limits[0]:
        raise ModelError(f"--opset {opset} is newer than onnxruntime {target_ort} runs "
                         f"(opset {limits[0]}); use --opset {limits[0]} or lower")
    return opset


def _default_opset(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _subgraphs(graph):
    """``graph`` and every graph nested in its nodes' attributes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _subgraphs(sub)


def _tensor_types(proto):
    """Every element type the model's tensors, values and casts use."""
    for graph in _subgraphs(proto.graph):
        for value in (*graph.input, *graph.output, *graph.value_info):
            if value.type.HasField("tensor_type"):
                yield value.type.tensor_type.elem_type
        for tensor in graph.initializer:
            yield tensor.data_type
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t.data_type
                yield from (t.data_type for t in attr.tensors)
                if node.op_type in ("Cast", "CastLike") and attr.name == "to":
                    yield attr.i


def required_ir_version(proto) -> int:
    """The lowest IR version that can carry ``proto`` (its annotations aside): the IR its
    opsets need (``onnx.helper.find_min_ir_version_for``), 9 for float8 tensors; types and
    function overloads newer than that keep the IR version the exporter wrote."""
    import onnx.helper

    needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    types = set(_tensor_types(proto))
    if any(17 <= t <= 20 for t in types):          # FLOAT8* (IR 9)
        needed = max(needed, 9)
    overloads = any(n.overload for g in _subgraphs(proto.graph) for n in g.node) or \
        any(f.overload for f in proto.functions)
    if any(t > 20 for t in types) or overloads:    # int4 / float4 / ..., overloads: IR 10+
        needed = max(needed, int(proto.ir_version))
    return int(needed)


def _strip_ir10_annotations(proto) -> None:
    for graph in _subgraphs(proto.graph):
        del graph.metadata_props[:]
        for item in (*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer):
            del item.metadata_props[:]
    for function in proto.functions:
        del function.metadata_props[:]
        for node in function.node:
            del node.metadata_props[:]


def set_versions(proto, opset: int, *, ir_version: int | None = None,
                 target_ort: str | None = None, limits=None) -> None:
    """Make ``proto`` an ``opset`` model with the IR version asked for, in place.

    * opset: the exporters write ``opset`` themselves; if one did not (the dynamo exporter
      keeps its own opset when its conversion fails), ``onnx.version_converter`` converts.
    * IR version: ``ir_version`` when given; else, with ``target_ort``, the lowest the graph
      allows (``required_ir_version``), refused above what that release loads; else the
      exporter's. Below IR 10 the IR 10 annotations (node/graph ``metadata_props``) are
      dropped; ``onnx.checker`` then checks the result (``check_model``).
    """
    import onnx
    import onnx.version_converter

    if _default_opset(proto) != opset:
        try:
            converted = onnx.version_converter.convert_version(proto, opset)
        except Exception as exc:
            raise ModelError(f"converting the exported model from opset {_default_opset(proto)} "
                             f"to {opset} failed ({_first_line(exc)})") from None
        proto.CopyFrom(converted)
    needed = required_ir_version(proto)
    if ir_version is not None:
        target = int(ir_version)
        if target < needed:
            raise ModelError(f"--ir-version {target}: this model needs IR version {needed} or "
                             f"newer (opset {opset})")
        if target > onnx.IR_VERSION:
            raise ModelError(f"--ir-version {target}: the newest this onnx {onnx.__version__} "
                             f"writes is {onnx.IR_VERSION}")
        if limits and target > limits[1]:
            raise ModelError(f"--ir-version {target} is newer than onnxruntime {target_ort} "
                             f"loads (IR {limits[1]})")
    elif limits:
        if needed > limits[1]:
            raise ModelError(f"this model needs IR version {needed}, newer than onnxruntime "
                             f"{target_ort} loads (IR {limits[1]})")
        target = needed
    else:
        return
    if target < 10:
        _strip_ir10_annotations(proto)
    proto.ir_version = target


def _first_line(exc: Exception) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
