"""The validation layer's own parts: the registry's declared kinds and families, the memory
budget and its hard limit, the PCD reader's two decoders, the format list, the bounded
YAML loader and source blame."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from proc_ml import budget
from proc_ml.config import Sources, load_config_sources, parse_yaml
from proc_ml.errors import ConfigError, DatasetError, LimitError
from proc_ml.formats import pcd
from proc_ml.registry import TASKS, task_class
from proc_ml.runinfo import KINDS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_registry_declares_each_shipped_task_as_its_class_does(name):
    entry, cls = TASKS[name], task_class(name)
    assert entry.families == tuple(cls.families)
    assert KINDS[entry.kind] is cls.info_type


def test_budget_sizes_and_refusal(monkeypatch):
    assert budget.parse_size("4G") == 4 << 30 and budget.parse_size("1536M") == 1536 << 20
    for bad in ("lots", "-1G", "10", "1e9"):
        with pytest.raises(ConfigError):
            budget.parse_size(bad)
    monkeypatch.setenv(budget.ENV, "2G")
    assert budget.memory_budget() == 2 << 30
    with pytest.raises(LimitError, match=r"memory budget of 2\.0 GiB"):
        budget.check(3 << 30, "this")
    budget.check(1 << 30, "that")


def test_parts_estimate_covers_the_measured_peak():
    """Measured on the shipped parts-unet3d width (7 channels, 7 parts): about 570 bytes per
    cell at 128^3 (docs/reliability.md); the estimate must not be below it."""
    per_cell = budget.parts_grid_bytes((128, 128, 128), 7, 7, 4) / 128 ** 3
    assert per_cell >= 570


def test_hard_limit_turns_a_big_allocation_into_memory_error():
    code = ("from proc_ml import budget\n"
            "assert budget.apply_hard_limit(2 << 30)\n"
            "import numpy as np\n"
            "try:\n    np.ones(3 << 30, np.uint8)\nexcept MemoryError:\n    print('refused')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[1])})
    assert done.stdout.strip() == "refused", done.stderr


def test_pcd_binary_compressed_both_decoders(tmp_path):
    o3d = pytest.importorskip("open3d")
    rng = np.random.default_rng(0)
    points = np.round(rng.normal(size=(5000, 3)), 2)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    path = tmp_path / "c.pcd"
    o3d.io.write_point_cloud(str(path), cloud, compressed=True)
    assert b"binary_compressed" in path.read_bytes()[:400]
    ours = pcd.read_cloud(path, use_open3d=False).points
    theirs = pcd.read_cloud(path, use_open3d=True).points
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(ours, points, atol=1e-6)
    data = path.read_bytes()
    head = data.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    broken = data[:head] + (123).to_bytes(4, "little") + data[head + 4:]   # compressed size
    with pytest.raises(DatasetError, match="corrupted|truncated"):
        pcd.read_bytes(broken, "c.pcd", use_open3d=False)
    with pytest.raises(DatasetError, match="truncated"):
        pcd.read_bytes(data[:-100], "c.pcd")


def test_lzf_back_references_and_runs():
    # literal "abc", then a back reference of 9 bytes at distance 3 (overlapping: repeats)
    data = bytes([2]) + b"abc" + bytes([(7 << 5) | 0, 9 - 9, 2])
    assert pcd.lzf_decompress(bytes([2]) + b"abc" + bytes([(1 << 5) | 0, 2]), 6) == b"abcabc"
    assert pcd.lzf_decompress(data, 3 + 7 + 2) == b"abc" * 4
    with pytest.raises(DatasetError):
        pcd.lzf_decompress(bytes([(1 << 5) | 0, 5]), 3)      # reference before the start


def test_mesh_types_are_trimeshs_own_list():
    from trimesh.exchange.load import mesh_formats

    from proc_ml import meshio

    assert set(meshio.available_mesh_extensions()) == set(mesh_formats()) - {"stl_ascii", "xyz"}
    assert {"zip", "gz", "bz2"} <= set(meshio.known_extensions())


def test_yaml_limits_and_types():
    assert parse_yaml("a: [1, 2]\n", "x") == {"a": [1, 2]}
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_yaml("a: " + "[" * 60 + "]" * 60, "x")
    with pytest.raises(ConfigError, match="alias"):
        parse_yaml("a: &a [1, 2]\n" + "".join(f"b{i}: &b{i} [" + ",".join(
            [f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]\n" for i in range(6)), "x")
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_yaml("!!python/object/apply:os.system [echo]", "x")


def test_sources_name_the_file_or_the_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a:\n  b: 2\n")
    config, sources = load_config_sources({"a": {"b": 1, "c": 1}}, path, ["a.c=3"])
    assert isinstance(sources, Sources) and str(sources) == str(path)
    assert sources.of("a.b") == str(path) and sources.of("a.c") == "--set a.c=3"
    assert config == {"a": {"b": 2, "c": 3}}
