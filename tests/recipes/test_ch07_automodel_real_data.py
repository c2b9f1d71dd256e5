"""recipes/ch07_automodel_real_data.py --quick: a CSV table, raw text and an image folder, each
exported; the reloaded SavedModels, queried with raw rows, strings and PNG bytes, predict what
AutoModel predicted."""

import json

import numpy as np
import pytest
import tensorflow as tf


@pytest.mark.slow
def test_ch07_quick(run_recipe, data_dir, tmp_path):
    report = tmp_path / "ch07.json"
    run_recipe("ch07_automodel_real_data.py", "--quick", "--output", str(tmp_path / "sm"), "--json", str(report),
               data_dir=data_dir, timeout=900)
    results = json.loads(report.read_text())
    table = results["table"]
    served = tf.saved_model.load(table["export"]).signatures["serving_default"]
    inputs = served.structured_input_signature[1]
    assert {"pickup", "distance", "pickup_zone", "tip"} <= set(inputs) and "payment" not in inputs
    request = {k: tf.constant(np.asarray(v, dtype="float32") if inputs[k].dtype == tf.float32 else [str(s) for s in v])
               for k, v in table["request"].items()}
    out = served(**request)
    np.testing.assert_allclose(out["probabilities"].numpy(), table["probabilities"], atol=1e-5)
    assert [c.decode() for c in out["classes"].numpy()] == table["classes"]
    assert table["accuracy"] > 0.8  # cash vs card; the majority class is about 0.72
    text = results["text"]
    out = tf.saved_model.load(text["export"]).signatures["serving_default"](text=tf.constant(text["queries"]))
    np.testing.assert_allclose(out["probabilities"].numpy(), text["probabilities"], atol=1e-5)
    assert text["accuracy"] > 0.6
    images = results["images"]
    loaded = tf.saved_model.load(images["export"])
    encoded = loaded.signatures["serving_bytes"](image_bytes=tf.constant([open(f, "rb").read() for f in images["files"]]))
    np.testing.assert_allclose(encoded["probabilities"].numpy(), images["probabilities"], atol=1e-4)
    assert loaded.signatures["serving_default"].structured_input_signature[1]["images"].shape.as_list() == \
        [None, None, None, 1]  # any image size
