"""The entrance rule of the installed model, end to end: ``PartsPredictor``, ``proc-ml predict
building-parts --no-entrance-rule`` and ``proc-ml batch --task parts --no-entrance-rule``.
(The rule itself and its fit at export: tests/test_street_models.py.)"""

import json

import numpy as np
import pytest

from proc_ml.cli import main
from proc_ml.encoding import entrance_candidates
from proc_ml.procedural import generate_building
from proc_ml.procedural.config import default_config
from proc_ml.runtime import PartsPredictor, default_model

#: Generated building (seed 1, index 0): a corner house whose street ground floor the
#: installed model, on its own, labels without a door.
SEED, INDEX = 1, 0


@pytest.fixture(scope="module")
def installed():
    return PartsPredictor(default_model("building-parts"), device="cpu")


@pytest.fixture(scope="module")
def house():
    building = generate_building(default_config(), SEED, INDEX)
    street = tuple(s for s, on in zip(("+x", "-x", "+y", "-y"), building.extras["street"]) if on)
    return building.occupancy.astype(bool), street


def test_the_installed_model_gives_a_building_without_a_door_one_entrance(installed, house):
    occ, street = house
    door = installed.parts.index("door")
    assert installed.entrance_rule
    on, p_on = installed.predict(occ, street=street)
    off, p_off = installed.predict(occ, street=street, entrance=False)
    candidates = entrance_candidates(on >= 0, street)
    assert not (off[candidates] == door).any()           # the case the rule is for
    changed = np.argwhere(on != off)
    assert len(changed) == 1 and on[tuple(changed[0])] == door and candidates[tuple(changed[0])]
    # the most door-like street ground-floor face; the probabilities are not touched
    assert p_on[tuple(changed[0])][door] == p_on[..., door][candidates].max()
    np.testing.assert_array_equal(p_on, p_off)
    # no street sides: nothing to put an entrance on
    bare_on, _ = installed.predict(occ)
    bare_off, _ = installed.predict(occ, entrance=False)
    np.testing.assert_array_equal(bare_on, bare_off)


def test_models_without_the_key_have_no_entrance_rule(tiny_unet_onnx):
    assert PartsPredictor(tiny_unet_onnx, device="cpu").entrance_rule is False


def _house_grid(tmp_path):
    data = tmp_path / "data"
    assert main(["generate", "buildings", "--count", "1", "--seed", str(SEED), "--formats", "grids",
                 "--out", str(data), "--quiet"]) == 0
    return sorted((data / "grids").glob("*.npz"))[0]


def test_predict_cli_entrance_rule_option(tmp_path, capsys):
    grid = _house_grid(tmp_path)
    doors = {}
    for flag in ([], ["--no-entrance-rule"]):
        out = tmp_path / f"out{len(flag)}"
        assert main(["predict", "building-parts", "--input", str(grid), "--out", str(out),
                     "--device", "cpu"] + flag) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["entrance_rule"] is (not flag)
        doors[bool(flag)] = summary["faces_per_part"]["door"]
    assert doors == {False: 1, True: 0}
    capsys.readouterr()


def test_batch_entrance_rule_option(tmp_path, capsys):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "house.npz").write_bytes(_house_grid(tmp_path).read_bytes())
    out = tmp_path / "out"
    assert main(["batch", str(assets), "--task", "parts", "--out", str(out), "--no-entrance-rule",
                 "--quiet"]) == 0
    summaries = list(out.rglob("summary.json"))
    assert summaries and json.loads(summaries[0].read_text())["entrance_rule"] is False
    assert main(["batch", str(assets), "--task", "classify", "--model", "m.onnx", "--out",
                 str(tmp_path / "o2"), "--no-entrance-rule", "--quiet"]) != 0
    assert "--no-entrance-rule is for --task parts" in capsys.readouterr().err


def test_houdini_sop_entrance_parameter(house):
    """The Predict Parts SOP's Entrance Rule: Model's Own (the installed model: on) puts the
    one door the network did not find; Off leaves the building without one."""
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "tests" / "fake_hou"))
    import hou  # the fake

    from proc_ml.dcc.geometry import from_z_up

    code = compile((repo / "hda_scripts" / "predict_parts_sop.py").read_text(),
                   "predict_parts_sop.py", "exec")
    occ, street = house
    cells = np.stack(np.nonzero(occ), axis=1)

    def doors(**parms):
        geo = hou.Geometry()
        geo.createPoints(from_z_up((cells + 0.5) * 3.0, "y").tolist())
        values = {"model": "", "device": "cpu", "threads": 0, "cellsize": 3.0, "inputtype": "auto",
                  "upaxis": "y", "street": " ".join(street), "symmetry": "model", **parms}
        node = hou.make_sop_node(values, geo)
        hou.cook(node, code)
        out = node.geometry()
        names = out.attribValue("part_names").split()
        return list(out.primIntAttribValues("part")).count(names.index("door"))

    assert doors() == 1 and doors(entrance="model") == 1
    assert doors(entrance="off") == 0
    with pytest.raises(hou.NodeError, match="entrance rule must be one of model, off, got 'on'"):
        doors(entrance="on")
