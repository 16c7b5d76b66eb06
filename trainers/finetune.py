"""Fine-tuning: start a building-parts network from a trained model (``training.init``,
``proc-ml train building-parts --init MODEL``).

``MODEL`` is a run folder (its ``checkpoints/best.pt``), a ``.pt`` checkpoint, an exported
``.onnx`` model, or ``default`` (the model installed with proc-ml,
``proc_ml.runtime.default_model``). What carries over:

* the network: family, width and depth are the source's, whatever the config says (the
  run's config records what was used); so are the input channels (``dataset.inputs``),
  unless the config names an input set that holds all of the source's channels and more
  (``street_rhythm`` for a ``street`` model): the added channels start with zero weights, so
  the network starts as the same function and learns what the new inputs say
  (``input_mapping``);
* the weights. An exported model's BatchNorm layers are folded into its convolutions; they
  are restored with statistics mean 0 and variance 1, each folded filter divided by its
  norm and that norm as the BatchNorm scale, the folded bias as its shift: the same function
  in eval mode, with the weights back on the scale the optimiser's steps suit (folded
  filters are scaled by 1/std of their layer). ``training.freeze_norm`` keeps the
  statistics frozen while training (off by default: with a handful of separable buildings
  a network without live normalisation grows its logits without bound);
* the vocabulary, by part name (``vocabulary_mapping``): a part both have keeps its output
  channels; a part only the dataset has gets new channels copied from the source part the
  pretrained network predicts most often on its faces in the training split (its *parent*;
  ``wall`` when it labels none), with ``NEW_PART_BIAS`` added to their bias so the parent
  keeps winning until training says otherwise; a part only the source has is dropped. A
  part both have but that the source never learnt (its training data had none: the installed
  model's ``balcony`` and ``shopfront``) is *silent*: the source gives it at most
  ``SILENT_PROBABILITY`` on every face of the training split although the dataset labels
  some. Its channels were trained only to say "never", so they are *restarted* like a new
  part's, from its parent.

The mapping is printed and written to ``RUN/init.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from proc_ml.errors import ConfigError, ModelError
from proc_ml.runinfo import PartsInfo, info_from_dict

from . import checkpoint as checkpoints
from .checkpoint import CHECKPOINT_DIR

#: Added to a new part's copied bias: e^-1.4 ~ 1/4 of its parent's odds at the start.
NEW_PART_BIAS = -1.4
#: Parent of a new part no training face tells anything about.
FALLBACK_PARENT = "wall"
#: A part the source gives at most this probability on every face of the training split
#: (while the dataset labels some faces with it) is silent: restarted from its parent.
SILENT_PROBABILITY = 0.05
#: The training buildings the source network is run on to find parents and silent parts.
SURVEY_BUILDINGS = 256
#: The record of a fine-tuned run's start, in its run folder.
INIT_FILE = "init.json"
#: Names ``training.init`` accepts for the installed model.
DEFAULT_NAMES = ("default", "installed")


@dataclass
class InitSource:
    """A trained building-parts network to start from."""
    given: str                      # training.init as written
    path: Path                      # the file the weights came from
    kind: str                       # run | checkpoint | onnx
    info: PartsInfo
    hyper: dict                     # model keys besides family (width, depth / hidden ...)
    state: dict = field(repr=False, default_factory=dict)   # name -> tensor
    folded_norm: bool = False       # BatchNorm folded into the convolutions (ONNX)

    @property
    def parts(self) -> list[str]:
        return list(self.info.parts)


def load_init(given: str) -> InitSource:
    """The network ``given`` names (a run folder, ``.pt``, ``.onnx`` or ``default``)."""
    text = str(given).strip()
    if text in DEFAULT_NAMES:
        from proc_ml.runtime import default_model

        return _from_onnx(text, default_model("building-parts"))
    path = Path(text)
    if path.is_dir():
        best = path / CHECKPOINT_DIR / "best.pt"
        if not best.is_file():
            raise ModelError(f"--init {path}: a run folder needs {CHECKPOINT_DIR}/best.pt "
                             f"(train it first, or pass a .pt / .onnx file)")
        return _from_checkpoint(text, best, "run")
    if not path.is_file():
        raise ModelError(f"--init {path}: not found (a run folder, a .pt checkpoint, an .onnx "
                         f"model, or 'default' for the installed model)")
    if path.suffix.lower() == ".onnx":
        return _from_onnx(text, path)
    if path.suffix.lower() == ".pt":
        return _from_checkpoint(text, path, "checkpoint")
    raise ModelError(f"--init {path}: expected a run folder, a .pt checkpoint or an .onnx model")


def _from_checkpoint(given: str, path: Path, kind: str) -> InitSource:
    saved = checkpoints.load(path)
    info = info_from_dict(saved.get("info"), str(path))
    if not isinstance(info, PartsInfo):
        raise ModelError(f"--init {path}: a {info.task} run, not a building-parts model")
    try:
        state = dict(saved["models"]["model"])
        hyper = {k: v for k, v in saved["model_kwargs"].items()
                 if k not in ("in_channels", "in_features", "n_parts")}
    except (KeyError, TypeError) as exc:
        raise ModelError(f"--init {path}: checkpoint lacks the model ({exc})") from None
    return InitSource(given, path, kind, info, hyper, state)


def _from_onnx(given: str, path: Path) -> InitSource:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:                                  # pragma: no cover - a [train] extra
        raise ModelError("--init with an .onnx model needs the onnx package "
                         "(pip install 'proc-ml[train]')") from None
    from proc_ml.runtime.metadata import ModelMetadata

    try:
        proto = onnx.load(str(path))
    except Exception as exc:                             # onnx raises its own types
        raise ModelError(f"--init {path}: not a readable ONNX model ({exc})") from None
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props}, str(path))
    info = meta.info
    if not isinstance(info, PartsInfo) or info.family != "parts-unet3d":
        raise ModelError(f"--init {path}: a {meta.family} model; fine-tuning from an .onnx "
                         f"file needs a parts-unet3d building-parts model (or pass its run)")
    state = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
             for t in proto.graph.initializer}
    first = state.get("encoders.0.0.weight")
    depth = sum(1 for name in state if name.startswith("encoders.") and name.endswith(".0.weight")) - 1
    if first is None or depth < 0:
        raise ModelError(f"--init {path}: its weights are not named like a parts-unet3d "
                         f"network (no 'encoders.0.0.weight')")
    return InitSource(given, path, "onnx", info, {"width": int(first.shape[0]), "depth": depth},
                      state, folded_norm=True)


#: ``--set`` keys a fine-tuned run takes from its source model (``prepare_config``): the
#: network (``model``, ``model.*``) and its style input (``dataset.inputs`` may add channels
#: to the source's: ``check_init_inputs``).
SOURCE_KEYS = ("model", "dataset.use_style")


def override_key(item) -> str:
    """The key of a ``--set KEY=VALUE`` item."""
    return str(item).split("=", 1)[0].strip()


def check_init_overrides(overrides, init_given: str | None = None) -> None:
    """Refuse ``--set`` keys that fine-tuning replaces with the source model's (they would
    be silently ignored: the run trains the source's network on the source's inputs), and a
    ``dataset.inputs`` that drops any of the source's channels (``check_init_inputs``)."""
    for item in overrides:
        key = override_key(item)
        if key == "dataset.inputs" and init_given is not None:
            check_init_inputs(init_given, str(item).split("=", 1)[1].strip().strip("'\""))
            continue
        if key in SOURCE_KEYS or key.startswith("model."):
            raise ConfigError(f"--set {key}: fine-tuning (--init) takes the network (model.*) "
                              f"and its style input (dataset.use_style) from the source model; "
                              f"drop this override, or train without --init")


