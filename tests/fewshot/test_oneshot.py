"""`tfmeta oneshot-eval` (`tfmeta.fewshot.oneshot`) against an exported few-shot model."""

import json

import numpy as np
import pytest

from tfmeta.cli import main
from tfmeta.data.oneshot_runs import load_oneshot_runs


def test_oneshot_eval_json_matches_in_process_scoring(exported_toy_model, toy_few_shot_model, capsys):
    base, runs = exported_toy_model
    assert main(["oneshot-eval", "--model", base, "--runs", runs, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    correct = sum(
        int(np.sum(toy_few_shot_model.predict_few_shot(e.support_x, e.support_y, e.query_x).argmax(-1) == e.query_y))
        for e in load_oneshot_runs(runs)
    )
    assert result["trials"] == 60
    assert result["accuracy"] == pytest.approx(correct / 60)
    assert result["error_rate"] == pytest.approx(1 - correct / 60)
    # Even a random encoder beats 20-way chance (5%) on pixel statistics.
    assert result["accuracy"] > 0.05


def test_oneshot_eval_rejects_models_without_few_shot(tmp_path):
    import keras
    import tensorflow as tf

    from tfmeta.export import export_endpoints

    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    export_endpoints(str(tmp_path / "m"), m, {"serving_default": (lambda x: {"y": m(x)}, [tf.TensorSpec([None, 2], tf.float32, name="x")])}, {})
    with pytest.raises(ValueError, match="no 'few_shot' signature"):
        main(["oneshot-eval", "--model", str(tmp_path / "m"), "--runs", str(tmp_path)])
