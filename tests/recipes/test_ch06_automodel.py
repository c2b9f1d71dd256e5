"""Smoke test of recipes/ch06_automodel.py --quick: both walkthroughs run, export and agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ch06_quick(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "ch06_automodel.py"), "--quick", "--output", str(tmp_path / "sm")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("rank    score") == 2  # one leaderboard per walkthrough
    assert (tmp_path / "sm" / "ch06_digit_folder" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "sm" / "ch06_wine" / "1" / "tfmeta.json").exists()
