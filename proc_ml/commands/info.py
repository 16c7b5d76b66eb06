"""``proc-ml info MODEL.onnx``: what an exported model is, how to feed it, how it was made.

Reads the file's header and proc-ml metadata without loading it into onnxruntime
(``proc_ml.runtime.modelfile``), so it works where the installed onnxruntime is too old
for the file, and says which onnxruntime releases load it.
"""

from __future__ import annotations

import json
from pathlib import Path

# Fields shown in their own lines (the rest of the run info is listed as it is).
_SHOWN = {"task", "family", "input_kind", "input_names", "dataset_count", "dataset_seed",
          "dataset_format_version"}


def register(sub) -> None:
    p = sub.add_parser(
        "info", help="describe an exported ONNX model",
        description="Print what an exported model is (kind, task, family), its input and "
                    "output with their meanings and the input rule (shape, stride, padding), "
                    "its labels / classes / palette, training figures, the exporter, and the "
                    "file's ONNX IR version and opset with the onnxruntime releases that load it.")
    p.add_argument("model", metavar="MODEL", help="ONNX model from 'proc-ml export onnx'")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=run)


def describe(path) -> dict:
    """Everything ``proc-ml info`` shows, as plain data."""
    from proc_ml.runtime.metadata import ModelMetadata
    from proc_ml.runtime.modelfile import oldest_ort, read_header
    from proc_ml.runtime.session import model_file_key

    model_file_key(path)            # the one "not found" / "a folder" / "a checkpoint" check
    header = read_header(path)
    meta = ModelMetadata.from_props(header.props, str(path))
    info = meta.info
    return {
        "path": str(path), "bytes": Path(path).stat().st_size,
        "kind": meta.kind, "task": meta.task, "family": meta.family,
        "onnx": {"ir_version": header.ir_version, "opset": header.opset,
                 "opsets": header.opsets, "producer": header.producer_name,
                 "producer_version": header.producer_version,
                 "oldest_onnxruntime": oldest_ort(header.opset, header.ir_version)},
        "input": {"name": meta.input_name, "dtype": meta.input_dtype, "shape": meta.input_shape,
                  "kind": meta.input_kind, "names": list(meta.input_names),
                  "meanings": meta.input_meanings or info.input_meanings(),
                  "rule": meta.input_rule or info.input_rule()},
        "output": {"name": meta.output_name, "shape": meta.output_shape},
        "info": {k: v for k, v in info.exported().items() if k not in _SHOWN},
        "training": {"dataset_count": info.dataset_count, "dataset_seed": info.dataset_seed,
                     "dataset_format_version": info.dataset_format_version,
                     "metrics": meta.metrics},
        "exporter": meta.exporter, "proc_ml_version": meta.proc_ml_version,
        "schema": meta.schema,
    }


def run(args) -> int:
    facts = describe(args.model)
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=False))
        return 0
    print("\n".join(format_facts(facts)))
    return 0


def format_facts(facts: dict) -> list[str]:
    onnx_, inp, out = facts["onnx"], facts["input"], facts["output"]
    loads = (f"loads in onnxruntime {onnx_['oldest_onnxruntime']} and later"
             if onnx_["oldest_onnxruntime"] else "needs an onnxruntime newer than 1.18")
    lines = [f"{facts['path']}: {facts['family']} ({facts['kind']} model for "
             f"{facts['task']}), {facts['bytes'] / 1024:.0f} KiB",
             f"  file        ONNX IR {onnx_['ir_version']}, opset {onnx_['opset']}; {loads}; "
             f"made by {onnx_['producer'] or '?'} {onnx_['producer_version']}".rstrip()]
    exporter = facts["exporter"] or {}
    if exporter:
        parts = [str(exporter.get("exporter", "?")) + " exporter"]
        parts += [f"{k} {exporter[k]}" for k in ("torch", "checkpoint", "epoch", "target_ort")
                  if exporter.get(k) is not None]
        lines.append(f"  exporter    {', '.join(parts)}; proc-ml {facts['proc_ml_version'] or '?'}")
    lines.append(f"  input       {inp['name']}: {inp['dtype']} {_shape(inp['shape'])} "
                 f"({inp['kind']})")
    rule = inp["rule"] or {}
    if rule.get("text"):
        lines.append(f"              {rule['text']}")
    width = max((len(n) for n in inp["names"]), default=0)
    for index, name in enumerate(inp["names"]):
        lines.append(f"              {index:>2} {name:<{width}}  {inp['meanings'].get(name, '')}")
    lines.append(f"  output      {out['name']}: {_shape(out['shape'])}")
    for key, value in facts["info"].items():
        if value is None or value == [] or value == {}:
            continue
        label = _LABELS.get(key, key.replace("_", " "))
        lines.append(f"  {label:<11} {_value(key, value)}")
    training = facts["training"]
    if training["dataset_count"] is not None:
        extra = ", ".join(f"{label} {training[key]}" for key, label in
                          (("dataset_seed", "seed"), ("dataset_format_version", "format version"))
                          if training[key] is not None)
        lines.append(f"  dataset     {training['dataset_count']} examples"
                     + (f" ({extra})" if extra else ""))
    scalars = {k: v for k, v in (training["metrics"] or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if scalars:
        lines.append("  metrics     " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()))
    return lines


# Run-info fields whose name alone would read wrongly beside the tensor lines.
_LABELS = {"output": "predicts"}
_OUTPUTS = {"shape": "one class per shape", "points": "one class per point"}


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _value(key: str, value) -> str:
    if key == "output" and value in _OUTPUTS:
        return f"{_OUTPUTS[value]} ({value})"
    if key == "palette" and isinstance(value, list):
        return ", ".join(f"{e.get('name')} {tuple(e.get('colour', ()))}" for e in value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return f"{', '.join(value)} ({len(value)})"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
