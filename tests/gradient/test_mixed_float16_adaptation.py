"""Test-time adaptation under `mixed_float16` matches float32.

At test time (`adapt`, the `few_shot` signature) the inner loop differentiates the support loss
without a loss scale, so its backward pass runs in float16. The gradients shrink as the support
loss approaches zero; adapting until it nearly does is where a float16 gradient would flush to
zero, so the comparison runs there as well as after one step.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_convnet

import tfmeta

WAYS, SHOTS, QUERIES, SIZE = 3, 2, 3, 8
INNER_LR = 0.1


def maml(policy: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = tfmeta.MAML(tiny_convnet(WAYS, size=SIZE), inner_lr=INNER_LR, inner_steps=1, eval_steps=1)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    finally:
        keras.config.set_dtype_policy(previous)
    return model


@pytest.fixture(scope="module")
def models_and_task():
    reference, half = maml("float32"), maml("mixed_float16")
    half.set_weights(reference.get_weights())
    rng = np.random.default_rng(0)
    centres = rng.random((WAYS, SIZE, SIZE, 1))

    def draw(per_class):
        labels = np.repeat(np.arange(WAYS), per_class).astype("int32")
        return (centres[labels] + 0.3 * rng.random((len(labels), SIZE, SIZE, 1))).astype("float32"), labels

    return reference, half, draw(SHOTS), draw(QUERIES)


def cross_entropy(model, x, y) -> float:
    logits = tf.cast(model(x, training=False), tf.float32)
    return float(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))


@pytest.mark.parametrize("steps", [1, 20])
def test_adapted_losses_match_float32(models_and_task, steps):
    reference, half, (sx, sy), (qx, qy) = models_and_task
    want, got = reference.adapt(sx, sy, steps), half.adapt(sx, sy, steps)
    assert got.get_layer("conv1").compute_dtype == "float16"
    before = cross_entropy(reference.adapt(sx, sy, 0), sx, sy)  # the same support-set BN statistics
    support = cross_entropy(want, sx, sy)
    assert support < 0.8 * before  # adaptation really moved the weights
    if steps == 20:
        assert support < 0.05  # the regime of the smallest inner gradients
    np.testing.assert_allclose(cross_entropy(got, sx, sy), support, rtol=3e-2, atol=3e-3)
    np.testing.assert_allclose(cross_entropy(got, qx, qy), cross_entropy(want, qx, qy), rtol=3e-2, atol=3e-3)


def test_few_shot_probabilities_match_float32(models_and_task):
    reference, half, (sx, sy), (qx, _) = models_and_task
    want = reference.few_shot_core(tf.constant(sx), tf.constant(sy), tf.constant(qx))
    got = half.few_shot_core(tf.constant(sx), tf.constant(sy), tf.constant(qx))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-2)
