"""Run the SOP scripts of ``hda_scripts/`` from an HDA's Python code (Houdini only).

An HDA built on a Python SOP holds just::

    from proc_ml.dcc.hda import run_script
    run_script("predict_parts_sop.py")

so the HDA stays a thin shell and the code is versioned with proc-ml. The script is
compiled once per file version and executed on every cook, as a Python SOP's code is.
"""

from __future__ import annotations

import os
from pathlib import Path

_compiled: dict = {}


def scripts_folder() -> Path:
    """``$PROC_ML_SCRIPTS`` (set by the proc_ml.json package), else the checkout's folder."""
    env = os.environ.get("PROC_ML_SCRIPTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "hda_scripts"


def run_script(name: str) -> None:
    import hou

    path = scripts_folder() / name
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise hou.NodeError(f"{path}: proc-ml SOP script not found (is the proc_ml.json "
                            f"package installed and PROC_ML set?)") from None
    key = str(path)
    cached = _compiled.get(key)
    if cached is None or cached[0] != stamp:
        cached = (stamp, compile(path.read_text(encoding="utf-8"), key, "exec"))
        _compiled[key] = cached
    exec(cached[1], {"__name__": "__main__", "__file__": key, "hou": hou})
