"""Fuzz: configs, ``--set`` values and command-line arguments of generate and train.

Every case asserts the shared contract (tests/fuzzkit.py): the documented exit code, one
stderr line, no traceback, nothing written outside OUT. YAML documents come from files and
from ``--set``; values are type confusions, non-finite numbers, out-of-range numbers,
memory and stack bombs, bad encodings.
"""

from __future__ import annotations

import pytest

from fuzzkit import Sandbox, assert_refused, run

LAUGHS = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
# (file name, bytes, words the error must contain)
BAD_CONFIG_FILES = [
    ("laughs.yaml", LAUGHS.encode(), ["alias"]),
    ("deep_list.yaml", ("x: " + "[" * 3000 + "]" * 3000 + "\n").encode(), ["nested"]),
    ("deep_map.yaml", ("x: " + "{a: " * 200 + "1" + "}" * 200 + "\n").encode(), ["nested"]),
    ("self_alias.yaml", b"noise: &x [1, *x]\n", ["alias"]),
    ("latin1.yaml", "parts: [wall, fen\xeatre]\n".encode("latin-1"), ["utf-8", "line 1"]),
    ("binary.yaml", bytes(range(256)) * 4, ["utf-8"]),
    ("utf16.yaml", "noise: 0.1\n".encode("utf-16"), ["utf-8"]),
    ("huge.yaml", b"# " + b"x" * (5 << 20) + b"\n", ["limit"]),
    ("list.yaml", b"- a\n- b\n", ["mapping"]),
    ("scalar.yaml", b"42\n", ["mapping"]),
    ("tabs.yaml", b"grid:\n\tsize: [8, 8, 8]\n", ["invalid yaml"]),
    ("two_docs.yaml", b"noise: 0.1\n---\nnoise: 0.2\n", ["invalid yaml"]),
    ("unknown_tag.yaml", b"noise: !!python/object:os.system echo\n", ["invalid yaml"]),
    ("python_name.yaml", b"noise: !!python/name:os.system\n", ["invalid yaml"]),
    ("complex_key.yaml", b"? [a, b]\n: 1\n", ["invalid yaml"]),
    ("nan_noise.yaml", b"noise: .nan\n", ["noise", "finite"]),
    ("inf_cell.yaml", b"grid:\n  cell_size: .inf\n", ["grid.cell_size", "finite"]),
    ("null_grid.yaml", b"grid:\n  size: ~\n", ["grid.size", "null"]),
    ("date_noise.yaml", b"noise: 2024-01-01\n", ["noise"]),
    ("binary_tag.yaml", b"noise: !!binary aGVsbG8=\n", ["noise"]),
    ("nan_weight.yaml", b"archetypes:\n  slab: .nan\n", ["archetypes.slab", "finite"]),
    ("huge_int.yaml", b"points:\n  per_building: 100000000000000000000000\n", ["points.per_building"]),
]


@pytest.fixture
def box(tmp_path):
    return Sandbox.make(tmp_path)


@pytest.mark.parametrize("name,data,words", BAD_CONFIG_FILES, ids=[c[0] for c in BAD_CONFIG_FILES])
def test_generate_config_files(capfd, box, name, data, words):
    path = box.inp / name
    path.write_bytes(data)
    result = run(capfd, box, "generate", "buildings", "--count", 2, "--out", box.out, "--quiet",
                 "--config", path)
    line = assert_refused(result, *words, command="generate")
    assert str(path) in line


def test_config_path_is_a_folder(capfd, box):
    result = run(capfd, box, "generate", "buildings", "--count", 2, "--out", box.out, "--config",
                 box.inp)
    assert_refused(result, "folder", command="generate")


