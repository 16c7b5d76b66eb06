"""VoxNet and the voxel U-Net: networks, 32^3-style surface grids, training through the
shared loop, ONNX export and torch-free classification."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from proc_ml.cli import main
from proc_ml.datasets.pointclouds import Shape, points_occupancy, shape_occupancy
from proc_ml.trainers.models import PartsUNet3D, build_model


def test_voxnet_logits_and_resolution_check():
    model = build_model("voxnet", n_classes=5, resolution=32, width=4, head=[8]).eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 32, 32, 32)).shape == (3, 5)
    with pytest.raises(ValueError):
        build_model("voxnet", n_classes=5, resolution=8)


def test_voxel_unet_reuses_the_parts_unet_with_one_class_per_voxel():
    model = build_model("voxel-unet3d", n_classes=4, in_channels=1, width=4, depth=2).eval()
    assert isinstance(model, PartsUNet3D)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 16, 8, 12)).shape == (2, 4, 16, 8, 12)


def test_box_surface_grid_is_centred_closed_and_hollow():
    import trimesh

    box = trimesh.creation.box(extents=(4.0, 2.0, 1.0))
    grid = shape_occupancy(Shape("box", np.asarray(box.vertices), np.asarray(box.faces)), 32)
    xs, ys, zs = np.nonzero(grid)
    assert xs.max() - xs.min() + 1 in (31, 32)      # the longest side spans R - 1 cells
    assert abs((xs.min() + xs.max()) / 2 - 15.5) <= 1 and abs((zs.min() + zs.max()) / 2 - 15.5) <= 1
    # every cell of each face plane is set (no gaps), the inside is empty
    x0, x1, y0, y1, z0, z1 = xs.min(), xs.max(), ys.min(), ys.max(), zs.min(), zs.max()
    assert grid[x0, y0:y1 + 1, z0:z1 + 1].all() and grid[x1, y0:y1 + 1, z0:z1 + 1].all()
    assert grid[x0:x1 + 1, y0:y1 + 1, z0].all() and grid[x0:x1 + 1, y0:y1 + 1, z1].all()
    assert not grid[x0 + 2:x1 - 1, y0 + 2:y1 - 1, z0 + 2:z1 - 1].any()
    # a dense cloud of the same surface lands in the same cells
    dense = trimesh.sample.sample_surface_even(box, 60000, seed=0)[0]
    from_points = points_occupancy(dense, 32)
    assert (from_points & grid).sum() / grid.sum() > 0.9


@pytest.fixture(scope="module")
def voxel_run(tmp_path_factory):
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.procedural import load_generator_config

    data = tmp_path_factory.mktemp("vox_ds")
    cfg = load_generator_config(None, ["grid.size=[10,10,10]"])
    generate_dataset(cfg, 16, 9, data, ("grids",), workers=1, progress=False)
    run = tmp_path_factory.mktemp("vox_run") / "run"
    assert main(["train", "voxnet", "--data", str(data), "--out", str(run),
                 "--config", "tiny_voxnet", "--quiet"]) == 0
    return data, run


def test_voxnet_trains_exports_and_classifies_without_torch(voxel_run, tmp_path, no_torch_source):
    from proc_ml.exporters.onnx_export import export_run

    data, run = voxel_run
    model = tmp_path / "voxnet.onnx"
    report = export_run(run, model, log=lambda line: None)
    assert report["max_abs_diff"] <= 1e-4 and len(report["parity"]) >= 2
    assert report["input_shape"] == ["batch", 1, 16, 16, 16]
    script = no_torch_source + f"""
import numpy as np
from proc_ml.datasets import open_dataset
from proc_ml.meshing import quad_mesh
from proc_ml.datasets.pointclouds import Shape
from proc_ml.runtime.shapes import ShapePredictor
record = open_dataset({str(data)!r}).building(0)
mesh = quad_mesh(record.occupancy, None, 3.0)
predictor = ShapePredictor({str(model)!r})
n = len(predictor.classes)   # the grammar's 14 archetypes
ranked = predictor.classify(Shape("b0", mesh.vertices, mesh.triangles), k=n)
assert n == 14 and len(ranked) == n and abs(sum(p for _, p in ranked) - 1.0) < 1e-5
assert sorted(n for n, _ in ranked) == sorted(predictor.classes)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_voxnet_refuses_the_style_it_cannot_read(voxel_run, tmp_path, capsys):
    """VoxNet's input is the occupancy grid alone: dataset.use_style would change nothing but
    the model's metadata (which then made batch refuse the model), so it is refused."""
    data, _ = voxel_run
    assert main(["train", "voxnet", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--config", "tiny_voxnet", "--set", "dataset.use_style=true", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config key 'dataset.use_style' must be false for voxnet" in err[0]
