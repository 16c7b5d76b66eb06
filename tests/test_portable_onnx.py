"""Portable ONNX export (--portable / --target-ort / --ir-version), the input rule, the plain
onnxruntime example of docs/onnx.md, and ``proc-ml info``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from proc_ml.cli import main
from proc_ml.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def portable_export(tiny_massing_unet_run, tiny_dataset, tmp_path_factory):
    """The massing-only U-Net exported with ``proc-ml export onnx --portable --json``:
    ``(path, JSON events)``."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("portable") / "massing.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["export", "onnx", str(tiny_massing_unet_run), "--out", str(out),
                     "--data", str(tiny_dataset), "--portable", "--json"]) == 0
    return out, [json.loads(line) for line in stdout.getvalue().splitlines()]


def _default_opset(proto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


# -- the portable export -------------------------------------------------------------------
def test_portable_export_writes_ir8_opset18_without_ir10_annotations(portable_export):
    import onnx

    path, events = portable_export
    proto = onnx.load(path)
    assert proto.ir_version == 8 and _default_opset(proto) == 18
    assert not any(n.metadata_props for n in proto.graph.node)
    assert not proto.graph.metadata_props
    onnx.checker.check_model(proto, full_check=True)
    props = {p.key: p.value for p in proto.metadata_props}
    exporter = json.loads(props["proc_ml.exporter"])
    assert (exporter["ir_version"], exporter["opset"], exporter["target_ort"]) == (8, 18, "1.16")
    done = events[-1]
    assert done["event"] == "done" and (done["ir_version"], done["opset"]) == (8, 18)
    assert done["max_abs_diff"] <= 1e-4


def test_default_export_keeps_the_exporters_ir_version(tiny_unet_onnx):
    import onnx

    proto = onnx.load(tiny_unet_onnx)
    assert proto.ir_version == 10 and _default_opset(proto) == 18   # what onnxruntime < 1.18 refuses
    assert any(n.metadata_props for n in proto.graph.node)


def _tiny_proto(opset: int = 18, ir_version: int = 10, dtype=None):
    import onnx
    from onnx import TensorProto, helper

    dtype = dtype or TensorProto.FLOAT
    node = helper.make_node("Relu", ["x"], ["y"])
    node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value="model.py:1")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, ["n"])],
                              [helper.make_tensor_value_info("y", dtype, ["n"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return onnx.ModelProto.FromString(model.SerializeToString())


def test_set_versions_lowers_the_ir_version_to_what_the_graph_needs():
    from onnx import TensorProto

    from proc_ml.exporters.onnx_export import set_versions
    from proc_ml.runtime.modelfile import ort_limits

    for opset, target, expected in ((18, "1.16", 8), (19, "1.16", 9), (20, "1.17", 9),
                                    (17, "1.14", 8), (21, "1.25", 10)):
        proto = _tiny_proto(opset)
        set_versions(proto, opset, target_ort=target, limits=ort_limits(target))
        assert proto.ir_version == expected, (opset, target)
        assert bool(proto.graph.node[0].metadata_props) == (expected >= 10)
    proto = _tiny_proto(18, dtype=TensorProto.FLOAT8E4M3FN)      # float8 needs IR 9
    set_versions(proto, 18, target_ort="1.16", limits=ort_limits("1.16"))
    assert proto.ir_version == 9
    proto = _tiny_proto(18)                                     # no target: untouched
    set_versions(proto, 18)
    assert proto.ir_version == 10 and proto.graph.node[0].metadata_props
    proto = _tiny_proto(18)
    set_versions(proto, 18, ir_version=9)
    assert proto.ir_version == 9


def test_set_versions_converts_an_opset_the_exporter_did_not_write():
    from proc_ml.exporters.onnx_export import set_versions

    proto = _tiny_proto(18)
    set_versions(proto, 17, target_ort="1.16", limits=(19, 9))
    assert _default_opset(proto) == 17 and proto.ir_version == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"ir_version": 7}, "needs IR version 8 or newer"),
    ({"ir_version": 10, "target_ort": "1.16", "limits": (19, 9)}, "newer than onnxruntime 1.16 loads"),
    ({"target_ort": "1.14", "limits": (18, 8), "dtype": "float8"}, "newer than onnxruntime 1.14"),
])
def test_set_versions_refuses_what_cannot_be_written(kwargs, message):
    from onnx import TensorProto

    from proc_ml.exporters.onnx_export import set_versions

    dtype = TensorProto.FLOAT8E4M3FN if kwargs.pop("dtype", None) else None
    with pytest.raises(ModelError, match=message):
        set_versions(_tiny_proto(18, dtype=dtype), 18, **kwargs)