GENERATE_SETS = [
    ("noise=.nan", ["noise", "finite"]),
    ("noise=.inf", ["noise", "finite"]),
    ("noise=", ["noise", "null"]),
    ("noise=~", ["noise", "null"]),
    ("noise=[1, 2]", ["noise", "float"]),
    ("noise={a: 1}", ["noise", "float"]),
    ("grid.cell_size=0", ["grid.cell_size", "> 0"]),
    ("grid.cell_size=-3", ["grid.cell_size", "> 0"]),
    ("grid.cell_size=1e400", ["grid.cell_size", "finite"]),     # a YAML 1.2 float: inf
    ("grid.cell_size=1.0e+400", ["grid.cell_size", "finite"]),
    ("grid.size=[0,8,8]", ["grid.size"]),
    ("grid.size=[3000,3000,3000]", ["grid.size"]),
    ("grid.size=[8,8,8.5]", ["grid.size"]),
    ("grid.size=8", ["grid.size", "list"]),
    ("grid.size=[.nan,8,8]", ["grid.size", "finite"]),
    ("grid=5", ["grid", "mapping"]),
    ("points.per_building=0", ["points.per_building"]),
    ("points.per_building=1000000000", ["points.per_building"]),
    ("points.per_building=true", ["points.per_building", "int"]),
    ("points.per_building=1e3", ["points.per_building", "int"]),
    ("split.val=0.9", ["split"]),
    ("split.test=-0.5", ["split"]),
    ("style.shopfront_probability=.nan", ["shopfront_probability", "finite"]),
    ("style.window_periods=[7]", ["style.window_periods"]),
    ("archetypes.slab=-1", ["archetypes.slab"]),
    ("archetypes.slab=.inf", ["archetypes.slab", "finite"]),
    ("archetypes.castle=1", ["unknown config key"]),
    ("parts=[wall, wall]", ["parts"]),
    ("parts=[]", ["parts"]),
    ("parts=['a,b', wall]", ["parts"]),
    ("=1", ["key=value"]),
    ("grid..size=[8,8,8]", ["empty key"]),
    ("noise" + "=" + "[" * 200 + "]" * 200, ["nested"]),
    ("noise=" + LAUGHS.replace("\n", ", ").replace(": ", ": ").strip(", ").join("{}"), ["alias"]),
]


@pytest.mark.parametrize("override,words", GENERATE_SETS, ids=[c[0][:40] for c in GENERATE_SETS])
def test_generate_set_values(capfd, box, override, words):
    result = run(capfd, box, "generate", "buildings", "--count", 2, "--out", box.out, "--quiet",
                 "--set", override)
    assert_refused(result, *words, command="generate")


GENERATE_ARGS = [
    (["--count", "0"], ["--count"], 1),
    (["--count", "-5"], ["--count"], 1),
    (["--count", "100000000000"], ["--count"], 1),
    (["--count", "many"], ["--count"], 2),
    (["--seed", "-1"], ["--seed"], 1),
    (["--seed", "99999999999999999999"], ["--seed"], 1),
    (["--workers", "0"], ["--workers"], 1),
    (["--workers", "100000"], ["--workers"], 1),
    (["--formats", "grids,voxels"], ["--formats"], 1),
    (["--layout", "csv"], ["--layout"], 2),
]


@pytest.mark.parametrize("args,words,code", GENERATE_ARGS, ids=[" ".join(c[0]) for c in GENERATE_ARGS])
def test_generate_arguments(capfd, box, args, words, code):
    result = run(capfd, box, "generate", "buildings", "--out", box.out, "--quiet", *args)
    assert_refused(result, *words, code=code)


def test_generate_out_is_a_file(capfd, box):
    box.out.parent.mkdir(parents=True, exist_ok=True)
    box.out.write_text("not a folder")
    result = run(capfd, box, "generate", "buildings", "--count", 2, "--out", box.out, "--quiet")
    assert_refused(result, "not a folder", command="generate")
    assert box.out.read_text() == "not a folder"


def test_generate_out_below_a_file(capfd, box):
    box.out.mkdir(parents=True)
    (box.out / "file").write_text("x")
    result = run(capfd, box, "generate", "buildings", "--count", 2, "--out", box.out / "file" / "ds",
                 "--quiet")
    assert_refused(result, "not a folder", command="generate")


