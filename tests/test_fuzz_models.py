"""Fuzz: ONNX model files and their proc-ml metadata (predict), checkpoints (export,
evaluate, train --resume).

Metadata is rewritten with the ``onnx`` package on a real exported model, so the graph is
valid and only the metadata is crafted; checkpoints are crafted with ``torch.save`` (plain
data) or carry pickled objects (refused by ``weights_only``). Each case asserts the shared
contract (tests/fuzzkit.py).
"""

from __future__ import annotations

import shutil

import pytest

from fuzzkit import Sandbox, assert_refused, run

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")


@pytest.fixture
def box(tmp_path):
    return Sandbox.make(tmp_path)


def _with_metadata(source, target, changes: dict):
    """A copy of the model ``source`` with metadata keys changed (None deletes a key)."""
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(f"proc_ml.{key}", None)
        else:
            props[f"proc_ml.{key}"] = value
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))
    return target


# (case id, metadata changes, words the error must contain)
PARTS_METADATA = [
    ("parts_number", {"parts": "3"}, ["proc_ml.parts", "list"]),
    ("parts_plain_text", {"parts": "wall"}, ["proc_ml.parts", "list"]),
    ("parts_empty", {"parts": "[]"}, ["part vocabulary"]),
    ("parts_twice", {"parts": '["wall", "wall", "roof"]'}, ["twice"]),
    ("parts_not_text", {"parts": "[1, 2]"}, ["proc_ml.parts[0]", "text"]),
    ("directions_number", {"directions": "6"}, ["proc_ml.directions", "list"]),
    ("directions_order", {"directions": '["-x", "+x", "+y", "-y", "+z", "-z"]'}, ["directions"]),
    ("stride_word", {"stride": "four"}, ["proc_ml.stride", "integer"]),
    ("stride_string", {"stride": '"4"'}, ["proc_ml.stride", "integer"]),
    ("stride_zero", {"stride": "0"}, ["proc_ml.stride", ">= 1"]),
    ("stride_huge", {"stride": "1000000000"}, ["proc_ml.stride", "<= 64"]),
    ("stride_float", {"stride": "4.5"}, ["proc_ml.stride", "integer"]),
    ("stride_bool", {"stride": "true"}, ["proc_ml.stride", "integer"]),
    ("cell_size_string", {"cell_size": '"3"'}, ["proc_ml.cell_size", "number"]),
    ("cell_size_zero", {"cell_size": "0"}, ["proc_ml.cell_size", "> 0"]),
    ("cell_size_negative", {"cell_size": "-3"}, ["proc_ml.cell_size", "> 0"]),
    ("cell_size_nan", {"cell_size": "NaN"}, ["proc_ml.cell_size"]),
    ("cell_size_infinite", {"cell_size": "1e999"}, ["proc_ml.cell_size", "finite"]),
    ("with_style_text", {"with_style": "yes"}, ["proc_ml.with_style", "true or false"]),
    ("grid_size_zero", {"grid_size": "[0, 16, 16]"}, ["proc_ml.grid_size[0]", ">= 1"]),
    ("dataset_count_negative", {"dataset_count": "-1"}, ["proc_ml.dataset_count", ">= 0"]),
    ("family_of_other_kind", {"family": "pointnet-cls"}, ["pointnet-cls", "not a family"]),
    ("family_unknown", {"family": "banana-net"}, ["banana-net", "not a family"]),
    ("task_unknown", {"task": "banana"}, ["task 'banana'", "not a task"]),
    ("task_other_kind", {"task": "pointnet-cls", "family": "pointnet-cls"}, ["shape models"]),
    ("kind_unknown", {"kind": "sound"}, ["kind 'sound'"]),
    ("kind_missing", {"kind": None}, ["kind"]),
    ("kind_shape", {"kind": "shape"}, ["proc_ml.classes"]),
    ("schema_string", {"schema": "two"}, ["proc_ml.schema", "integer"]),
    ("schema_newer", {"schema": "99"}, ["newer"]),
    ("schema_zero", {"schema": "0"}, ["proc_ml.schema", ">= 1"]),
    ("family_missing", {"family": None}, ["not a proc-ml model"]),
    ("input_dtype", {"input_dtype": "float64"}, ["proc_ml.input_dtype", "float32"]),
    ("input_dtype_garbage", {"input_dtype": "banana"}, ["proc_ml.input_dtype"]),
    ("input_shape_number", {"input_shape": "5"}, ["proc_ml.input_shape", "list"]),
    ("input_shape_rank", {"input_shape": '["batch", 7]'}, ["proc_ml.input_shape", "layout"]),
    ("input_names_other", {"input_names": '["a", "b"]'}, ["layout"]),
    ("input_kind_other", {"input_kind": "points"}, ["input_kind"]),
    ("output_name", {"output_name": "probabilities"}, ["tensor names"]),
    ("metrics_text", {"metrics": "good"}, ["proc_ml.metrics", "mapping"]),
    ("unknown_json", {"parts": '["wall", "roof"'}, ["proc_ml.parts", "list"]),
]


@pytest.mark.parametrize("case,changes,words", PARTS_METADATA, ids=[c[0] for c in PARTS_METADATA])
def test_parts_model_metadata(capfd, box, tiny_dataset, tiny_massing_unet_onnx, case, changes, words):
    model = _with_metadata(tiny_massing_unet_onnx, box.inp / "bad.onnx", changes)
    result = run(capfd, box, "predict", "building-parts", "--model", model, "--input",
                 tiny_dataset / "grids" / "b000000.npz", "--out", box.out)
    assert_refused(result, *words, command="predict")


