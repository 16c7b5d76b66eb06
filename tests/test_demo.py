"""``proc-ml demo`` end to end at a tiny size: every stage runs and the report is consistent."""

import json
from pathlib import Path

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
    assert set(report["timings_s"]) == {"generate", "train parts-unet3d (massing + street sides)",
                                        "export onnx", "predict unseen buildings",
                                        "label a real building", "total"}
    # the committed real LoD3 building, scored against its survey with the demo model, the
    # installed model and the geometry-only rule; its pictures are written
    real = report["real_building"]
    assert real["source"].endswith("4018265.xml") and len(real["buildings"]) >= 1
    assert {"demo model (with street)", "installed model (with street)",
            "geometry"} <= set(real["face_accuracy"])
    assert all(0.0 <= a <= 1.0 for a in real["face_accuracy"].values())
    assert real["pictures"] and all(Path(p).is_file() for p in real["pictures"])
    assert "Real building" in (out / "report.md").read_text()
    # the unseen buildings come from another seed than the training data
    from proc_ml.datasets import open_dataset
    train, unseen = open_dataset(out / "data"), open_dataset(out / "unseen")
    seen = {train.building(i).occupancy.tobytes() for i in train.ids()}
    assert sum(unseen.building(i).occupancy.tobytes() in seen for i in unseen.ids()) < 6
