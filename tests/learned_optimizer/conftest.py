"""Shared fixtures of the learned-optimizer tests: one small rule meta-trained on quadratics."""

import pytest


@pytest.fixture(scope="session")
def quadratic_rule_and_history():
    """A rule meta-trained (seeded) on random quadratics, 100 truncations of 10 steps."""
    import keras

    from tfmeta.learned_optimizer import CoordinatewiseLSTM, QuadraticFamily, meta_train

    keras.utils.set_random_seed(0)
    rule = CoordinatewiseLSTM()
    before = rule.get_weights()
    history = meta_train(rule, QuadraticFamily(), steps=100, unroll=10, horizon=50, learning_rate=3e-3,
                         seed=0, verbose=0)
    return rule, before, history
