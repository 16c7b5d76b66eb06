"""PointNet: the networks, building point-cloud data, training through the shared loop,
ONNX export with a dynamic point count, and torch-free classify / segment."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from proc_ml.cli import main
from proc_ml.trainers.models import build_model
from proc_ml.trainers.models.pointnet import TNet, feature_transform_loss


def _train(tmp_path_factory, task: str, data, *overrides) -> str:
    run = tmp_path_factory.mktemp(task) / "run"
    args = ["train", task, "--data", str(data), "--out", str(run),
            "--config", f"tiny_{task.replace('-', '_')}", "--quiet"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 0
    return run


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, point_dataset):
    return _train(tmp_path_factory, "pointnet-cls", point_dataset)


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory, point_dataset):
    return _train(tmp_path_factory, "pointnet-seg", point_dataset)


# -- networks --------------------------------------------------------------------------------
def test_classifier_is_invariant_to_point_order_and_runs_on_any_count():
    torch.manual_seed(0)
    model = build_model("pointnet-cls", in_features=6, n_classes=4, widths=[16, 32], head=[16],
                        input_transform=True, feature_transform=True, fourier_bands=2).eval()
    points = torch.randn(2, 100, 6)
    with torch.no_grad():
        logits = model(points)
        shuffled = model(points[:, torch.randperm(100)])
        fewer = model(points[:, :37])
    assert logits.shape == (2, 4) and fewer.shape == (2, 4)
    assert torch.allclose(logits, shuffled, atol=1e-5)


def test_segmenter_gives_one_row_per_point_and_follows_the_points():
    torch.manual_seed(0)
    model = build_model("pointnet-seg", in_features=3, n_classes=5, widths=[16, 32],
                        head=[16]).eval()
    points = torch.randn(1, 64, 3)
    order = torch.randperm(64)
    with torch.no_grad():
        logits = model(points)
        permuted = model(points[:, order])
    assert logits.shape == (1, 64, 5)
    assert torch.allclose(logits[:, order], permuted, atol=1e-5)


def test_tnet_starts_as_identity_and_orthogonality_loss():
    tnet = TNet(3, 8).eval()
    with torch.no_grad():
        matrix = tnet(torch.randn(2, 3, 20))
    assert torch.allclose(matrix, torch.eye(3).expand(2, 3, 3))
    assert float(feature_transform_loss(matrix)) == pytest.approx(0.0)
    # I - (2I)(2I)^T = -3I: squared Frobenius norm 3 * 9
    assert float(feature_transform_loss(2 * matrix)) == pytest.approx(27.0)


# -- data and augmentation ---------------------------------------------------------------------
def _task(task_name, data, *overrides):
    from proc_ml.trainers import load_train_config, make_task

    config = load_train_config(task_name, f"proc_ml/configs/tiny_{task_name.replace('-', '_')}.yaml",
                               overrides)
    return make_task(config, data)


def test_segmentation_examples_carry_parts_style_and_cell_coordinates(point_dataset):
    from proc_ml.datasets import open_dataset, read_point_cloud

    task = _task("pointnet-seg", point_dataset)
    data = open_dataset(point_dataset)
    first = data.ids("val")[0]
    features, parts = task.dataset("val")[0]
    points, _, all_parts = read_point_cloud(point_dataset / "points" / f"b{first:06d}.npz")
    assert features.shape == (128, 3 + 3 + 9) and parts.shape == (128,)
    # coordinates are in cells (the part rules follow the cell grid), style on every point
    cell = float(data.manifest["cell_size"])
    assert features[:, :3].max() <= points.max() / cell + 1e-5
    assert np.allclose(features[:, 6:], data.building(first).style)
    assert set(parts.tolist()) <= set(all_parts.tolist())


def test_classification_with_style_puts_the_style_on_every_point(point_dataset):
    """dataset.use_style for pointnet-cls: the nine style features follow the coordinates
    and normals on every point, as for segmentation (it used to fail with a channel
    mismatch: the style was counted in the inputs but never read)."""
    from proc_ml.datasets import open_dataset

    task = _task("pointnet-cls", point_dataset, "dataset.use_style=true")
    first = open_dataset(point_dataset).ids("val")[0]
    features, _ = task.dataset("val")[0]
    assert task.model_kwargs()["in_features"] == features.shape[1] == 3 + 3 + 9
    assert np.allclose(features[:, 6:], open_dataset(point_dataset).building(first).style)


def test_augmentation_is_seeded_by_seed_epoch_and_index(point_dataset):
    task = _task("pointnet-cls", point_dataset)
    train = task.dataset("train")
    a, _ = train[1]
    assert np.array_equal(a, train[1][0])           # same (seed, epoch, index): same sample
    train.set_epoch(1)
    b, _ = train[1]
    assert not np.allclose(a, b)                    # a new epoch draws new rotations/points
    train.set_epoch(0)
    assert np.array_equal(a, train[1][0])
    val = task.dataset("val")
    assert np.array_equal(val[0][0], val[0][0])
    # unit-sphere coordinates on held-out shapes (no augmentation there)
    radius = np.linalg.norm(val[0][0][:, :3], axis=1)
    assert radius.max() == pytest.approx(1.0, abs=1e-5)


# -- training, export, runtime ----------------------------------------------------------------
def test_training_writes_metrics_with_per_class_scores(cls_run, seg_run):
    cls_last = json.loads((cls_run / "metrics.jsonl").read_text().splitlines()[-1])
    seg_last = json.loads((seg_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_accuracy", "val_mean_class_accuracy", "val_miou"} <= set(cls_last)
    assert {"val_miou", "val_iou_window", "val_iou_roof"} <= set(seg_last)
    assert 0.0 <= seg_last["val_miou"] <= 1.0


def test_export_refuses_a_decision_rule_for_a_shape_model(cls_run, point_dataset, tmp_path, capsys):
    """--fit-decision fits building-parts decision weights: for a shape model it would change
    nothing, so it stops with one line and writes no file."""
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", str(cls_run), "--out", str(out), "--data", str(point_dataset),
                 "--fit-decision"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a decision rule is fitted for building-parts models" in err[0]
    assert not out.exists()


def test_evaluate_reports_confusion_and_miou(seg_run, point_dataset, capsys):
    assert main(["evaluate", str(seg_run), "--data", str(point_dataset), "--split", "test"]) == 0
    result = json.loads((seg_run / "eval.json").read_text())
    k = len(result["classes"])
    assert np.array(result["confusion"]).shape == (k, k)
    assert np.array(result["confusion"]).sum() == result["samples"] == result["shapes"] * 128
    assert "mean IoU" in capsys.readouterr().out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, cls_run, seg_run):
    from proc_ml.exporters.onnx_export import export_run

    out = tmp_path_factory.mktemp("pointnet_onnx")
    reports = {name: export_run(run, out / f"{name}.onnx", log=lambda line: None)
               for name, run in (("cls", cls_run), ("seg", seg_run))}
    return out, reports


def test_onnx_parity_on_several_point_counts(exported):
    _, reports = exported
    for report in reports.values():
        counts = [name for name in report["parity"] if "points" in name]
        assert len(counts) >= 2, report["parity"]
        assert report["max_abs_diff"] <= 1e-4
        assert report["input_shape"][:2] == ["batch", "points"]


def test_torch_free_classify_and_segment(exported, point_dataset, no_torch_source):
    out, _ = exported
    cloud = point_dataset / "points" / "b000003.ply"
    script = no_torch_source + f"""
