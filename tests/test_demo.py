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


def test_a_demo_rerun_replaces_the_earlier_one_and_a_bad_real_file_is_refused_first(tmp_path, capsys):
    """``make demo`` twice works: the second run replaces the first one's files. A --real
    file that cannot be labelled (cut off; a building without windows or doors) is one
    line naming it, before anything is generated: the earlier demo is left as it was."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--count", "12", "--unseen", "2", "--grid", "8",
            "--epochs", "1", "--quiet"]
    assert main(args) == 0
    first = json.loads((out / "report.json").read_text())
    assert first["real_building"]["buildings"] == ["4018265"]
    assert "CC BY-SA 4.0" in (out / "real" / "dataset.yaml").read_text()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    bad = tmp_path / "cut.xml"
    bad.write_text("<?xml version='1.0'?><core:CityModel xmlns:core='http://www.opengis.net/citygml/2.0'>")
    massing = Path(__file__).parent / "data" / "citygml" / "4018142.xml"    # LoD3, no opening
    empty = tmp_path / "no_city_files"
    empty.mkdir()
    for real in (bad, massing, empty):
        capsys.readouterr()
        assert main([*args, "--count", "16", "--real", str(real)]) == 1
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"proc-ml demo: error: --real {real}: "), err
        assert ("no CityGML / CityJSON files" in err[0]) == (real == empty), err
        assert "replacing" not in captured.out and "== generate" not in captured.out
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    # a user's own file: the committed example's licence is not stamped on it
    own = tmp_path / "own.xml"
    own.write_bytes((Path(__file__).parent / "data" / "citygml" / "4018265.xml").read_bytes())
    assert main([*args, "--count", "16", "--real", str(own)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert first["training_buildings"] == 12 and report["training_buildings"] == 16
    assert report["real_building"]["source"] == str(own)
    assert "see the source's LICENSE" not in (out / "real" / "dataset.yaml").read_text()
