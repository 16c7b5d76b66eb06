"""``benchmarks/bench_dcc.py`` runs end to end on the installed model (one repeat, no
Blender): every path is timed, and the averaged inference stands beside one network run."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_dcc_reports_every_path(capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO / "tests" / "fake_hou"))
    import bench_dcc

    from proc_ml.runtime import default_model

    assert bench_dcc.main(["--model", str(default_model()), "--repeats", "1", "--no-blender"]) == 0
    out = capsys.readouterr().out
    assert "symmetry dihedral; cooked with model" in out
    lines = [line.strip() for line in out.splitlines()]
    for side in (16, 32):
        for path in ("houdini cook, voxel points", "houdini cook, polygons",
                     "features + inference (runtime, symmetry dihedral)",
                     "features + inference (runtime, one network run)"):
            row = [line for line in lines if line.startswith(f"{path} [{side}^3]")]
            assert len(row) == 1, (path, side)
            p50, p95 = map(float, row[0].split()[-2:])
            assert 0 < p50 <= p95
    assert "goal: warm 16^3 Houdini cook <= 10 ms" in out
    assert bench_dcc.main(["--model", str(default_model()), "--repeats", "1", "--no-blender",
                           "--symmetry", "none"]) == 0
    out = capsys.readouterr().out
    assert "runtime, symmetry none" in out and "one network run" not in out