# -- inputs -----------------------------------------------------------------------------
def input_mapping(source: list[str], target: list[str]) -> list[str] | None:
    """The channels ``target`` adds to ``source`` when it holds every one of them (``[]``
    when they are the same set); None when some source channel is missing from it."""
    if any(name not in target for name in source):
        return None
    return [name for name in target if name not in source]


def fine_tuned_inputs(source: list[str], given: str | None) -> str:
    """The ``dataset.inputs`` of a run fine-tuned from a model reading ``source``: ``given``
    when it is an input set holding all the source's channels (and maybe more), else the
    source's own set."""
    from proc_ml.encoding import GRID_INPUT_SETS

    if given in GRID_INPUT_SETS and input_mapping(source, list(GRID_INPUT_SETS[given])) is not None:
        return given
    return input_set_of(source)


def check_init_inputs(init_given: str, given: str) -> None:
    """``--set dataset.inputs=GIVEN`` with ``--init``: refused unless ``GIVEN`` holds every
    input channel of the source model (a fine-tuned network keeps its inputs and may only
    add channels)."""
    from proc_ml.encoding import GRID_INPUT_SETS

    if given not in GRID_INPUT_SETS:
        raise ConfigError(f"--set dataset.inputs={given}: not an input set (one of "
                          f"{', '.join(GRID_INPUT_SETS)})")
    init = load_init(init_given)
    if init.info.input_kind != "grid":
        raise ConfigError(f"--set dataset.inputs: the source model {init.path} takes per-cell "
                          f"features; fine-tuning keeps them (drop this override)")
    source = list(init.info.input_names)
    if input_mapping(source, list(GRID_INPUT_SETS[given])) is None:
        missing = [n for n in source if n not in GRID_INPUT_SETS[given]]
        raise ConfigError(f"--set dataset.inputs={given}: fine-tuning (--init) keeps the source "
                          f"model's inputs ({input_set_of(source)}) and may only add channels; "
                          f"'{given}' lacks {', '.join(missing[:3])}"
                          f"{', ...' if len(missing) > 3 else ''}")


