"""ReweightedModel: the meta-gradient against finite differences, and what the weights learn."""

import numpy as np
import pytest

import tfmeta  # noqa: F401  (environment defaults before TensorFlow)
import keras
import tensorflow as tf

from tfmeta.reweighting import ReweightedModel


def _blobs(n, seed, flip=0.0):
    """Two Gaussian blobs in 2-D; a fraction `flip` of the labels flipped (returned as a mask)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2)).astype("float32") + np.where(y[:, None] == 1, 1.5, -1.5)
    flipped = rng.random(n) < flip
    return x, np.where(flipped, 1 - y, y), flipped, y


def _tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])


def test_meta_gradient_matches_finite_differences():
    base = _tiny_model()
    clean_x, clean_y, _, _ = _blobs(20, seed=1)
    x, y, _, _ = _blobs(6, seed=2, flip=0.3)
    model = ReweightedModel(base, clean_x, clean_y, from_logits=True, virtual_learning_rate=0.5)
    analytic = model.example_weight_gradient(x, y).numpy()

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    theta = [v.numpy().astype("float64") for v in base.trainable_variables]

    def clean_loss_after(eps):
        variables = base.trainable_variables
        for v, t in zip(variables, theta):
            v.assign(t)
        with tf.GradientTape() as tape:
            weighted = tf.reduce_sum(tf.constant(eps, tf.float32) * keras.losses.sparse_categorical_crossentropy(
                y, base(x), from_logits=True))
        grads = tape.gradient(weighted, variables)
        for v, t, g in zip(variables, theta, grads):
            v.assign(t - 0.5 * g.numpy())
        value = float(loss(clean_y, base(clean_x)))
        for v, t in zip(variables, theta):
            v.assign(t)
        return value

    h = 1e-2
    numeric = np.array([(clean_loss_after(h * np.eye(6)[i]) - clean_loss_after(-h * np.eye(6)[i])) / (2 * h)
                        for i in range(6)])
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-4)
    assert np.abs(analytic).max() > 1e-3  # a real signal, not all zeros


def test_weights_downweight_mislabelled_examples_and_fit_learns_through_noise():
    clean_x, clean_y, _, _ = _blobs(20, seed=3)
    x, y, flipped, true_y = _blobs(400, seed=4, flip=0.4)
    model = ReweightedModel(_tiny_model(1), clean_x, clean_y, from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"])
    model.fit(x, y, batch_size=50, epochs=4, verbose=0, shuffle=False)
    weights = model.example_weights(x[:200], y[:200]).numpy()
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert weights[flipped[:200]].mean() < 0.5 * weights[~flipped[:200]].mean()

    test_x, _, _, test_y = _blobs(400, seed=5)
    reweighted = (np.argmax(model.predict(test_x, verbose=0), 1) == test_y).mean()
    plain = _tiny_model(1)
    plain.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    plain.fit(x, y, batch_size=50, epochs=4, verbose=0, shuffle=False)
    plain_accuracy = (np.argmax(plain.predict(test_x, verbose=0), 1) == test_y).mean()
    assert reweighted > 0.9
    assert reweighted >= plain_accuracy - 0.01


def test_bad_arguments_are_named():
    base = _tiny_model()
    with pytest.raises(ValueError, match="clean_y"):
        ReweightedModel(base, np.zeros((4, 2)), np.zeros(3))
    model = ReweightedModel(base, np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="loss"):
        model.compile(optimizer="sgd", loss="mse")
