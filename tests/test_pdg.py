"""``proc_ml.pdg.run_cli``, what the Python Script TOPs of docs/houdini.md ("PDG / TOPs") run:
the real CLI with ``--json``, against a work item that records what PDG would receive."""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from proc_ml.errors import ProcMLError
from proc_ml.pdg import cli_command, run_cli

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "proc_ml"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class WorkItem:
    """The pdg.WorkItem calls run_cli makes (names and arguments as SideFX documents them)."""

    def __init__(self, index: int = 0, attributes: dict | None = None):
        self.index = index
        self.attributes = dict(attributes or {})
        self.outputs: list[tuple[str, str]] = []
        self.messages: list[str] = []
        self.errors: list[str] = []

    def addOutputFile(self, path, tag="", own=False):
        self.outputs.append((path, tag))

    def setStringAttrib(self, name, value, index=0):
        assert isinstance(value, str)
        self.attributes[name] = value

    def setIntAttrib(self, name, value, index=0):
        assert isinstance(value, int)
        self.attributes[name] = value

    def setFloatAttrib(self, name, value, index=0):
        assert isinstance(value, float)
        self.attributes[name] = value

    def stringAttribValue(self, name, index=0):
        return self.attributes[name]

    def addMessage(self, message, timestamp=True):
        self.messages.append(message)

    def addError(self, message, fail_task=False, timestamp=True):
        self.errors.append(message)


def test_generate_then_batch_through_work_items(tmp_path, tiny_massing_unet_onnx):
    item = WorkItem(index=3)
    data = tmp_path / "data"
    done = run_cli(item, ["generate", "buildings", "--count", "12", "--seed", item.index,
                          "--out", data, "--formats", "grids", "--set", "grid.size=[8,8,8]"],
                   cli=CLI, env=ENV)
    assert done["buildings"] == 12
    assert item.attributes["proc_ml_generate_out"] == str(data)
    assert item.attributes["proc_ml_generate_buildings"] == 12
    assert {Path(p).name for p, _ in item.outputs} == {"dataset.yaml", "labels.json",
                                                       "buildings.csv", "grids"}
    assert all(tag == "file/proc-ml" for _, tag in item.outputs)
    assert any("generate 12/12" in m for m in item.messages)

    downstream = WorkItem(index=3, attributes=item.attributes)    # PDG copies attributes down
    assets = tmp_path / "assets"
    shutil.copytree(downstream.stringAttribValue("proc_ml_generate_out") + "/grids", assets)
    (assets / "broken.obj").write_text("not a mesh\n")
    run_cli(downstream, ["batch", assets, "--model", tiny_massing_unet_onnx, "--out",
                         tmp_path / "results"], cli=CLI, env=ENV)
    attrs = downstream.attributes
    assert (attrs["proc_ml_batch_counts_ok"], attrs["proc_ml_batch_counts_failed"]) == (12, 1)
    assert attrs["proc_ml_batch_exit_code"] == 2 and attrs["proc_ml_batch_failed"] == 1
    assert any(p.endswith("manifest.jsonl") for p, _ in downstream.outputs)
    assert any("broken.obj" in m for m in downstream.messages)
    with pytest.raises(ProcMLError, match="broken.obj"):
        run_cli(WorkItem(), ["batch", assets, "--model", tiny_massing_unet_onnx, "--out",
                             tmp_path / "results"], cli=CLI, env=ENV, fail_on_failed_assets=True)


def test_a_failing_command_fails_the_work_item_with_the_one_line_error(tmp_path):
    item = WorkItem()
    with pytest.raises(ProcMLError, match=r"proc-ml train: error: .*dataset"):
        run_cli(item, ["train", "building-parts", "--data", tmp_path / "nothing", "--out",
                       tmp_path / "run"], cli=CLI, env=ENV)
    assert len(item.errors) == 1 and item.errors[0].startswith("proc-ml train: error:")
    assert item.outputs == []
    item = WorkItem()
    with pytest.raises(ProcMLError, match="PROC_ML_CLI"):
        run_cli(item, ["info", "x.onnx"], cli=str(tmp_path / "no-such-proc-ml"))


def test_the_cli_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PROC_ML_CLI", "/opt/proc ml/bin/python -m proc_ml")
    assert cli_command() == ["/opt/proc", "ml/bin/python", "-m", "proc_ml"]
    monkeypatch.setenv("PROC_ML_CLI", "'/opt/proc ml/bin/proc-ml'")
    assert cli_command() == ["/opt/proc ml/bin/proc-ml"]
    monkeypatch.delenv("PROC_ML_CLI")
    assert cli_command() == ["proc-ml"] and cli_command(["a", "b"]) == ["a", "b"]


def test_the_houdini_page_scripts_use_run_cli_with_the_documented_attributes():
    """Every Python Script TOP script on docs/houdini.md compiles, calls run_cli, and reads
    only attributes an earlier stage sets."""
    text = (ROOT / "docs" / "houdini.md").read_text(encoding="utf-8")
    section = text[text.index("## 6. PDG / TOPs"):text.index("## 7. GPU")]
    scripts = [textwrap.dedent(code) for code in re.findall(r"```python\n(.*?)```", section, re.S)]
    assert len(scripts) >= 4
    set_so_far = set()
    for code in scripts:
        compile(code, "houdini.md", "exec")
        if "run_cli(" not in code:
            continue
        for name in re.findall(r'stringAttribValue\("([^"]+)"\)', code):
            assert name in set_so_far, f"{name} is read before a stage sets it"
        command = re.search(r'run_cli\(work_item, \["(\w+)"', code).group(1)
        set_so_far.add(f"proc_ml_{command}_out")
    assert {"proc_ml_generate_out", "proc_ml_train_out", "proc_ml_export_out",
            "proc_ml_batch_out"} <= set_so_far