# -- vocabulary -------------------------------------------------------------------------
def vocabulary_mapping(source: list[str], target: list[str], parents: dict | None = None,
                       silent=()) -> dict:
    """``{"kept": [...], "added": {new: parent}, "restarted": {silent: parent}, "dropped":
    [...]}``: target parts found in ``source`` keep their channels; the others copy their
    ``parents`` entry (else ``FALLBACK_PARENT``, else the source's first part); a ``silent``
    part with a parent other than itself copies that parent's channels instead of its own."""
    parents = parents or {}
    fallback = FALLBACK_PARENT if FALLBACK_PARENT in source else source[0]
    added = {}
    for part in target:
        if part not in source:
            parent = parents.get(part)
            added[part] = parent if parent in source else fallback
    restarted = {p: parents[p] for p in target
                 if p in source and p in silent and parents.get(p) in source and parents[p] != p}
    return {"kept": [p for p in target if p in source and p not in restarted], "added": added,
            "restarted": restarted, "dropped": [p for p in source if p not in target]}


def survey(counts: np.ndarray, top: np.ndarray, source: list[str], target: list[str]):
    """``(parents, silent)`` from a run of the source network over the training split:
    ``counts[target, source]`` (``parent_counts``) and ``top[source]``, the highest
    probability it gave each source part on any face. A target part's parent is the source
    part predicted most on its faces; a part of both vocabularies is silent when the dataset
    labels faces with it and the source never gives it more than ``SILENT_PROBABILITY``."""
    parents = {part: source[int(np.argmax(counts[j]))] for j, part in enumerate(target)
               if counts[j].sum() > 0}
    silent = {part for j, part in enumerate(target)
              if part in source and counts[j].sum() > 0
              and top[source.index(part)] <= SILENT_PROBABILITY}
    return parents, silent


