"""Pair losses against hand-computed values (label 1 = same, no 1/2 factor)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.metric.losses import (
    ContrastiveLoss,
    KochBinaryCrossentropy,
    contrastive_loss,
    koch_binary_crossentropy,
)


def test_contrastive_same_pairs_are_squared_distance():
    # y = 1 (same): d**2, whatever the margin.
    got = contrastive_loss([1.0, 1.0, 1.0], [0.0, 0.5, 3.0], margin=1.0).numpy()
    np.testing.assert_allclose(got, [0.0, 0.25, 9.0], rtol=1e-6)


def test_contrastive_different_pairs_hinge_on_margin():
    # y = 0 (different): max(margin - d, 0)**2.
    got = contrastive_loss([0.0, 0.0, 0.0, 0.0], [0.0, 0.25, 2.0, 5.0], margin=2.0).numpy()
    np.testing.assert_allclose(got, [4.0, 3.0625, 0.0, 0.0], rtol=1e-6)


def test_contrastive_class_reduces_mean_and_has_config():
    loss = ContrastiveLoss(margin=1.5)
    # same d=1 -> 1; diff d=0.5 -> 1.0; diff d=2 -> 0; same d=0.2 -> 0.04
    y = np.array([1.0, 0.0, 0.0, 1.0])
    d = np.array([1.0, 0.5, 2.0, 0.2])
    assert float(loss(y, d)) == pytest.approx((1.0 + 1.0 + 0.0 + 0.04) / 4, rel=1e-6)
    # [B, 1] shapes give the same value.
    assert float(loss(y[:, None], d[:, None])) == pytest.approx(float(loss(y, d)))
    restored = ContrastiveLoss.from_config(loss.get_config())
    assert restored.margin == 1.5
    assert float(restored(y, d)) == pytest.approx(float(loss(y, d)))
    restored2 = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored2, ContrastiveLoss) and restored2.margin == 1.5


def test_contrastive_gradient_signs():
    d = tf.Variable([0.5, 0.5])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(contrastive_loss([1.0, 0.0], d, margin=1.0))
    g = tape.gradient(loss, d).numpy()
    # Same pair: d/dd d^2 = 2d = 1 (pull together); different: -2(m-d) = -1 (push apart).
    np.testing.assert_allclose(g, [1.0, -1.0], rtol=1e-6)


@pytest.mark.parametrize("margin", [0.0, -1.0])
def test_contrastive_rejects_bad_margin(margin):
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=margin)


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_koch_bce_hand_values():
    logits = [0.0, 2.0, -1.0, 3.0]
    y = [1.0, 1.0, 0.0, 0.0]
    expected = [
        -math.log(0.5),
        -math.log(sigmoid(2.0)),
        -math.log(1.0 - sigmoid(-1.0)),
        -math.log(1.0 - sigmoid(3.0)),
    ]
    np.testing.assert_allclose(koch_binary_crossentropy(y, logits).numpy(), expected, rtol=1e-5)
    probs = [sigmoid(z) for z in logits]
    np.testing.assert_allclose(
        koch_binary_crossentropy(y, probs, from_logits=False).numpy(), expected, rtol=1e-4
    )
    loss = KochBinaryCrossentropy()
    assert float(loss(y, logits)) == pytest.approx(np.mean(expected), rel=1e-5)
    # Agrees with Keras' own binary cross-entropy.
    ref = keras.losses.BinaryCrossentropy(from_logits=True)(
        np.array(y)[:, None], np.array(logits)[:, None]
    )
    assert float(loss(y, logits)) == pytest.approx(float(ref), rel=1e-5)


def test_koch_bce_is_stable_for_large_logits_and_serialises():
    got = koch_binary_crossentropy([1.0, 0.0], [100.0, -100.0]).numpy()
    assert np.all(np.isfinite(got)) and np.all(got < 1e-30 + 1e-6)
    got = koch_binary_crossentropy([0.0], [100.0]).numpy()
    assert got[0] == pytest.approx(100.0, rel=1e-6)
    loss = KochBinaryCrossentropy(from_logits=False)
    restored = KochBinaryCrossentropy.from_config(loss.get_config())
    assert restored.from_logits is False