def test_target_ort_and_opset_choices_are_checked(tiny_massing_unet_run, tmp_path, capsys):
    from proc_ml.exporters.onnx_export import check_opset
    from proc_ml.runtime.modelfile import oldest_ort, ort_limits

    assert ort_limits("1.16") == (19, 9) and ort_limits("1.16.3") == (19, 9)
    assert ort_limits("1.17") == (20, 9) and ort_limits("1.31") == (21, 10)
    assert oldest_ort(18, 8) == "1.14" and oldest_ort(19, 9) == "1.15"
    assert oldest_ort(18, 10) == "1.18" and oldest_ort(23, 11) is None
    assert check_opset(None, "1.14", ort_limits("1.14")) == 18
    for bad in ("1.13", "one.sixteen", "2"):
        with pytest.raises(ModelError, match="--target-ort"):
            ort_limits(bad)
    out = tmp_path / "m.onnx"
    for args, message in ((["--target-ort", "1.16", "--opset", "20"], "--opset 20 is newer than onnxruntime 1.16"),
                          (["--portable", "--target-ort", "1.17"], "--portable means --target-ort 1.16"),
                          (["--opset", "99"], "--opset must be between 7 and")):
        assert main(["export", "onnx", str(tiny_massing_unet_run), "--out", str(out), *args]) == 1
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_onnxruntime_refusing_the_ir_version_says_how_to_re_export(tiny_unet_onnx, tmp_path):
    import onnx

    from proc_ml.runtime.session import ModelSession

    proto = onnx.load(tiny_unet_onnx)
    proto.ir_version = 99                      # newer than any onnxruntime
    path = tmp_path / "future.onnx"
    onnx.save(proto, path)
    with pytest.raises(ModelError, match=r"IR version.*re-export it with 'proc-ml export onnx RUN "
                                         r"--target-ort \d+\.\d+'"):
        ModelSession(path, device="cpu")


# -- the input rule and plain onnxruntime ----------------------------------------------------
def test_every_kind_states_its_input_rule(tiny_unet_onnx, tiny_mlp_onnx, tiny_pix2pix_onnx):
    from proc_ml.runtime import load_model

    unet = load_model(tiny_unet_onnx, device="cpu").metadata
    assert unet.input_rule["multiple_of"] == 4 and unet.input_rule["pad_value"] == 0.0
    assert unet.input_rule["padded_axes"] == ["x", "y", "z"]
    assert "multiples of 4" in unet.input_rule["text"]
    mlp = load_model(tiny_mlp_onnx, device="cpu").metadata
    assert mlp.input_rule["multiple_of"] == 1 and not mlp.input_rule["padded_axes"]
    image = load_model(tiny_pix2pix_onnx[0], device="cpu").metadata
    assert image.input_rule["multiple_of"] == image.info.stride > 1
    assert image.input_rule["padded_axes"] == ["height", "width"]
    assert len(image.input_rule["pad_value"]) == 3