TRAIN_SETS = [
    ("training.epochs=0", ["--set training.epochs=0:", "training.epochs", ">= 1"]),
    ("training.epochs=null", ["--set training.epochs=null:", "training.epochs", "null"]),
    ("training.epochs=", ["training.epochs", "null"]),
    ("training.epochs=2.5", ["training.epochs", "int"]),
    ("training.epochs=1000000000000", ["training.epochs", "<="]),
    ("training.epochs=many", ["training.epochs", "int"]),
    ("training.lr=.nan", ["training.lr", "finite"]),
    ("training.lr=.inf", ["training.lr", "finite"]),
    ("training.lr=0", ["training.lr", "> 0"]),
    ("training.lr=-0.1", ["training.lr", "> 0"]),
    ("training.lr=fast", ["training.lr", "float"]),
    ("training.batch_size=0", ["training.batch_size", ">= 1"]),
    ("training.batch_size=10000000", ["training.batch_size", "<="]),
    ("training.seed=-1", ["training.seed", ">= 0"]),
    ("training.seed=100000000000000000000", ["training.seed"]),
    ("training.device=tpu", ["training.device", "auto, cpu, cuda"]),
    ("training.device=cuda:x", ["training.device", "auto, cpu, cuda"]),
    ("training.betas=[1.5, 0.9]", ["training.betas", "[0, 1)"]),
    ("training.betas=[.nan, 0.9]", ["training.betas", "finite"]),
    ("training.betas=[0.9]", ["training.betas"]),
    ("training.decay_fraction=0", ["training.decay_fraction", "> 0"]),
    ("training.weight_decay=-1", ["training.weight_decay", ">= 0"]),
    ("training.threads=-2", ["training.threads", ">= 0"]),
    ("training.optimizer=rmsprop", ["training.optimizer", "one of"]),
    ("training.scheduler=~", ["training.scheduler", "null"]),
    ("training.amp=1", ["training.amp", "bool"]),
    ("model.width=0", ["model.width", ">= 1"]),
    ("model.width=1000000", ["model.width", "<= 512"]),
    ("model.depth=9", ["model.depth"]),
    ("model.family=pointnet-cls", ["model.family", "one of"]),
    ("dataset.max_buildings=-1", ["dataset.max_buildings", ">= 0"]),
    ("dataset.use_style=maybe", ["dataset.use_style", "bool"]),
]


@pytest.mark.parametrize("override,words", TRAIN_SETS, ids=[c[0][:40] for c in TRAIN_SETS])
def test_train_set_values(capfd, box, tiny_dataset, override, words):
    result = run(capfd, box, "train", "building-parts", "--data", tiny_dataset, "--out",
                 box.out / "run", "--config", "tiny_parts_unet3d", "--quiet", "--set", override)
    assert_refused(result, *words, command="train")
    assert not (box.out / "run").exists()


def test_train_blames_the_file_for_its_own_values(capfd, box, tiny_dataset):
    config = box.inp / "cfg.yaml"
    config.write_text("task: building-parts\ntraining:\n  epochs: 0\n")
    result = run(capfd, box, "train", "building-parts", "--data", tiny_dataset, "--out",
                 box.out / "run", "--config", config, "--quiet", "--set", "training.lr=0.1")
    assert_refused(result, f"{config}: config key 'training.epochs' must be >= 1", command="train")


@pytest.mark.parametrize("name,data,words", BAD_CONFIG_FILES[:8], ids=[c[0] for c in BAD_CONFIG_FILES[:8]])
def test_train_config_files(capfd, box, tiny_dataset, name, data, words):
    path = box.inp / name
    path.write_bytes(data)
    result = run(capfd, box, "train", "building-parts", "--data", tiny_dataset, "--out",
                 box.out / "run", "--config", path, "--quiet")
    assert_refused(result, *words, command="train")


@pytest.mark.parametrize("override", ["gan.lambda_l1=-1", "dataset.size=7", "gan.disc_width=0"])
def test_pix2pix_config_errors_name_their_source(capfd, box, tiny_facades, override):
    result = run(capfd, box, "train", "pix2pix", "--data", tiny_facades, "--out", box.out / "run",
                 "--config", "tiny_pix2pix", "--quiet", "--set", override)
    assert_refused(result, f"--set {override}:", override.split("=")[0], command="train")
