"""`tfmeta quickstart` end to end with a tiny budget: search, export, reload, score."""

import json
import os

import pytest

from tfmeta.cli import main


@pytest.mark.slow
def test_quickstart_exports_and_scores_through_the_reloaded_model(tmp_path, capsys):
    out = tmp_path / "saved_models" / "quickstart"
    code = main(["quickstart", "--max-trials", "1", "--epochs", "2", "--json",
                 "--output", str(out), "--directory", str(tmp_path / "runs")])
    assert code == 0
    text = capsys.readouterr().out
    result = json.loads(text[text.index("{"):])
    assert result["export_path"] == str(out / "1")
    assert os.path.exists(out / "1" / "saved_model.pb") and os.path.exists(out / "1" / "tfmeta.json")
    # Accuracy through the reloaded SavedModel agrees with the in-process Keras model.
    assert abs(result["test_accuracy"] - result["keras_test_accuracy"]) < 1e-9
    assert result["test_accuracy"] > 0.5  # 10 classes; two epochs of one child already learn