def _docs_example() -> str:
    text = (ROOT / "docs" / "onnx.md").read_text(encoding="utf-8")
    after = text[text.index("<!-- plain-onnxruntime-example -->"):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_plain_onnxruntime_example_of_the_docs_gives_the_runtimes_logits(portable_export, capsys):
    from proc_ml.encoding import grid_channels, pad_to_stride
    from proc_ml.runtime import load_model

    path, _ = portable_export
    code = _docs_example()
    assert '"models/parts_massing.onnx"' in code
    scope: dict = {}
    exec(compile(code.replace('"models/parts_massing.onnx"', repr(str(path))), "onnx.md", "exec"), scope)
    assert "roof faces (+z):" in capsys.readouterr().out
    occupancy = scope["occupancy"]
    assert any(n % 4 for n in occupancy.shape)       # the example really needs the padding
    x = pad_to_stride(grid_channels(occupancy), 4)[None]
    expected = load_model(path, device="cpu").run(x)[:, :, :5, :6, :7]
    np.testing.assert_allclose(scope["logits"], expected, atol=1e-5)


# -- proc-ml info -------------------------------------------------------------------------
def test_info_describes_a_model(portable_export, capsys):
    path, _ = portable_export
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    for expected in ("parts-unet3d (parts model for building-parts)",
                     "ONNX IR 8, opset 18; loads in onnxruntime 1.14 and later",
                     "target_ort 1.16", "occupancy", "1 where the cell is filled, else 0",
                     "multiples of 4", "wall, window, door, roof, balcony, shopfront, ground (7)",
                     "dataset     16 examples (seed 3", "face_accuracy"):
        assert expected in text, expected
    assert main(["info", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["onnx"]["ir_version"] == 8 and facts["onnx"]["oldest_onnxruntime"] == "1.14"
    assert facts["kind"] == "parts" and facts["info"]["parts"][0] == "wall"
    assert facts["input"]["rule"]["multiple_of"] == 4
    assert facts["training"]["dataset_count"] == 16 and "face_accuracy" in facts["training"]["metrics"]


def test_info_reads_the_header_like_onnx_does(tiny_unet_onnx, tiny_pix2pix_onnx):
    import onnx

    from proc_ml.runtime.modelfile import read_header

    for path in (tiny_unet_onnx, tiny_pix2pix_onnx[0]):
        proto, header = onnx.load(path), read_header(path)
        assert header.ir_version == proto.ir_version
        assert header.opsets == {o.domain: o.version for o in proto.opset_import}
        assert header.props == {p.key: p.value for p in proto.metadata_props}
        assert header.producer_name == "proc-ml"


def test_info_and_predict_refuse_run_folders_and_checkpoints(tiny_massing_unet_run, tiny_dataset,
                                                            tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    run = str(tiny_massing_unet_run)
    best = str(tiny_massing_unet_run / "checkpoints" / "best.pt")
    grid = str(tiny_dataset / "grids" / "b000000.npz")
    for args in (["info", run], ["predict", "building-parts", "--model", run, "--input", grid,
                                 "--out", str(tmp_path / "p")],
                 ["batch", str(tiny_dataset / "grids"), "--model", run, "--out", str(tmp_path / "b")]):
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a training run folder, not an ONNX model" in err
        assert f"proc-ml export onnx {run} --out model.onnx" in err
    assert main(["info", best]) == 1
    assert f"export it first: proc-ml export onnx {run} --checkpoint {best}" in capsys.readouterr().err
    plain = tmp_path / "plain.onnx"             # an ONNX file that proc-ml did not export
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), plain)
    assert main(["info", str(plain)]) == 1
    assert "not a proc-ml model" in capsys.readouterr().err
    assert main(["info", str(tiny_dataset / "dataset.yaml")]) == 1
    assert "not an ONNX model" in capsys.readouterr().err


# -- onnxruntime 1.16 in a throwaway environment -------------------------------------------
@pytest.mark.slow
def test_portable_export_loads_and_matches_torch_in_onnxruntime_1_16(
        portable_export, tiny_massing_unet_run, tiny_mlp_run, tiny_unet_onnx, tiny_unet_run,
        tiny_dataset, tmp_path):
    """pip installs onnxruntime==1.16.3 and numpy<2 into a venv under tmp_path (network)."""
    import importlib.util

    from proc_ml.exporters.onnx_export import export_run

    spec = importlib.util.spec_from_file_location("check_ort_versions",
                                                  ROOT / "scripts" / "check_ort_versions.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    mlp = tmp_path / "mlp_portable.onnx"
    export_run(tiny_mlp_run, mlp, data_dir=tiny_dataset, target_ort="1.16", log=lambda line: None)
    cases = [check.reference_case(tiny_massing_unet_run, portable_export[0], tiny_dataset, tmp_path),
             check.reference_case(tiny_mlp_run, mlp, tiny_dataset, tmp_path),
             check.reference_case(tiny_unet_run, tiny_unet_onnx, tiny_dataset, tmp_path)]
    python = check.make_venv("1.16.3", tmp_path / "venvs")
    result = check.check_in_venv(python, cases, tmp_path)
    assert result["onnxruntime"] == "1.16.3" and result["numpy"].startswith("1.")
    unet, mlp_row, default = result["results"]
    for row in (unet, mlp_row):
        assert row["loads"], row
        assert row["raw_max_abs_diff"] <= 1e-4 and row["runtime_max_abs_diff"] <= 1e-4, row
    assert not default["loads"] and "IR version: 10" in default["error"]
