"""Smoke run of recipes/ch01_siamese_omniglot.py --quick, as CI runs it."""

import json
from pathlib import Path

import pytest
import tensorflow as tf


@pytest.mark.slow
def test_quick_recipe_learns_exports_and_scores_the_export(tmp_path, data_dir, run_recipe, check_plot):
    run_recipe(
        "ch01_siamese_omniglot.py", "--quick",
        "--export-dir", str(tmp_path / "saved_models" / "omniglot_siamese"),
        "--out-dir", str(tmp_path / "recipe_outputs"),
        "--runs-dir", str(tmp_path / "runs"),
        "--tta-views", "3",
        data_dir=data_dir,
    )
    result = json.loads((tmp_path / "recipe_outputs" / "ch01_siamese_omniglot_quick.json").read_text())
    assert result["held_out_alphabets"] == ["Balinese", "Korean"]
    assert result["held_out_characters"] == 64 and result["train_classes"] == 712
    assert result["oneshot20_runs"] == 20 and result["oneshot20_trials"] == 400
    # It learned: on the same 400 held-out trials, the trained network beats an untrained one
    # of the same architecture (itself far above the 5% chance of 20 ways) by 5 points.
    untrained, trained = result["oneshot20_accuracy_untrained"], result["oneshot20_accuracy"]
    assert 0.2 < untrained and trained >= untrained + 0.05, (trained, untrained)
    # The exported SavedModel scores like the Keras model; error rate and accuracy agree.
    assert result["oneshot20_accuracy_keras_model"] == pytest.approx(trained, abs=1e-9)
    assert result["oneshot20_error_rate"] == pytest.approx(1.0 - trained, abs=1e-9)
    assert result["tta_views"] == 3 and 0.0 <= result["oneshot20_accuracy_views"] <= 1.0
    export = Path(result["export"])
    meta = json.loads((export / "tfmeta.json").read_text())
    assert meta["learner"] == "siamese" and set(meta["signatures"]) == {"serving_default", "few_shot"}
    # Size normalisation is in the graph: the SavedModel takes raw 105 x 105 drawings.
    assert result["ink_box"] == 34 and result["image_size"] == 40 and "ink bounding-box" in meta["preprocessing"]
    few_shot = tf.saved_model.load(str(export)).signatures["few_shot"]
    assert few_shot.structured_input_signature[1]["query_x"].shape.as_list() == [None, 105, 105, 1]
    assert (tmp_path / "runs" / "run20" / "class_labels.txt").exists()
    # 8 pairs of drawings over 1,280 x 360 pixels, with titles.
    pixels = check_plot(result["plot"], min_width=1200, min_height=300, min_levels=16)
    assert pixels.shape[:2] == (360, 1280)
    assert Path(result["weights"]).is_file()