import numpy as np
from proc_ml.runtime.shapes import ShapePredictor
from proc_ml.datasets import open_dataset
ranked = ShapePredictor({str(out / 'cls.onnx')!r}).classify({str(cloud)!r}, k=3)
assert len(ranked) == 3 and abs(sum(p for _, p in ranked)) <= 1.0 + 1e-6
seg = ShapePredictor({str(out / 'seg.onnx')!r})
style = open_dataset({str(point_dataset)!r}).building(3).style
points, normals, labels, probs = seg.segment({str(cloud)!r}, style=style, num_points=300)
assert points.shape == (300, 3) and labels.shape == (300,) and probs.shape[0] == 300
assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
print("ok", ranked[0][0])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_predict_segment_cli_writes_coloured_ply_and_png(exported, point_dataset, tmp_path, capsys):
    import trimesh

    out, _ = exported
    result = tmp_path / "seg"
    assert main(["predict", "segment", "--model", str(out / "seg.onnx"),
                 "--input", str(point_dataset / "points" / "b000002.ply"), "--out", str(result),
                 "--style", "1,0,0,0,1,0,0,1,1", "--points", "200"]) == 0
    cloud = trimesh.load(result / "segments.ply", process=False)
    raw = cloud.metadata["_ply_raw"]["vertex"]["data"]
    assert len(raw) == 200 and {"red", "part"} <= set(raw.dtype.names)
    assert (result / "segments.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((result / "summary.json").read_text())
    assert sum(summary["points_per_part"].values()) == 200
    # a style-aware model without --style: one clear error line
    assert main(["predict", "segment", "--model", str(out / "seg.onnx"),
                 "--input", str(point_dataset / "points" / "b000002.ply"),
                 "--out", str(tmp_path / "x")]) == 1
    assert "style" in capsys.readouterr().err


def test_batch_openers_process_assets_and_report_bad_ones(exported, point_dataset, tmp_path):
    from proc_ml.batch.assets import AssetError
    from proc_ml.batch.shapes import open_classify, open_segment

    out, _ = exported
    cloud = point_dataset / "points" / "b000001.ply"
    classify = open_classify(str(out / "cls.onnx"), {"device": "cpu", "top_k": 2})
    result = classify(cloud, tmp_path / "cls")
    assert result.files == ["classes.json"] and len(result.summary["top_k"]) == 2
    broken = tmp_path / "broken.off"
    broken.write_bytes(b"OFF\n3 1 0\nnot numbers\n")
    with pytest.raises(AssetError) as caught:
        classify(broken, tmp_path / "bad")
    assert str(broken) not in str(caught.value)          # the manifest names the asset already
    # the segmenter needs the building style, which bare assets do not carry: refused once
    # when the worker opens it (the batch stops with that line), not on every asset
    from proc_ml.errors import ModelError

    with pytest.raises(ModelError, match="reads the building style features, which assets do not carry"):
        open_segment(str(out / "seg.onnx"), {"device": "cpu"})


def test_batch_with_a_model_no_asset_can_feed_stops_with_one_line(exported, point_dataset,
                                                                  tmp_path, capsys):
    import shutil

    out, _ = exported
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("b000001.ply", "b000002.ply"):
        shutil.copy(point_dataset / "points" / name, assets / name)
    code = main(["batch", str(assets), "--task", "segment", "--model", str(out / "seg.onnx"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "building style features" in err and "b000001.ply" not in err


def test_batch_classify_cli_over_a_folder(exported, point_dataset, tmp_path):
    import json
    import shutil

    from proc_ml.batch import OK, FAILED, read_records
    from proc_ml.cli import main

    out, _ = exported
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("b000001.ply", "b000002.ply"):
        shutil.copy(point_dataset / "points" / name, assets / name)
    (assets / "broken.off").write_bytes(b"OFF\n3 1 0\nnot numbers\n")
    code = main(["batch", str(assets), "--task", "classify", "--model", str(out / "cls.onnx"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    records, _ = read_records(tmp_path / "out" / "manifest.jsonl")
    assert {r: records[r]["status"] for r in records} == {
        "b000001.ply": OK, "b000002.ply": OK, "broken.off": FAILED}
    classes = json.loads((tmp_path / "out" / "b000001.ply" / "classes.json").read_text())
    assert classes["top_k"]


def test_training_adds_the_feature_transform_regulariser(tmp_path):
    """With a feature T-Net the training loss is the cross-entropy plus 0.001 x the
    orthogonality regulariser of that batch's transform (Qi et al., 2017); without one it is
    the cross-entropy alone."""
    import torch.nn.functional as F

    from proc_ml.trainers.models.pointnet import FEATURE_TRANSFORM_WEIGHT, PointNetClassifier

    torch.manual_seed(0)
    points = torch.randn(3, 32, 3)
    targets = torch.tensor([0, 1, 2])
    for feature_transform in (True, False):
        model = PointNetClassifier(3, 3, widths=(16, 32), head=(16,), dropout=0.0,
                                   feature_transform=feature_transform).train()
        if feature_transform:      # a transform far from identity, so the term is large
            torch.nn.init.normal_(model.encoder.feature_tnet.head[-1].weight, std=0.5)
        task = _FakeShapeTask()
        steps = task.training_step({"net": model}, {"inputs": points, "targets": targets})
        name, loss = next(steps)
        with torch.no_grad():      # the same batch in train mode: the same logits and transform
            plain = float(F.cross_entropy(model(points), targets))
        matrix = model.encoder.last_feature_matrix
        if feature_transform:
            reg = float(feature_transform_loss(matrix))
            assert FEATURE_TRANSFORM_WEIGHT * reg > 0.01     # far above the tolerance below
            assert float(loss.detach()) == pytest.approx(plain + FEATURE_TRANSFORM_WEIGHT * reg, abs=1e-4)
        else:
            assert matrix is None and model.regularisation_loss() is None
            assert float(loss.detach()) == pytest.approx(plain, abs=1e-6)


class _FakeShapeTask:
    """Just enough of a shape task for ``ShapeTask.training_step`` (unweighted loss)."""

    primary_model = "net"
    class_weights = None

    def training_step(self, models, batch):
        from proc_ml.trainers.shapes import ShapeTask
        return ShapeTask.training_step(self, models, batch)