def mapping_lines(init: InitSource, mapping: dict) -> list[str]:
    """The mapping as the train command prints it."""
    lines = [f"init: {init.kind} {init.path} ({init.info.family}, "
             + ", ".join(f"{k} {v}" for k, v in init.hyper.items())
             + f", inputs {', '.join(init.info.input_names)})"]
    if mapping.get("inputs_added"):
        added = mapping["inputs_added"]
        lines.append(f"init: inputs added ({len(added)}, zero weights at the start): "
                     f"{', '.join(added)}")
    lines.append(f"init: parts kept ({len(mapping['kept'])}): {', '.join(mapping['kept']) or '-'}")
    if mapping["added"]:
        lines.append("init: parts added: " + ", ".join(f"{p} (from {parent})"
                                                       for p, parent in mapping["added"].items()))
    if mapping.get("restarted"):
        lines.append(f"init: parts the source never predicts (at most {SILENT_PROBABILITY:g} on "
                     f"every training face), restarted: "
                     + ", ".join(f"{p} (from {parent})" for p, parent in mapping["restarted"].items()))
    if mapping["dropped"]:
        lines.append(f"init: parts dropped: {', '.join(mapping['dropped'])}")
    folded = {p.lower(): p for p in init.parts}
    near = [(p, folded[p.lower()]) for p in mapping["added"] if p.lower() in folded]
    if near:
        lines.append("init: note: parts are matched by exact name: "
                     + ", ".join(f"'{p}' is new, not the source's '{q}'" for p, q in near)
                     + " (rename the part in the dataset to reuse the source's)")
    return lines


# -- weights ----------------------------------------------------------------------------
def source_state(model: nn.Module, init: InitSource) -> dict:
    """``init``'s weights as a state dict for a network shaped like ``model`` except for
    its output layer (ONNX: BatchNorm unfolded as described in the module doc)."""
    if not init.folded_norm:
        return dict(init.state)
    state = {}
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            _copy(state, init, f"{name}.weight")
            if module.bias is not None:
                _copy(state, init, f"{name}.bias")
            folded = init.state.get(f"{name}.weight_bias")
            norm = _following_norm(modules, name)
            if norm is not None:
                if folded is None:
                    raise ModelError(f"--init {init.path}: no folded bias for {name} "
                                     f"(not a proc-ml export of this network)")
                prefix = name.rsplit(".", 1)[0] + "." + str(int(name.rsplit(".", 1)[1]) + 1)
                # each filter back to unit norm, its norm as the BatchNorm scale: the same
                # function, with weights on the scale the optimiser's steps are meant for
                weight = state[f"{name}.weight"]
                scale = weight.reshape(weight.shape[0], -1).norm(dim=1).clamp(min=1e-8)
                state[f"{name}.weight"] = weight / scale.reshape(-1, *[1] * (weight.ndim - 1))
                state[f"{prefix}.weight"] = scale
                state[f"{prefix}.bias"] = folded.clone()
                state[f"{prefix}.running_mean"] = torch.zeros_like(folded)
                state[f"{prefix}.running_var"] = torch.full_like(folded, 1.0 - norm.eps)
                state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    return state


def _copy(state: dict, init: InitSource, key: str) -> None:
    if key not in init.state:
        raise ModelError(f"--init {init.path}: weight '{key}' not found in the model")
    state[key] = init.state[key]


def _following_norm(modules: dict, name: str):
    """The BatchNorm right after convolution ``name`` in its Sequential, if any."""
    parent, _, index = name.rpartition(".")
    if not index.isdigit():
        return None
    after = modules.get(f"{parent}.{int(index) + 1}" if parent else str(int(index) + 1))
    return after if isinstance(after, nn.modules.batchnorm._BatchNorm) else None


def output_keys(model: nn.Module, n_parts: int) -> list[str]:
    """The state-dict keys of the output layer (the last one with ``6 * n_parts`` outputs)."""
    state = model.state_dict()
    keys = [k for k, v in state.items() if v.ndim >= 1 and v.shape[0] == 6 * n_parts]
    if len(keys) < 1:
        raise ModelError(f"no output layer with 6 x {n_parts} channels in {type(model).__name__}")
    layer = keys[-1].rsplit(".", 1)[0]
    return [k for k in keys if k.rsplit(".", 1)[0] == layer]


