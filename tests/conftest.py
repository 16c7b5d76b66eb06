"""Session-wide fixtures shared by every test module: a tiny dataset, tiny trained runs and
their ONNX exports. Each is built once per test session, on first use, under a pytest
temporary folder (fixed seeds, a few seconds each)."""

from __future__ import annotations

import textwrap

import pytest

TINY_GRID = [12, 12, 12]
TINY_COUNT = 16
TINY_SEED = 3


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 16-building dataset on a 12^3 grid with grids, faces/adjacency CSVs and meshes."""
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.procedural import load_generator_config

    out = tmp_path_factory.mktemp("tiny_dataset")
    cfg = load_generator_config(None, [f"grid.size={TINY_GRID}"])
    generate_dataset(cfg, TINY_COUNT, TINY_SEED, out, ("faces", "adjacency", "grids", "meshes"),
                     workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def point_dataset(tmp_path_factory):
    """16 buildings on a 10^3 grid with grids and 256-point labelled clouds (shape nets)."""
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.procedural import load_generator_config

    out = tmp_path_factory.mktemp("points_ds")
    cfg = load_generator_config(None, ["grid.size=[10,10,10]", "points.per_building=256"])
    generate_dataset(cfg, 16, 5, out, ("grids", "points"), workers=1, progress=False)
    return out


def _train(tmp_path_factory, dataset, name: str, config: str, *overrides: str):
    from proc_ml.cli import main

    run = tmp_path_factory.mktemp(name) / "run"
    args = ["train", "building-parts", "--data", str(dataset), "--out", str(run),
            "--config", config, "--quiet"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 0, f"training the {name} run failed"
    return run


def _export(tmp_path_factory, run, dataset, name: str):
    from proc_ml.exporters.onnx_export import export_run

    out = tmp_path_factory.mktemp(name) / "model.onnx"
    export_run(run, out, data_dir=dataset, log=lambda line: None)
    return out


@pytest.fixture(scope="session")
def tiny_unet_run(tmp_path_factory, tiny_dataset):
    """A style-aware parts-unet3d run (configs/tiny_parts_unet3d.yaml, 2 epochs)."""
    return _train(tmp_path_factory, tiny_dataset, "tiny_unet", "tiny_parts_unet3d")


@pytest.fixture(scope="session")
def tiny_mlp_run(tmp_path_factory, tiny_dataset):
    """A style-aware parts-mlp run (configs/tiny_parts_mlp.yaml, 2 epochs)."""
    return _train(tmp_path_factory, tiny_dataset, "tiny_mlp", "tiny_parts_mlp")


@pytest.fixture(scope="session")
def tiny_massing_unet_run(tmp_path_factory, tiny_dataset):
    """A massing-only parts-unet3d run (no style features: works on bare meshes), 1 epoch."""
    return _train(tmp_path_factory, tiny_dataset, "tiny_massing_unet", "tiny_parts_unet3d",
                  "dataset.use_style=false", "training.epochs=1")


@pytest.fixture(scope="session")
def tiny_unet_onnx(tmp_path_factory, tiny_unet_run, tiny_dataset):
    return _export(tmp_path_factory, tiny_unet_run, tiny_dataset, "tiny_unet_onnx")


@pytest.fixture(scope="session")
def tiny_mlp_onnx(tmp_path_factory, tiny_mlp_run, tiny_dataset):
    return _export(tmp_path_factory, tiny_mlp_run, tiny_dataset, "tiny_mlp_onnx")


@pytest.fixture(scope="session")
def tiny_massing_unet_onnx(tmp_path_factory, tiny_massing_unet_run, tiny_dataset):
    return _export(tmp_path_factory, tiny_massing_unet_run, tiny_dataset, "tiny_massing_onnx")


@pytest.fixture(scope="session")
def tiny_facades(tmp_path_factory):
    """Facade label maps + procedural textures of 6 buildings at 128 px (pix2pix pairs)."""
    from proc_ml.procedural.config import default_config
    from proc_ml.textures.pairs import write_facade_pairs

    out = tmp_path_factory.mktemp("facades")
    write_facade_pairs(default_config(), 6, 11, out, size=128)
    return out


@pytest.fixture(scope="session")
def tiny_pix2pix_run(tiny_facades, tmp_path_factory):
    """A pix2pix run on ``tiny_facades`` (configs/tiny_pix2pix.yaml)."""
    from proc_ml.cli import main

    run = tmp_path_factory.mktemp("p2p") / "run"
    assert main(["train", "pix2pix", "--data", str(tiny_facades), "--out", str(run),
                 "--config", "tiny_pix2pix", "--quiet"]) == 0
    return run


@pytest.fixture(scope="session")
def tiny_pix2pix_onnx(tiny_pix2pix_run, tmp_path_factory):
    """``(path, export report)`` of the tiny pix2pix generator."""
    from proc_ml.exporters.onnx_export import export_run

    out = tmp_path_factory.mktemp("p2p_onnx") / "gen.onnx"
    report = export_run(tiny_pix2pix_run, out, log=lambda line: None)
    return out, report


#: Python source that makes ``import torch`` (and any torch submodule) raise ImportError;
#: prepend it to a ``python -c`` script to prove a code path never needs torch.
NO_TORCH_SOURCE = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test ({name})")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


@pytest.fixture(scope="session")
def no_torch_source() -> str:
    """See ``NO_TORCH_SOURCE``."""
    return NO_TORCH_SOURCE


@pytest.fixture(scope="session")
def tiny_pointnet_cls_onnx(tmp_path_factory, point_dataset):
    """A pointnet-cls model (configs/tiny_pointnet_cls.yaml) exported to ONNX."""
    from proc_ml.cli import main
    from proc_ml.exporters.onnx_export import export_run

    run = tmp_path_factory.mktemp("tiny_pointnet_cls") / "run"
    assert main(["train", "pointnet-cls", "--data", str(point_dataset), "--out", str(run),
                 "--config", "tiny_pointnet_cls", "--quiet"]) == 0
    out = tmp_path_factory.mktemp("tiny_pointnet_cls_onnx") / "model.onnx"
    export_run(run, out, log=lambda line: None)
    return out
