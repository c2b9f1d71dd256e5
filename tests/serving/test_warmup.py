"""Exports in the layout tensorflow_model_server loads, with warm-up requests it replays."""

import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfmeta.serving.servable import Servable, read_signature_defs
from tfmeta.serving.warmup import (
    WARMUP_FILE,
    read_warmup_requests,
    replay_warmup_requests,
    write_warmup_requests,
)

PYTHON_ONLY_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def graph_ops(version_dir):
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        model = saved_model_pb2.SavedModel.FromString(f.read())
    graph = model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def test_a_classifier_export_has_tf_servings_layout_signatures_and_warmup(tiny_exports):
    version_dir = tiny_exports[1]
    base, version = os.path.split(version_dir)
    assert version.isdigit() and sorted(os.listdir(base)) == ["1", "2"]  # nothing half-written
    files = set(os.listdir(version_dir))
    assert {"saved_model.pb", "variables", "assets.extra", "tfmeta.json"} <= files
    assert "variables.index" in os.listdir(os.path.join(version_dir, "variables"))
    signatures = read_signature_defs(version_dir)
    default = signatures["serving_default"]
    assert list(default.inputs) == ["x"] and set(default.outputs) == {"probabilities", "classes"}
    assert default.method_name == "tensorflow/serving/predict"
    assert not graph_ops(version_dir) & PYTHON_ONLY_OPS

    with open(os.path.join(version_dir, WARMUP_FILE), "rb") as f:
        assert f.read(1)  # a TFRecord file, as tensorflow_model_server reads it
    (log,) = read_warmup_requests(version_dir)
    assert isinstance(log, prediction_log_pb2.PredictionLog)
    request = log.predict_log.request
    assert (request.model_spec.name, request.model_spec.signature_name) == ("clf", "serving_default")
    x = tf.make_ndarray(request.inputs["x"])
    answer = tf.saved_model.load(version_dir).signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(answer["probabilities"].numpy(), tiny_exports["models"][1].predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_few_shot_export_warms_up_both_signatures(tmp_path, toy_few_shot_model):
    version_dir = toy_few_shot_model.export(str(tmp_path / "toy"))
    names = {log.predict_log.request.model_spec.signature_name for log in read_warmup_requests(version_dir)}
    assert names == {"serving_default", "few_shot"}
    few_shot = read_signature_defs(version_dir)["few_shot"]
    assert set(few_shot.inputs) == {"support_x", "support_y", "query_x"}
    assert not graph_ops(version_dir) & PYTHON_ONLY_OPS
    servable = Servable.load("toy", 1, version_dir)  # replays them, as TF Serving does
    assert replay_warmup_requests(servable) == 2


def test_a_signature_that_zeros_cannot_feed_gets_no_warmup_request(tmp_path):
    def needs_two_rows(x):
        tf.debugging.assert_equal(tf.shape(x)[0], 2)
        return {"y": x}

    def identity(x):
        return {"y": x}

    spec = [tf.TensorSpec([None, 3], tf.float32, name="x")]
    names = write_warmup_requests(str(tmp_path), "m", {"picky": (needs_two_rows, spec), "serving_default": (identity, spec)})
    assert names == ["serving_default"]
    assert [log.predict_log.request.model_spec.signature_name for log in read_warmup_requests(str(tmp_path))] == ["serving_default"]
