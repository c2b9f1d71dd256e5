"""recipes/ch06_automodel.py --quick: both walkthroughs run, and each export, reloaded with
`tf.saved_model.load`, predicts what the in-process AutoModel predicted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ch06_quick(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    report = tmp_path / "ch06.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "ch06_automodel.py"), "--quick", "--output", str(tmp_path / "sm"),
         "--json", str(report)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("rank    score") == 2  # one leaderboard per walkthrough
    results = json.loads(report.read_text())
    assert set(results) == {"image_folder", "table"}
    for name, export in (("image_folder", "ch06_digit_folder"), ("table", "ch06_wine")):
        result = results[name]
        assert Path(result["export"]) == tmp_path / "sm" / export / "1"
        serving = tf.saved_model.load(result["export"]).signatures["serving_default"]
        out = serving(**{result["input"]: tf.constant(np.asarray(result["x_test"], dtype=result["dtype"]))})
        np.testing.assert_allclose(out["probabilities"].numpy(), result["probabilities"], rtol=1e-5, atol=1e-6)
        classes = [c.decode() for c in out["classes"].numpy()]
        assert classes == result["classes"]  # the string class names, as AutoModel.predict gave them
        assert len(set(classes)) > 1 and result["test_accuracy"] > 0.3  # a trained model, not a constant
