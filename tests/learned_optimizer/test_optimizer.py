"""LearnedOptimizer as a Keras optimizer: compile()/fit(), save/load, the rule's exact updates."""

import json

import keras
import numpy as np
import tensorflow as tf

from tfmeta.learned_optimizer import (
    CoordinatewiseLSTM, LearnedOptimizer, QuadraticFamily, optimization_curve, unrolled_losses,
)


def regression_data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = x @ rng.normal(size=(5, 1)).astype(np.float32) + 0.5
    return x, y


def test_compile_and_fit_train_a_new_model(quadratic_rule_and_history):
    rule, _, _ = quadratic_rule_and_history
    x, y = regression_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=LearnedOptimizer(rule), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    # A rule meta-trained only on 10-dimensional quadratics trains a 57-parameter network on
    # another problem: its training error falls at least fivefold.
    assert after < before / 5, (before, after)
    assert int(model.optimizer.iterations) == 40


def test_the_keras_optimizer_applies_the_rule_exactly(quadratic_rule_and_history):
    rule, _, _ = quadratic_rule_and_history
    family = QuadraticFamily()
    problem = family.sample(7)
    steps = 5
    curve = optimization_curve(LearnedOptimizer(rule), family, problem, steps, seed=0)
    data = {k: tf.constant(v) for k, v in problem.step_data(steps + 1, np.random.default_rng(0)).items()}
    theta = tf.constant(problem.theta0)
    losses, _, _ = unrolled_losses(rule, family.loss, theta, rule.initial_states(10), data, steps)
    np.testing.assert_allclose(curve[1:], losses.numpy(), rtol=1e-4)


def test_save_and_load_round_trip_gives_identical_updates(tmp_path, quadratic_rule_and_history):
    rule, _, _ = quadratic_rule_and_history
    original = LearnedOptimizer(rule, learning_rate=0.5)
    path = original.save(tmp_path / "learned.json")
    loaded = LearnedOptimizer.load(path)
    assert json.loads(open(path).read())["class_name"] == "LearnedOptimizer"
    assert loaded.rule is not rule and float(loaded.learning_rate) == 0.5

    def three_updates(optimizer):
        variables = [keras.Variable(np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32)),
                     keras.Variable(np.array([0.3, -0.2], np.float32))]
        for step in range(3):
            grads = [tf.sin(v.value * (step + 1)) for v in variables]
            optimizer.apply_gradients(zip(grads, variables))
        return [v.numpy() for v in variables]

    for a, b in zip(three_updates(original), three_updates(loaded)):
        np.testing.assert_array_equal(a, b)


def test_a_saved_keras_model_restores_the_learned_optimizer(tmp_path, quadratic_rule_and_history):
    rule, _, _ = quadratic_rule_and_history
    x, y = regression_data(1, n=16)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(optimizer=LearnedOptimizer(rule), loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(restored.optimizer, LearnedOptimizer)
    for a, b in zip(restored.optimizer.rule.get_weights(), rule.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Training continues from the same optimizer state: the same next step on both.
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    restored.fit(x, y, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(restored.get_weights()[0], model.get_weights()[0], rtol=1e-6)


def test_a_rule_of_another_type_is_refused():
    import pytest

    with pytest.raises(TypeError, match="rule"):
        LearnedOptimizer(rule=keras.layers.Dense(1))
    assert isinstance(LearnedOptimizer().rule, CoordinatewiseLSTM)
