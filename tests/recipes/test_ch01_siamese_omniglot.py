"""Smoke run of recipes/ch01_siamese_omniglot.py --quick (as CI runs it), < 60 s."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_recipe_trains_exports_and_scores(tmp_path, data_dir):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TFMETA_DATA_DIR=str(data_dir))
    start = time.time()
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "recipes" / "ch01_siamese_omniglot.py"),
            "--quick",
            "--data-dir", str(data_dir),
            "--export-dir", str(tmp_path / "saved_models" / "omniglot_siamese"),
            "--out-dir", str(tmp_path / "recipe_outputs"),
            "--runs-dir", str(tmp_path / "runs"),
            "--tta-views", "3",
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.time() - start
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "recipe_outputs" / "ch01_siamese_omniglot_quick.json").read_text())
    assert result["held_out_alphabets"] == ["Balinese", "Korean"]
    assert result["held_out_characters"] == 64 and result["train_classes"] == 712
    assert result["oneshot20_runs"] == 2 and result["oneshot20_trials"] == 40
    # The exported SavedModel scores exactly like the Keras model.
    assert result["oneshot20_accuracy"] == result["oneshot20_accuracy_keras_model"]
    assert result["tta_views"] == 3 and 0.0 <= result["oneshot20_accuracy_views"] <= 1.0
    assert abs(result["oneshot20_error_rate"] + result["oneshot20_accuracy"] - 1.0) < 1e-9
    export = Path(result["export"])
    assert (export / "saved_model.pb").exists() and (export / "tfmeta.json").exists()
    meta = json.loads((export / "tfmeta.json").read_text())
    assert meta["learner"] == "siamese" and set(meta["signatures"]) == {"serving_default", "few_shot"}
    # Size normalisation is in the graph: the SavedModel takes raw 105 x 105 drawings.
    assert result["ink_box"] == 34 and result["image_size"] == 40 and "ink bounding-box" in meta["preprocessing"]
    import tensorflow as tf

    few_shot = tf.saved_model.load(str(export)).signatures["few_shot"]
    assert few_shot.structured_input_signature[1]["query_x"].shape.as_list() == [None, 105, 105, 1]
    assert Path(result["plot"]).stat().st_size > 1000
    assert (tmp_path / "runs" / "run01" / "class_labels.txt").exists()
    print(f"ch01 --quick took {elapsed:.1f}s (recipe reports {result['total_seconds']}s)")
    assert elapsed < 180, elapsed  # generous: CI machines are shared; target is < 60 s
