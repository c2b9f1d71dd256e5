"""The coordinate-wise LSTM update rule, shape for shape against Andrychowicz et al. 2016."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.learned_optimizer import CoordinatewiseLSTM, preprocess_gradients


def test_preprocessing_is_log_magnitude_and_sign_above_exp_minus_p_and_linear_below():
    p = 10.0
    g = tf.constant([1.0, -math.exp(-5.0), 1e-6, -2e-5, 0.0, 100.0])
    features = preprocess_gradients(g, p).numpy()
    expected = [[0.0, 1.0], [-0.5, -1.0], [-1.0, math.exp(p) * 1e-6], [-1.0, -math.exp(p) * 2e-5],
                [-1.0, 0.0], [math.log(100.0) / p, 1.0]]
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-7)
    # Finite gradients through both branches, at zero too.
    with tf.GradientTape() as tape:
        tape.watch(g)
        total = tf.reduce_sum(preprocess_gradients(g, p))
    assert np.all(np.isfinite(tape.gradient(total, g).numpy()))


def test_the_paper_architecture_two_lstm_layers_of_20_units_a_linear_output_scaled_by_a_tenth():
    rule = CoordinatewiseLSTM()
    # Weights: LSTM(2 -> 20), LSTM(20 -> 20) (kernel, recurrent kernel, bias; 4 gates each), Dense(20 -> 1).
    assert [tuple(w.shape) for w in rule.weights] == [
        (2, 80), (20, 80), (80,), (20, 80), (20, 80), (80,), (20, 1), (1,)]
    states = rule.initial_states(7)
    assert len(states) == 4 and all(tuple(s.shape) == (7, 20) for s in states)
    g = tf.constant(np.random.default_rng(0).normal(size=7).astype(np.float32))
    update, new_states = rule(g, states)
    assert tuple(update.shape) == (7,) and all(tuple(s.shape) == (7, 20) for s in new_states)
    # The output is 0.1 x the linear layer on the top LSTM's h.
    linear = tf.squeeze(rule.output_layer(new_states[2]), -1)
    np.testing.assert_allclose(update.numpy(), 0.1 * linear.numpy(), rtol=1e-6)


def test_weights_are_shared_and_states_are_per_coordinate():
    rule = CoordinatewiseLSTM()
    rng = np.random.default_rng(1)
    g = tf.constant(rng.normal(size=6).astype(np.float32))
    states = tuple(tf.constant(rng.normal(size=(6, 20)).astype(np.float32)) for _ in range(4))
    together, together_states = rule(g, states)
    # Each coordinate alone, with its own state rows, gets the same update: the same weights
    # act on every coordinate and nothing mixes coordinates.
    for i in range(6):
        alone, alone_states = rule(g[i:i + 1], tuple(s[i:i + 1] for s in states))
        np.testing.assert_allclose(alone.numpy(), together.numpy()[i:i + 1], rtol=1e-5, atol=1e-7)
        for a, b in zip(alone_states, together_states):
            np.testing.assert_allclose(a.numpy(), b.numpy()[i:i + 1], rtol=1e-5, atol=1e-7)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="hidden_units"):
        CoordinatewiseLSTM(hidden_units=0)
    with pytest.raises(ValueError, match="preprocess_p"):
        CoordinatewiseLSTM(preprocess_p=0.0)