def load_into(model: nn.Module, init: InitSource, target: list[str], mapping: dict,
              inputs=None) -> None:
    """Copy ``init``'s weights into ``model`` (built for the ``target`` vocabulary and the
    input channels ``inputs``, by default the source's), the output channels by
    ``mapping``; input channels the source lacks get zero weights in the first layer."""
    source = init.parts
    state = source_state(model, init)
    own = model.state_dict()
    if inputs is not None and list(inputs) != list(init.info.input_names):
        _map_inputs(state, own, init, list(inputs))
    head = output_keys(model, len(target))
    copied = {**mapping["added"], **mapping.get("restarted", {})}     # part -> parent
    index = [source.index(copied.get(p, p)) for p in target]
    for key in head:
        weights = state.get(key)
        if weights is None or weights.shape[0] != 6 * len(source):
            raise ModelError(f"--init {init.path}: output layer '{key}' does not have 6 x "
                             f"{len(source)} channels")
        per_direction = weights.reshape(6, len(source), *weights.shape[1:])
        mapped = per_direction[:, index].clone()
        if key.endswith("bias"):
            for j, part in enumerate(target):
                if part in copied:
                    mapped[:, j] += NEW_PART_BIAS
        state[key] = mapped.reshape(6 * len(target), *weights.shape[1:])
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = (f"missing {', '.join(missing[:3])}" if missing else
                f"'{wrong[0]}' is {tuple(state[wrong[0]].shape)}, the network needs "
                f"{tuple(own[wrong[0]].shape)}")
        raise ModelError(f"--init {init.path}: its weights do not fit this network ({what})")
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own})


def _map_inputs(state: dict, own: dict, init: InitSource, inputs: list[str]) -> None:
    """The first layer's weights (the one reading the source's input channels) laid out for
    ``inputs``: the source's channels where they are now, zeros for the added ones."""
    names = list(init.info.input_names)
    added = input_mapping(names, inputs)
    if added is None:
        raise ModelError(f"--init {init.path}: the run's inputs lack the source's "
                         f"{', '.join(n for n in names if n not in inputs)}")
    first = [k for k, v in state.items() if k in own and v.ndim == 5
             and v.shape[1] == len(names) and own[k].shape[1] == len(inputs)
             and v.shape[0] == own[k].shape[0]]
    if len(first) != 1:
        raise ModelError(f"--init {init.path}: cannot tell which layer reads the "
                         f"{len(names)} input channels")
    weight = state[first[0]]
    mapped = weight.new_zeros((weight.shape[0], len(inputs)) + tuple(weight.shape[2:]))
    for j, name in enumerate(names):
        mapped[:, inputs.index(name)] = weight[:, j]
    state[first[0]] = mapped


def freeze_norm(model: nn.Module) -> None:
    """BatchNorm layers in eval mode (statistics frozen; scale and shift still train)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def init_record(init: InitSource, mapping: dict, config: dict) -> dict:
    """What ``RUN/init.json`` holds: where the run started from (the file's SHA-256, taken
    when its weights are loaded) and how its vocabulary was mapped."""
    from proc_ml.fileio import file_sha256

    return {"init": init.given, "path": str(Path(init.path).resolve()),
            "sha256": file_sha256(init.path),
            "kind": init.kind,
            "family": init.info.family, "model": init.hyper,
            "inputs": list(init.info.input_names), "source_parts": init.parts,
            "mapping": mapping, "freeze_norm": bool(config["training"]["freeze_norm"]),
            "fix_weight": float(config["training"]["fix_weight"])}


def write_record(run_dir, record: dict) -> None:
    """``RUN/init.json`` (``init_record``), written atomically."""
    if run_dir is None:
        return
    from proc_ml.fileio import write_text

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_text(Path(run_dir) / INIT_FILE, json.dumps(record, indent=2) + "\n")


def input_set_of(names: list[str]) -> str:
    """The ``dataset.inputs`` name whose channels are ``names``."""
    from proc_ml.encoding import GRID_INPUT_SETS

    for key, value in GRID_INPUT_SETS.items():
        if list(value) == list(names):
            return key
    raise ConfigError(f"--init: the model's inputs ({', '.join(names)}) are not an input set "
                      f"this proc-ml trains ({', '.join(GRID_INPUT_SETS)})")


def parent_counts(predictions: np.ndarray, truth: np.ndarray, n_source: int,
                  n_target: int) -> np.ndarray:
    """``int64[n_target, n_source]``: how often each source part was predicted on faces of
    each target part."""
    counts = np.zeros((n_target, n_source), dtype=np.int64)
    np.add.at(counts, (truth, predictions), 1)
    return counts
