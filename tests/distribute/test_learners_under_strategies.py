"""Every learner trains with plain Keras under `MirroredStrategy`, with XLA and in `mixed_float16`.

Each test trains a tiny learner of every family a few SGD steps and compares with the same
learner trained on one device in float32 (`reference_runs`): over 2 replicas the meta-batch
is split, losses are scaled by the global batch and gradients all-reduced, so the weights
match one device's; XLA-compiled train steps give the same weights; under `mixed_float16`
the losses are scaled, so the weight change matches float32's (before, the
`LossScaleOptimizer` divided unscaled gradients by 2^15).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from learner_cases import CASES, DIM, darts, darts_batches, labelled, mirrored, reference_runs, train  # noqa: F401 (fixtures)

from tfmeta.learned_optimizer.optimizer import LearnedOptimizer

# XLA and mixed precision change no code path between MAML's variants (or between the NAS
# child and the supernet, both plain Keras steps), so to keep the suite fast those two are
# tested on one learner of each train step; the full-context matching network's float32
# LSTMs, for mixed precision, are the exception. Every learner runs under the strategy
# (the full-context matching network, slow to trace, only in mixed precision).
STRATEGY_CASES = sorted(set(CASES) - {"matching_full_context"})
XLA_CASES = ["siamese", "protonet", "distiller", "maml", "reptile", "nas_child", "darts", "reweighted"]
FLOAT16_CASES = ["siamese", "protonet", "matching_full_context", "distiller", "maml", "reptile", "nas_child",
                 "darts", "reweighted"]


def assert_weights_close(run, reference, atol):
    assert len(run.after) == len(reference.after)
    for got, want in zip(run.after, reference.after):
        np.testing.assert_allclose(got, want, atol=atol, rtol=1e-4)


def weight_change(run):
    return np.concatenate([(a - b).ravel() for a, b in zip(run.after, run.before)])


@pytest.mark.parametrize("name", STRATEGY_CASES)
def test_mirrored_over_two_replicas_matches_one_device(name, mirrored, reference_runs):
    reference = reference_runs(name)
    run = train(name, strategy=mirrored)
    assert np.abs(weight_change(reference)).max() > 1e-3  # the steps really trained
    np.testing.assert_allclose(run.losses, reference.losses, rtol=1e-4, atol=1e-5)
    assert_weights_close(run, reference, atol=1e-5)


@pytest.mark.parametrize("name", XLA_CASES)
def test_xla_compiled_train_step_matches(name, reference_runs):
    reference = reference_runs(name)
    run = train(name, jit_compile=True)
    np.testing.assert_allclose(run.losses, reference.losses, rtol=1e-4, atol=1e-5)
    assert_weights_close(run, reference, atol=1e-5)


@pytest.mark.parametrize("name", FLOAT16_CASES)
def test_mixed_float16_scales_the_loss_and_matches_float32(name, reference_runs):
    reference = reference_runs(name)
    run = train(name, policy="mixed_float16")
    np.testing.assert_allclose(run.losses, reference.losses, rtol=2e-2, atol=2e-2)
    change, expected = weight_change(run), weight_change(reference)
    # Unscaled losses gave steps ~2^15 times too small: the ratio would be ~3e-5, not ~1.
    ratio = np.linalg.norm(change) / np.linalg.norm(expected)
    assert 0.9 < ratio < 1.1, ratio
    np.testing.assert_allclose(change, expected, atol=2e-2 * np.abs(expected).max())


def test_second_order_darts_under_two_replicas_is_a_clear_error(mirrored):
    with mirrored.scope():
        net = darts(second_order=True)
        net.compile(optimizer=keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"second_order=True\) cannot train under a strategy of 2 replicas"):
        net.fit(darts_batches(), epochs=1, verbose=0)


def test_learned_optimizer_in_compile_takes_one_devices_steps_under_the_strategy(mirrored):
    """`tfmeta.LearnedOptimizer` (an untrained rule: the update only has to be the same) in
    `compile()` of a plain network: its LSTM states are per-variable optimizer slots."""
    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(1)
            net = keras.Sequential([keras.Input((DIM,)), keras.layers.Dense(8, activation="relu"),
                                    keras.layers.Dense(3)])
            net.compile(optimizer=LearnedOptimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = [w.copy() for w in net.get_weights()]
        losses = net.fit(labelled((DIM,), 3), epochs=3, verbose=0).history["loss"]
        return losses, before, net.get_weights()

    one_losses, one_before, one_after = run(tf.distribute.get_strategy())
    losses, _, after = run(mirrored)
    np.testing.assert_allclose(losses, one_losses, rtol=1e-4, atol=1e-5)
    assert max(np.abs(a - b).max() for a, b in zip(one_after, one_before)) > 1e-3  # it did update
    for got, want in zip(after, one_after):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
