"""``proc-ml demo`` end to end at a tiny size: every stage runs and the report is consistent."""

import json

import numpy as np
from PIL import Image

from proc_ml.cli import main


def test_demo_writes_model_picture_and_a_consistent_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--count", "40", "--unseen", "6", "--grid", "8",
                 "--epochs", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "# proc-ml demo report" in printed

    for name in ("model.onnx", "demo.png", "report.json", "report.md"):
        assert (out / name).is_file(), name
    picture = np.asarray(Image.open(out / "demo.png").convert("RGB"))
    assert picture.shape[0] > 200 and picture.shape[1] > 200
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 10      # a drawing, not a blank page

    report = json.loads((out / "report.json").read_text())
    assert report["unseen_buildings"] == 6 and report["training_buildings"] == 40
    assert report["grid_size"] == [8, 8, 8]
    assert report["onnx"]["max_abs_diff"] <= 1e-4
    assert 0.0 <= report["unseen_face_accuracy"] <= 1.0
    assert sum(p["faces"] for p in report["per_part"].values()) == report["unseen_faces"] > 0
    assert set(report["timings_s"]) == {"generate", "train parts-unet3d", "export onnx",
                                        "predict unseen buildings", "total"}
    # the unseen buildings come from another seed than the training data
    from proc_ml.datasets import open_dataset
    train, unseen = open_dataset(out / "data"), open_dataset(out / "unseen")
    seen = {train.building(i).occupancy.tobytes() for i in train.ids()}
    assert sum(unseen.building(i).occupancy.tobytes() in seen for i in unseen.ids()) < 6
