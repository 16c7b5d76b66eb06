"""Fuzz, property-based (hypothesis): CSV rows, YAML documents and ``--set`` values, ONNX
metadata values and PCD headers the hand-written cases do not think of.

The property every reader must have: it returns values that are valid (finite, typed, in
range) or raises its one-line proc-ml error; nothing else escapes (no TypeError, no
OverflowError, no RecursionError, no silent NaN).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from proc_ml.errors import ConfigError, DatasetError, ModelError, ProcMLError  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# numbers as they appear in text files: the usual and the hostile
NUMBER_TEXT = st.one_of(
    st.integers(-10, 300).map(str),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "1e400", "1.5", "0x10", "", " ", "1,2",
                     "99999999999999999999999", "-0", "+3", "1_000", "٣", "１"]),
    st.text(max_size=6),
)


def _one_line(exc: BaseException) -> None:
    assert "\n" not in str(exc) and str(exc).strip()


@SETTINGS
@given(st.lists(st.lists(NUMBER_TEXT, min_size=28, max_size=28), min_size=1, max_size=4))
def test_adjacency_rows_are_valid_or_one_line(rows):
    from proc_ml.formats import adjacency_csv

    header = ",".join(adjacency_csv.header())
    lines = [",".join(v.replace(",", ";").replace("\n", " ").replace("\r", " ") for v in row)
             for row in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adjacency.csv"
        path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8",
                        errors="surrogatepass")
        try:
            ids, feats, _ = adjacency_csv.read(path)
        except DatasetError as exc:
            _one_line(exc)
            assert str(path) in str(exc)
            return
    assert np.isfinite(feats).all()
    assert (ids[:, 0] >= 0).all() and (ids[:, 1:] >= 0).all() and (ids[:, 1:] < 256).all()


@SETTINGS
@given(st.lists(st.lists(NUMBER_TEXT, min_size=46, max_size=46), min_size=1, max_size=3))
def test_faces_rows_are_valid_or_one_line(rows):
    from proc_ml.formats import faces_csv

    parts = ["wall", "window", "door", "roof", "balcony", "shopfront", "ground"]
    header = ",".join(faces_csv.header(parts))
    lines = [",".join(v.replace(",", ";").replace("\n", " ").replace("\r", " ") for v in row)
             for row in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "faces.csv"
        path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8",
                        errors="surrogatepass")
        try:
            ids, one_hot = faces_csv.read(path, parts)
        except DatasetError as exc:
            _one_line(exc)
            return
    assert set(np.unique(one_hot)) <= {0, 1} and (one_hot.sum(-1) <= 1).all()


YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=8))
YAML_VALUES = st.recursive(YAML_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)
GENERATOR_KEYS = ["grid", "grid.size", "grid.cell_size", "parts", "noise", "points.per_building",
                  "split.val", "split.test", "style.window_periods", "archetypes.slab",
                  "style.balcony_probability"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(GENERATOR_KEYS), YAML_VALUES, min_size=1, max_size=4))
def test_generator_overrides_are_valid_or_one_line(values):
    import yaml

    from proc_ml.procedural import load_generator_config

    overrides = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
                 for key, value in values.items()]
    try:
        cfg = load_generator_config(None, overrides)
    except ConfigError as exc:
        _one_line(exc)
        return
    assert all(1 <= n <= 256 for n in cfg["grid"]["size"])
    assert math.isfinite(cfg["grid"]["cell_size"]) and cfg["grid"]["cell_size"] > 0
    assert 0 <= cfg["noise"] <= 1


@SETTINGS
@given(st.text(max_size=400))
def test_any_yaml_text_is_a_config_or_one_line(text):
    from proc_ml.config import parse_yaml

    try:
        parse_yaml(text, "x.yaml")
    except ConfigError as exc:
        _one_line(exc)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12)
PARTS_KEYS = ["parts", "directions", "stride", "cell_size", "with_style", "grid_size",
              "input_names", "input_kind", "family", "task", "dataset_count", "input_shape",
              "output_shape", "input_dtype", "input_name", "schema", "kind"]


def _parts_props() -> dict:
    from proc_ml.runinfo import PartsInfo
    from proc_ml.runtime.metadata import ModelMetadata
    from proc_ml.encoding import grid_channel_names

    info = PartsInfo(task="building-parts", family="parts-unet3d", input_kind="grid",
                     input_names=list(grid_channel_names(False)), parts=["wall", "roof"],
                     stride=4, cell_size=3.0, grid_size=[16, 16, 16])
    return ModelMetadata.for_info(info).to_props()


@SETTINGS
@given(st.dictionaries(st.sampled_from(PARTS_KEYS), JSON_VALUES, min_size=1, max_size=3),
       st.booleans())
def test_metadata_values_are_valid_or_one_line(values, as_text):
    from proc_ml.runtime.metadata import ModelMetadata

    props = _parts_props()
    for key, value in values.items():
        props[f"proc_ml.{key}"] = value if as_text and isinstance(value, str) else json.dumps(value)
    try:
        meta = ModelMetadata.from_props(props, "m.onnx")
    except ModelError as exc:
        _one_line(exc)
        return
    info = meta.info
    assert info.parts and len(set(info.parts)) == len(info.parts)
    assert isinstance(info.stride, int) and 1 <= info.stride <= 64
    assert info.cell_size is None or (math.isfinite(info.cell_size) and info.cell_size > 0)
    assert meta.input_dtype == "float32"


PCD_KEYS = st.fixed_dictionaries({
    "FIELDS": st.sampled_from(["x y z", "x y z normal_x normal_y normal_z", "x y", "x x y z", ""]),
    "SIZE": st.sampled_from(["4 4 4", "8 8 8", "4 4", "0 4 4", "4 4 4 4 4 4", "a b c"]),
    "TYPE": st.sampled_from(["F F F", "I I I", "U U U", "F F", "Q Q Q", "F F F F F F"]),
    "COUNT": st.sampled_from(["1 1 1", "2 1 1", "0 1 1", "1 1 1 1 1 1", "99999 1 1"]),
    "POINTS": st.one_of(st.integers(-5, 40), st.sampled_from([2 ** 40, 10 ** 30])).map(str),
    "WIDTH": st.integers(-1, 40).map(str),
    "DATA": st.sampled_from(["ascii", "binary", "binary_compressed", "zip", ""]),
})


@SETTINGS
@given(PCD_KEYS, st.binary(max_size=600))
def test_pcd_headers_are_valid_or_one_line(header, body):
    from proc_ml.formats import pcd

    text = "VERSION 0.7\n" + "".join(f"{k} {v}\n" for k, v in header.items() if k != "DATA")
    text += "HEIGHT 1\n" + f"DATA {header['DATA']}\n"
    try:
        cloud = pcd.read_bytes(text.encode() + body, "c.pcd", use_open3d=False)
    except DatasetError as exc:
        _one_line(exc)
        return
    assert cloud.points.ndim == 2 and cloud.points.shape[1] == 3


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 4000))
def test_lzf_never_reads_outside_its_buffers(data, size):
    from proc_ml.formats.pcd import lzf_decompress

    try:
        out = lzf_decompress(data, size, "c.pcd")
    except DatasetError as exc:
        _one_line(exc)
        return
    assert len(out) == size


@SETTINGS
@given(st.text(min_size=1, max_size=60))
def test_set_values_never_escape(text):
    from proc_ml.config import apply_overrides

    try:
        apply_overrides({"a": {"b": 1, "c": 0.5, "d": "x", "e": [1], "f": True}}, [text])
    except ProcMLError as exc:
        _one_line(exc)
