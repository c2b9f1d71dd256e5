"""Every learner's exported `few_shot` signature checks its episode in the graph.

Reloaded with `tf.saved_model.load` alone, a signature fed support labels that are not
0..N-1 with every class present (phantom classes, gaps, negatives, one class) or that do not
match the support examples raises `InvalidArgumentError` naming the input; a good episode
gives the learner's own probabilities.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.episode_checks import checked_episode

FEATURES = 4
BAD_LABELS = {
    "phantom class 0": [1, 1, 2, 2],
    "ten classes from two": [3, 3, 9, 9],
    "negative": [-1, -1, 0, 0],
    "one class": [0, 0, 0, 0],
}


def _encoder(seed: int = 0) -> keras.Model:
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(8, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(hidden))


def _classifier(ways: int = 3) -> keras.Model:
    inputs = keras.Input((FEATURES,))
    return keras.Model(inputs, keras.layers.Dense(ways, name="head")(keras.layers.Dense(8, activation="relu")(inputs)))


def _learner(kind: str):
    import tfmeta
    from tfmeta.fewshot.ensemble import FewShotEnsemble
    from tfmeta.metric.matching import MatchingNetwork
    from tfmeta.metric.relation import RelationNetwork

    shape = (FEATURES,)
    if kind == "siamese":
        return tfmeta.SiameseNetwork(encoder=_encoder(), input_shape=shape)
    if kind == "protonet":
        return tfmeta.PrototypicalNetwork(_encoder(), input_shape=shape)
    if kind == "matching":
        return MatchingNetwork(_encoder(), input_shape=shape)
    if kind == "relation":
        return RelationNetwork(_encoder(), input_shape=shape, hidden=(8, 4))
    if kind == "maml":
        return tfmeta.MAML(_classifier(), inner_lr=0.1, inner_steps=1, order=1, ways=3)
    if kind == "reptile":
        return tfmeta.Reptile(_classifier(), inner_lr=0.1, inner_steps=1, ways=3)
    if kind == "ensemble":
        return FewShotEnsemble([tfmeta.PrototypicalNetwork(_encoder(s), input_shape=shape) for s in (0, 5)])
    raise ValueError(kind)


def _episode(labels):
    rng = np.random.default_rng(0)
    support_x = rng.normal(size=(len(labels), FEATURES)).astype(np.float32)
    query_x = rng.normal(size=(3, FEATURES)).astype(np.float32)
    return support_x, np.asarray(labels, np.int32), query_x


def _call(signature, support_x, support_y, query_x):
    return signature(support_x=tf.constant(support_x), support_y=tf.constant(support_y),
                     query_x=tf.constant(query_x))["probabilities"].numpy()


def assert_signature_checks_its_episode(signature, good_probabilities=None, good_labels=(0, 0, 1, 1)):
    """Feeds a reloaded `few_shot` signature a good episode and every bad one."""
    sx, sy, qx = _episode(good_labels)
    out = _call(signature, sx, sy, qx)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    if good_probabilities is not None:
        np.testing.assert_allclose(out, good_probabilities, rtol=1e-4, atol=1e-6)
    for case, labels in BAD_LABELS.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"`support_y` must hold the integer class ids 0\.\.N-1") as error:
            _call(signature, *_episode(labels))
        assert str(labels[0]) in error.value.message, (case, error.value.message)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one label per `support_x` example; expected.*4.*received.*5"):
        _call(signature, sx, np.array([0, 0, 1, 1, 1], np.int32), qx)
    bad_query = qx.copy()
    bad_query[0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="`query_x` must be finite"):
        _call(signature, sx, sy, bad_query)


@pytest.mark.parametrize("kind", ["siamese", "protonet", "matching", "relation", "maml", "reptile", "ensemble"])
def test_reloaded_few_shot_signature_rejects_bad_support_labels(kind, tmp_path):
    keras.utils.set_random_seed(0)
    learner = _learner(kind)
    good = _episode([0, 0, 1, 1])
    expected = learner.predict_few_shot(*good)
    path = learner.export(str(tmp_path / kind))
    signature = tf.saved_model.load(path).signatures["few_shot"]
    assert_signature_checks_its_episode(signature, expected)


def test_shared_toy_export_checks_labels_and_its_signature_refuses_other_shapes(exported_toy_model):
    signature = tf.saved_model.load(exported_toy_model[0] + "/1").signatures["few_shot"]
    rng = np.random.default_rng(1)
    sx = rng.random((4, 28, 28, 1), dtype=np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"received support_y =.*\[1 1 2 2\]"):
        signature(support_x=tf.constant(sx), support_y=tf.constant([1, 1, 2, 2]), query_x=tf.constant(sx))
    with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
        signature(support_x=tf.constant(sx), support_y=tf.constant([0, 0, 1, 1]), query_x=tf.zeros((2, 27, 28, 1)))


def test_checks_pass_good_episodes_unchanged_and_compile_with_xla():
    sx, sy, qx = _episode([1, 0, 2, 1, 0, 2])  # unordered labels are fine

    @tf.function(jit_compile=True)
    def compiled(a, b, c):
        return checked_episode(a, b, c)

    for fn in (checked_episode, compiled):
        out = fn(tf.constant(sx), tf.constant(sy), tf.constant(qx))
        for got, want in zip(out, (sx, sy, qx)):
            np.testing.assert_array_equal(got.numpy(), want)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_served_few_shot_signature_answers_bad_support_labels_with_400(exported_toy_model):
    """`tfmeta serve` refuses support labels [1, 1, 2, 2] with HTTP 400 and the signature's
    full message (TF Serving's error JSON)."""
    from tfmeta.serving import make_server

    server = make_server(exported_toy_model[0], "toy", port=0)
    with server.running():
        url = f"http://127.0.0.1:{server.port}/v1/models/toy:predict"
        sx = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32).tolist()
        body = {"signature_name": "few_shot", "inputs": {"support_x": sx, "support_y": [1, 1, 2, 2], "query_x": sx[:2]}}
        code, answer = _post(url, body)
        assert code == 400, (code, answer)
        assert "`support_y` must hold the integer class ids 0..N-1" in answer["error"], answer
        body["inputs"]["support_y"] = [0, 0, 1, 1]
        code, answer = _post(url, body)
        assert code == 200 and np.asarray(answer["outputs"]).shape == (2, 2), (code, answer)
