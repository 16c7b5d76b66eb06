"""proc_ml.runtime: torch-free sessions, metadata, input checks, caching, batching."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from proc_ml.datasets import open_dataset
from proc_ml.encoding import grid_channel_names
from proc_ml.errors import ModelError
from proc_ml.grid import exterior_faces
from proc_ml.runinfo import PartsInfo
from proc_ml.runtime import (ModelMetadata, PartsPredictor, clear_cache, cuda_status, load_model,
                             resolve_providers, run_cell_sets)

ORT_ERROR_MARKERS = ("[E:onnxruntime", "Failed to load library", "[W:onnxruntime",
                     "libonnxruntime_providers_cuda")


def _metadata(**changes) -> ModelMetadata:
    info = PartsInfo(task="building-parts", family="parts-unet3d", input_kind="grid",
                     input_names=list(grid_channel_names(False)),
                     parts=["wall", "window", "roof", "ground"], stride=4, cell_size=3.0)
    meta = ModelMetadata.for_info(info, metrics={"face_accuracy": 0.5})
    for key, value in changes.items():
        setattr(meta, key, value)
    return meta


def test_metadata_roundtrips_through_props():
    meta = _metadata()
    props = meta.to_props()
    assert all(k.startswith("proc_ml.") for k in props)
    assert ModelMetadata.from_props(props) == meta


def test_decision_weights_must_give_one_weight_per_part():
    props = _metadata().to_props()
    props["proc_ml.decision_weights"] = json.dumps([1.0, 2.0])
    with pytest.raises(ModelError, match=r"^m\.onnx: decision_weights has 2 values, one per part is 4$"):
        ModelMetadata.from_props(props, "m.onnx")
    props["proc_ml.decision_weights"] = json.dumps([1.0, 2.0, 1.5, 1.0])
    assert ModelMetadata.from_props(props, "m.onnx").info.decision_weights == [1.0, 2.0, 1.5, 1.0]


def test_metadata_without_proc_ml_keys_is_refused():
    with pytest.raises(ModelError, match="not a proc-ml model"):
        ModelMetadata.from_props({"author": "someone"}, "x.onnx")
    props = _metadata().to_props()
    del props["proc_ml.parts"]
    with pytest.raises(ModelError, match="'proc_ml.parts' is missing"):
        ModelMetadata.from_props(props, "x.onnx")


@pytest.mark.parametrize("array, message", [
    (np.zeros((1, 7, 8, 8, 8), np.float64), "dtype: expected float32"),
    (np.zeros((7, 8, 8, 8), np.float32), "rank: expected 5"),
    (np.zeros((1, 5, 8, 8, 8), np.float32), "channels: expected 7 .* got 5"),
    (np.zeros((1, 7, 8, 6, 8), np.float32), r"grid size \[8, 6, 8\] must be a multiple of the stride 4"),
])
def test_input_check_says_expected_and_got(array, message):
    with pytest.raises(ModelError, match=message):
        _metadata().check_input(array, "m.onnx")


def test_onnx_file_without_metadata_fails_clearly(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("grid", TensorProto.FLOAT, ["b", 7, "x", "y", "z"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 7, "x", "y", "z"])
    graph = helper.make_graph([helper.make_node("Identity", ["grid"], ["logits"])], "g", [x], [y])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    with pytest.raises(ModelError, match="plain.onnx: not a proc-ml model"):
        load_model(path, device="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.onnx: not a loadable ONNX model"):
        load_model(tmp_path / "junk.onnx", device="cpu")
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "missing.onnx")


def test_wrong_input_to_a_real_model_is_refused(tiny_unet_onnx):
    model = load_model(tiny_unet_onnx, device="cpu")
    with pytest.raises(ModelError, match="channels: expected 16"):
        model.run(np.zeros((1, 7, 12, 12, 12), np.float32))
    with pytest.raises(ModelError, match="multiple of the stride 4"):
        model.run(np.zeros((1, 16, 12, 10, 12), np.float32))


def test_session_cache_hits_and_reloads_after_the_file_changes(tiny_mlp_onnx, tmp_path):
    clear_cache()
    path = tmp_path / "m.onnx"
    shutil.copy(tiny_mlp_onnx, path)
    first = load_model(path, device="cpu")
    assert load_model(path, device="cpu") is first
    assert load_model(path, device="cpu", intra_op_threads=1) is not first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    reloaded = load_model(path, device="cpu")
    assert reloaded is not first
    assert load_model(path, device="cpu") is reloaded


def _check_labels(occupancy, labels, probs, n_parts):
    faces = exterior_faces(occupancy)
    assert labels.dtype == np.int8 and labels.shape == occupancy.shape + (6,)
    assert np.array_equal(labels >= 0, faces)
    assert labels.max() < n_parts
    assert probs.shape == occupancy.shape + (6, n_parts)
    np.testing.assert_allclose(probs.sum(-1)[faces], 1.0, atol=1e-5)
    assert np.array_equal(probs[faces].argmax(-1), labels[faces])


@pytest.mark.parametrize("model_fixture", ["tiny_unet_onnx", "tiny_mlp_onnx"])
def test_parts_predictor_labels_exactly_the_exterior_faces(model_fixture, tiny_dataset, request):
    predictor = PartsPredictor(request.getfixturevalue(model_fixture), device="cpu")
    data = open_dataset(tiny_dataset)
    record = data.building(data.ids("test")[0])
    labels, probs = predictor.predict(record.occupancy, record.style)
    _check_labels(record.occupancy, labels, probs, len(data.parts))
    assert predictor.parts == data.parts


@pytest.mark.parametrize("model_fixture", ["tiny_unet_onnx", "tiny_mlp_onnx"])
def test_predict_many_batches_give_the_single_results(model_fixture, tiny_dataset, request):
    predictor = PartsPredictor(request.getfixturevalue(model_fixture), device="cpu")
    data = open_dataset(tiny_dataset)
    records = [data.building(i) for i in range(5)]
    occs = [r.occupancy for r in records] + [np.pad(records[0].occupancy, ((0, 3), (0, 1), (0, 5)))]
    styles = [r.style for r in records] + [records[0].style]
    batched = predictor.predict_many(occs, styles, batch_size=2)
    for occ, style, (labels, probs) in zip(occs, styles, batched):
        single_labels, single_probs = predictor.predict(occ, style)
        assert np.array_equal(labels, single_labels)
        np.testing.assert_allclose(probs, single_probs, atol=1e-5)


def test_run_cell_sets_splits_back_per_building(tiny_mlp_onnx):
    model = load_model(tiny_mlp_onnx, device="cpu")
    rng = np.random.default_rng(0)
    sets = [rng.random((n, model.metadata.n_inputs), dtype=np.float32) for n in (3, 0, 10, 1)]
    out = run_cell_sets(model, sets, chunk_size=4)
    assert [len(o) for o in out] == [3, 0, 10, 1]
    for feats, logits in zip(sets, out):
        if len(feats):
            np.testing.assert_allclose(logits, model.run(feats), atol=1e-6)


def test_style_rule(tiny_unet_onnx, tiny_massing_unet_onnx, tiny_dataset):
    record = open_dataset(tiny_dataset).building(0)
    with pytest.raises(ModelError, match="trained with style features"):
        PartsPredictor(tiny_unet_onnx, device="cpu").predict(record.occupancy)
    massing = PartsPredictor(tiny_massing_unet_onnx, device="cpu")
    assert not massing.with_style
    with_style = massing.predict(record.occupancy, record.style)[0]
    assert np.array_equal(with_style, massing.predict(record.occupancy)[0])


def test_empty_and_malformed_occupancy_are_refused(tiny_mlp_onnx):
    predictor = PartsPredictor(tiny_mlp_onnx, device="cpu")
    with pytest.raises(ModelError, match="empty"):
        predictor.predict(np.zeros((4, 4, 4), np.uint8), np.zeros(9))
    with pytest.raises(ModelError, match="3-D grid"):
        predictor.predict(np.ones((4, 4), np.uint8), np.zeros(9))


def test_device_choice():
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="device must be one of"):
        resolve_providers("gpu")
    usable, reason = cuda_status()
    if usable:
        assert resolve_providers("auto")[0] == "CUDAExecutionProvider"
    else:
        assert resolve_providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(ModelError, match="CUDA is not usable"):
            resolve_providers("cuda")


def test_runtime_works_with_torch_unimportable_and_prints_no_ort_errors(
        tiny_unet_onnx, tiny_mlp_onnx, tiny_dataset, no_torch_source):
    script = no_torch_source + textwrap.dedent(f"""
        import numpy as np
        from proc_ml.datasets import read_building_npz
        from proc_ml.runtime import PartsPredictor
        record = read_building_npz({str(tiny_dataset / 'grids' / 'b000000.npz')!r})
        for path in ({str(tiny_unet_onnx)!r}, {str(tiny_mlp_onnx)!r}):
            predictor = PartsPredictor(path, device="auto")
            labels, probs = predictor.predict(record.occupancy, record.style)
            assert (labels >= 0).sum() > 0
            print(predictor.metadata.family, predictor.model.providers[0], int((labels >= 0).sum()))
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "parts-unet3d" in result.stdout and "parts-mlp" in result.stdout
    if not cuda_status()[0]:
        assert "CPUExecutionProvider" in result.stdout
    bad = [line for line in result.stderr.splitlines()
           if any(marker in line for marker in ORT_ERROR_MARKERS)]
    assert not bad, bad
