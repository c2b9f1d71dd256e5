"""Real search on digits: children train, the best is retrained and exported (serving_default).

`search_digits(weight_sharing=True)` runs end to end in `tests/recipes/test_ch05_controller_nas.py`
(ch05's ENAS section), which checks that `derive()` picks a searched child.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tfmeta.export import read_metadata
from tfmeta.nas.digits import load_digits_splits, search_digits

LOAD = """
import json, sys
import numpy as np
import tensorflow as tf
assert "tfmeta" not in sys.modules
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = m.signatures["serving_default"](x=tf.constant(x))
np.save(sys.argv[3], out["probabilities"].numpy())
np.save(sys.argv[4], out["classes"].numpy())
"""


def test_search_retrain_export_round_trip(tmp_path):
    result = search_digits("controller", max_trials=2, epochs=1, final_epochs=2, num_nodes=2, filters=8,
                           final_cells=1, final_filters=8, directory=str(tmp_path / "runs"),
                           export_dir=str(tmp_path / "sm"), seed=0, return_model=True)
    model = result.pop("model")
    assert result["trials"] == 2 and len(result["trial_scores"]) == 2
    assert max(result["trial_scores"]) == result["best_val_accuracy"]  # the best child is retrained
    json.dumps(result)
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["best_val_accuracy"] > 0.1
    meta = read_metadata(result["export_path"])
    assert meta["architecture_str"] == result["best_arch"] and "serving_default" in meta["signatures"]
    x_test, y_test = load_digits_splits()["test"]
    x = x_test[:32]
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", LOAD, result["export_path"], str(tmp_path / "x.npy"),
                    str(tmp_path / "p.npy"), str(tmp_path / "c.npy")], check=True, timeout=240)
    probs, classes = np.load(tmp_path / "p.npy"), np.load(tmp_path / "c.npy")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))
