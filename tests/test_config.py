"""YAML config loading/merging, generator config validation, and atomic file writes."""

import os
from pathlib import Path

import numpy as np
import pytest

from proc_ml.config import apply_overrides, load_config, load_yaml, merge, parse_override
from proc_ml.errors import ConfigError, ProcMLError
from proc_ml.fileio import atomic_path, npz_bytes, safe_join, write_bytes, write_npz, write_text
from proc_ml.procedural import DEFAULTS, load_generator_config

SAMPLE_CONFIGS = Path(__file__).resolve().parents[1] / "sample_data" / "configs"
BASE = {"training": {"epochs": 3, "lr": 0.1, "name": "run", "flags": [1], "nested": {"a": True}},
        "extras": {"free": 1}}


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def write(tmp_path, text, name="cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- generic config

def test_merge_and_overrides():
    cfg = load_config(BASE, None, ["training.epochs=5", "training.lr=1", "training.name='x y'"])
    assert cfg["training"]["epochs"] == 5
    assert cfg["training"]["lr"] == 1.0 and isinstance(cfg["training"]["lr"], float)
    assert cfg["training"]["name"] == "x y"
    assert BASE["training"]["epochs"] == 3, "defaults must not be modified"
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=") == (["a"], None)


def test_file_then_overrides(tmp_path):
    path = write(tmp_path, "training:\n  epochs: 7\n  nested: {a: false}\n")
    cfg = load_config(BASE, path, ["training.epochs=9"])
    assert cfg["training"]["epochs"] == 9 and cfg["training"]["nested"] == {"a": False}
    assert load_config(BASE, write(tmp_path, "", "empty.yaml")) == BASE


def test_unknown_key_suggests(tmp_path):
    path = write(tmp_path, "training:\n  epoch: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(BASE, path)
    assert one_line(info) == f"{path}: unknown config key 'training.epoch' (did you mean 'training.epochs'?)"
    with pytest.raises(ConfigError, match=r"--set zzz=1: unknown config key 'zzz' \(allowed: extras, training\)"):
        apply_overrides(BASE, ["zzz=1"])


@pytest.mark.parametrize("override,match", [
    ("training.epochs=2.5", r"'training.epochs' must be int, got 2.5"),
    ("training.epochs=true", r"'training.epochs' must be int, got True"),
    ("training.lr=fast", r"'training.lr' must be float, got 'fast'"),
    ("training.flags=3", r"'training.flags' must be list, got 3"),
    ("training=5", r"'training' must be a mapping, got int"),
    ("training.nested.a=1", r"'training.nested.a' must be bool, got 1"),
    ("noequals", r"override 'noequals': expected KEY=VALUE"),
])
def test_wrong_types(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        apply_overrides(BASE, [override])
    one_line(info)


def test_free_keys_accept_new_entries():
    cfg = merge(BASE, {"extras": {"anything": [1]}}, free=("extras",))
    assert cfg["extras"]["anything"] == [1]
    with pytest.raises(ConfigError, match="unknown config key 'extras.anything'"):
        merge(BASE, {"extras": {"anything": [1]}})


def test_yaml_errors_name_file_and_line(tmp_path):
    path = write(tmp_path, "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: line \d+ invalid YAML") as info:
        load_yaml(path)
    one_line(info)
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"top level must be a mapping, got list"):
        load_yaml(write(tmp_path, "- 1\n"))


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 (PyYAML) reads 1e-4 as text; configs and --set read it as the number."""
    assert load_yaml(write(tmp_path, "lr: 1e-4\nscale: 3E5\nname: 1e\n")) == \
        {"lr": 1e-4, "scale": 3e5, "name": "1e"}
    assert parse_override("training.lr=1e-4") == (["training", "lr"], 1e-4)


def test_what_proc_ml_writes_as_yaml_reads_back_the_same(tmp_path):
    """A string shaped like an exponent float (a run folder or part called '1e5') is quoted
    when config.yaml / dataset.yaml are written, so it is read back as text; numbers stay
    numbers."""
    from proc_ml.config import dump_yaml

    data = {"init": "1e5", "name": "-2E3", "plain": "1.5", "lr": 1e-4, "big": 3e5,
            "parts": ["wall", "7e1"]}
    path = tmp_path / "out.yaml"
    path.write_text(dump_yaml(data, sort_keys=False))
    assert load_yaml(path) == data


def test_a_key_given_twice_is_refused_but_merges_may_override(tmp_path):
    path = write(tmp_path, "training:\n  lr: 0.001\n  epochs: 3\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: line 4 invalid YAML: key 'lr' appears "
                                          r"twice in one mapping \(first on line 2\)") as info:
        load_yaml(path)
    one_line(info)
    path = write(tmp_path, "base: &b {lr: 0.001, epochs: 3}\nrun:\n  <<: *b\n  lr: 0.1\n")
    assert load_yaml(path)["run"] == {"lr": 0.1, "epochs": 3}


# ---------------------------------------------------------------- generator config

def test_generator_defaults():
    cfg = load_generator_config()
    assert cfg == DEFAULTS and cfg is not DEFAULTS
    assert cfg["grid"] == {"size": [16, 16, 16], "cell_size": 3.0} and cfg["noise"] == 0.0


@pytest.mark.parametrize("override,match", [
    ("grid.size=[8,8]", r"'grid.size' must be 3 integers between 4 and 256"),
    ("grid.size=[2,8,8]", r"'grid.size' must be 3 integers"),
    ("grid.size=[8,8,8.5]", r"'grid.size' must be 3 integers"),
    ("grid.size=[300,8,8]", r"'grid.size' must be 3 integers"),
    ("grid.cell_size=0", r"'grid.cell_size' must be > 0"),
    ("parts=[wall, window]", r"parts: vocabulary must contain roof, ground"),
    ("parts=[wall, roof, ground, wall]", r"duplicate part names"),
    ("parts=[wall, roof, ground, 'glass,door']", r"'parts' must be a list of part names made of"),
    ("archetypes.slab=-1", r"'archetypes.slab' must be a weight >= 0"),
    ("archetypes.castle=1", r"unknown config key 'archetypes.castle'"),
    ("archetypes={" + ", ".join(f"{a}: 0" for a in DEFAULTS["archetypes"]) + "}",
     r"'archetypes' needs at least one weight > 0"),
    ("style.window_periods=[4]", r"'style.window_periods' must be a non-empty subset"),
    ("style.window_periods=[]", r"'style.window_periods' must be a non-empty subset"),
    ("style.shopfront_probability=1.5", r"'style.shopfront_probability' must be in \[0, 1\]"),
    # each set of rules ignores the other's keys: a changed one is refused, not dropped
    ("style.balcony_probability=0.9", r"'style.balcony_probability' is for rules: legacy only"),
    ("noise=-0.1", r"'noise' must be in \[0, 1\]"),
    ("noise=lots", r"'noise' must be float"),
    ("points.per_building=0", r"'points.per_building' must be >= 1"),
    ("split.val=0.95", r"'split' val and test must be >= 0 and sum below 1"),
    ("colour=red", r"unknown config key 'colour'"),
])
def test_generator_config_refuses_bad_values(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_generator_config(None, [override])
    one_line(info)


def test_generator_config_refuses_the_facade_keys_under_the_legacy_rules():
    with pytest.raises(ConfigError, match=r"'facade.blocks.island' is for rules: facade only") as info:
        load_generator_config(None, ["rules=legacy", "facade.blocks.island=0.5"])
    one_line(info)
    # unchanged keys of the other rules are fine (a full default.yaml names them all)
    assert load_generator_config(None, ["rules=legacy", "style.balcony_probability=0.9"])


def test_generator_config_file_errors_name_the_file(tmp_path):
    path = write(tmp_path, "grid:\n  sise: [8, 8, 8]\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown config key 'grid.sise' \(did you mean 'grid.size'\?\)"):
        load_generator_config(path)
    path = write(tmp_path, "noise: 2\n", "noise.yaml")
    with pytest.raises(ConfigError, match=rf"{path}: config key 'noise' must be in"):
        load_generator_config(path)


@pytest.mark.parametrize("name", ["default.yaml", "large_grid.yaml", "custom_vocabulary.yaml",
                                  "noisy.yaml", "sample_dataset.yaml"])
def test_sample_configs_load(name):
    cfg = load_generator_config(SAMPLE_CONFIGS / name)
    assert set(cfg) == set(DEFAULTS)


def test_default_sample_config_spells_out_the_defaults():
    assert load_generator_config(SAMPLE_CONFIGS / "default.yaml") == DEFAULTS


# ---------------------------------------------------------------- fileio

def test_atomic_writes_leave_no_temp_files(tmp_path):
    write_text(tmp_path / "sub" / "a.txt", "hello")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_npz(tmp_path / "c.npz", {"x": np.arange(3)})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.bin", "c.npz", "sub"]
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_array_equal(z["x"], np.arange(3))


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            assert target.read_text() == "old"          # readers still see the old file
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_atomic_files_get_default_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_npz_bytes_are_deterministic():
    arrays = {"a": np.arange(10, dtype=np.int8), "b": np.ones((2, 3), np.float32)}
    assert npz_bytes(arrays) == npz_bytes(dict(arrays))


def test_safe_join(tmp_path):
    assert safe_join(tmp_path, "a/b.ply") == (tmp_path / "a" / "b.ply").resolve()
    assert safe_join(tmp_path, "a/../b") == (tmp_path / "b").resolve()
    for bad, match in [("../x", "would leave the output folder"), ("a/../../x", "would leave"),
                       ("/etc/passwd", "must be relative")]:
        with pytest.raises(ProcMLError, match=match):
            safe_join(tmp_path, bad)
    outside = tmp_path.parent / f"{tmp_path.name}_outside"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(ProcMLError, match="would leave"):
        safe_join(tmp_path, "link/file")
