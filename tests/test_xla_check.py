"""`tfmeta.xla_check` and `tfmeta check-export`: every exported signature compiles with XLA."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.export import export_endpoints
from tfmeta.xla_check import COMPILES, FAILS, HOST, check_export

SHAPE = (8, 8, 1)


def mlp_encoder():
    return tfmeta.backbones.mlp(SHAPE, hidden=(16, 8))


def maml_net(ways: int = 3):
    inputs = keras.Input(SHAPE)
    return keras.Model(inputs, keras.layers.Dense(ways)(keras.layers.Flatten()(inputs)))


LEARNERS = {
    "toy": lambda: None,  # the shared toy learner (tests/conftest.py)
    "prototypical": lambda: tfmeta.metric.PrototypicalNetwork(encoder=mlp_encoder(), input_shape=SHAPE),
    "matching": lambda: tfmeta.metric.MatchingNetwork(encoder=mlp_encoder(), input_shape=SHAPE),
    "relation": lambda: tfmeta.metric.RelationNetwork(encoder=mlp_encoder(), input_shape=SHAPE),
    "siamese": lambda: tfmeta.metric.SiameseNetwork(mlp_encoder(), input_shape=SHAPE),
    "maml": lambda: tfmeta.MAML(maml_net(), inner_lr=0.4, inner_steps=1, ways=3),
}


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_signature_of_a_learner_export_compiles(name, tmp_path, toy_few_shot_model):
    learner = toy_few_shot_model if name == "toy" else LEARNERS[name]()
    checks = check_export(learner.export(str(tmp_path / name)))
    assert {c.signature for c in checks} >= {"few_shot", "serving_default"}
    assert [(c.signature, c.status, c.reason) for c in checks] == [(c.signature, COMPILES, None) for c in checks]


def test_an_ensemble_of_exports_compiles(tmp_path, toy_few_shot_model_factory):
    from tfmeta.fewshot.ensemble import FewShotEnsemble

    paths = [toy_few_shot_model_factory(seed).export(str(tmp_path / f"m{seed}")) for seed in (1, 2)]
    checks = check_export(FewShotEnsemble(paths).export(str(tmp_path / "ensemble")))
    assert checks and all(c.status == COMPILES for c in checks), checks


def test_an_op_without_xla_kernel_fails_and_strings_are_host_preprocessing(tmp_path):
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"])
    lookup(tf.constant(["a"]))  # built

    def histogram(x):  # an op without an XLA kernel
        counts = tf.histogram_fixed_width(x, [0.0, 1.0], nbins=3)
        return {"y": layer(x) + tf.cast(counts, tf.float32)[None, :2]}

    def strings(words):
        return {"y": layer(tf.one_hot(lookup(words), 3))}

    def strings_then_histogram(words):
        return {"y": tf.histogram_fixed_width(tf.cast(lookup(words), tf.float32), [0.0, 3.0], nbins=3)}

    path = export_endpoints(str(tmp_path / "m"), [layer, lookup], {
        "serving_default": (histogram, [tf.TensorSpec([None, 3], tf.float32, name="x")]),
        "words": (strings, [tf.TensorSpec([None], tf.string, name="words")]),
        "words_histogram": (strings_then_histogram, [tf.TensorSpec([None], tf.string, name="words")]),
    }, {"task": "test"})
    checks = {c.signature: c for c in check_export(path)}
    assert checks["serving_default"].status == FAILS and not checks["serving_default"].ok
    assert checks["serving_default"].reason == "unsupported by XLA: HistogramFixedWidth"
    # Strings: the lookup runs on the host; the numbers it gives feed a part that XLA compiles,
    # or not.
    assert (checks["words"].status, checks["words"].numeric, checks["words"].ok) == (HOST, COMPILES, True)
    histogram = checks["words_histogram"]
    assert (histogram.status, histogram.numeric, histogram.ok) == (HOST, FAILS, False)
    assert histogram.numeric_reason == "unsupported by XLA: HistogramFixedWidth"

    from tfmeta.cli import main

    assert main(["check-export", path]) == 1