def test_cell_size_blame_is_on_the_model_not_the_mesh(capfd, box, tiny_dataset,
                                                      tiny_massing_unet_onnx):
    model = _with_metadata(tiny_massing_unet_onnx, box.inp / "bad.onnx", {"cell_size": "-3"})
    line = assert_refused(run(capfd, box, "predict", "building-parts", "--model", model,
                              "--input", tiny_dataset / "meshes" / "b000000.obj", "--out", box.out),
                          "bad.onnx", command="predict")
    assert "b000000.obj" not in line


MODEL_FILES = [
    ("empty", b"", ["not a loadable onnx model"]),
    ("text", b"hello, I am not a model\n", ["not a loadable onnx model"]),
    ("garbage", bytes(range(256)) * 100, ["not a loadable onnx model"]),
]


@pytest.mark.parametrize("case,data,words", MODEL_FILES, ids=[c[0] for c in MODEL_FILES])
def test_model_files(capfd, box, tiny_dataset, case, data, words):
    model = box.inp / "m.onnx"
    model.write_bytes(data)
    result = run(capfd, box, "predict", "building-parts", "--model", model, "--input",
                 tiny_dataset / "grids" / "b000000.npz", "--out", box.out)
    assert_refused(result, *words, command="predict")


def test_truncated_model_and_model_folder(capfd, box, tiny_dataset, tiny_massing_unet_onnx):
    model = box.inp / "half.onnx"
    data = tiny_massing_unet_onnx.read_bytes()
    model.write_bytes(data[:len(data) // 2])
    for path in (model, box.inp):
        result = run(capfd, box, "predict", "building-parts", "--model", path, "--input",
                     tiny_dataset / "grids" / "b000000.npz", "--out", box.out)
        assert_refused(result, command="predict")


# -- checkpoints ----------------------------------------------------------------------------
def _run_copy(box, run_dir):
    target = box.inp / "run"
    shutil.copytree(run_dir, target)
    return target


def _crafted(run_dir, change):
    """best.pt of ``run_dir`` loaded as plain data, changed, saved back."""
    path = run_dir / "checkpoints" / "best.pt"
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload = change(payload)
    torch.save(payload, path)
    return path


class Evil:
    """Pickled into a checkpoint: weights_only must refuse to run it."""

    def __reduce__(self):
        return (print, ("a pickle ran",))


CHECKPOINTS = [
    ("config_string", lambda p: {**p, "config": "epochs: 3"}, ["checkpoint field 'config'", "mapping"]),
    ("info_missing", lambda p: {k: v for k, v in p.items() if k != "info"}, ["'info'", "missing"]),
    ("info_list", lambda p: {**p, "info": [1, 2]}, ["'info'", "mapping"]),
    ("info_bad_field", lambda p: {**p, "info": {**p["info"], "stride": "four"}}, ["stride", "integer"]),
    ("info_unknown_field", lambda p: {**p, "info": {**p["info"], "colour": 1}}, ["colour"]),
    ("epoch_text", lambda p: {**p, "epoch": "3"}, ["'epoch'", "integer"]),
    ("epoch_negative", lambda p: {**p, "epoch": -1}, ["'epoch'", ">= 0"]),
    ("family_number", lambda p: {**p, "family": 3}, ["'family'", "text"]),
    ("format_missing", lambda p: {k: v for k, v in p.items() if k != "format"}, ["not a proc-ml checkpoint"]),
    ("format_version", lambda p: {**p, "format_version": 99}, ["format_version"]),
    ("models_missing", lambda p: {**p, "models": {}}, ["cannot rebuild"]),
    ("model_kwargs_wrong", lambda p: {**p, "model_kwargs": {**p["model_kwargs"], "width": "wide"}},
     ["cannot rebuild"]),
    ("config_bad_value", lambda p: {**p, "config": {**p["config"], "training": {
        **p["config"]["training"], "epochs": 0}}}, ["training.epochs", ">= 1"]),
    ("config_task_unknown", lambda p: {**p, "config": {**p["config"], "task": "banana"}}, ["'task'"]),
    ("history_text", lambda p: {**p, "history": "none"}, ["'history'", "list"]),
    ("pickled_object", lambda p: {**p, "extra": Evil()}, ["pickled python object"]),
]


@pytest.mark.parametrize("case,change,words", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_checkpoints_through_export(capfd, box, tiny_unet_run, case, change, words):
    run_dir = _run_copy(box, tiny_unet_run)
    _crafted(run_dir, change)
    result = run(capfd, box, "export", "onnx", run_dir, "--out", box.out / "m.onnx")
    line = assert_refused(result, *words, command="export")
    assert "weights_only" not in line and "a pickle ran" not in capfd.readouterr().out


def test_checkpoint_garbage_through_evaluate_and_resume(capfd, box, tiny_unet_run, tiny_dataset):
    run_dir = _run_copy(box, tiny_unet_run)
    (run_dir / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint at all")
    result = run(capfd, box, "evaluate", run_dir, "--data", tiny_dataset, "--out", box.out / "e.json")
    assert_refused(result, "best.pt", "not a readable checkpoint", command="evaluate")
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"\x80\x02garbage")
    result = run(capfd, box, "train", "building-parts", "--data", tiny_dataset, "--out", run_dir,
                 "--resume", "--quiet")
    assert_refused(result, "last.pt", command="train")


def test_resume_with_a_string_config(capfd, box, tiny_unet_run, tiny_dataset):
    run_dir = _run_copy(box, tiny_unet_run)
    path = run_dir / "checkpoints" / "last.pt"
    payload = torch.load(path, map_location="cpu", weights_only=True)
    torch.save({**payload, "config": "a string"}, path)
    result = run(capfd, box, "train", "building-parts", "--data", tiny_dataset, "--out", run_dir,
                 "--resume", "--quiet")
    assert_refused(result, "last.pt", "'config'", "mapping", command="train")
