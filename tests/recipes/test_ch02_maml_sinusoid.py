"""Smoke run of recipes/ch02_maml_sinusoid.py --quick (as CI runs it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_sinusoid_recipe_trains_scores_and_plots(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "ch02_maml_sinusoid.py"), "--quick",
         "--out-dir", str(tmp_path / "recipe_outputs")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 50 and result["shots"] == 10
    assert 0 < result["mse_1_step"] < 10 and result["ci95_1_step"] > 0
    assert (tmp_path / "recipe_outputs" / "ch02_maml_sinusoid.png").stat().st_size > 10_000
