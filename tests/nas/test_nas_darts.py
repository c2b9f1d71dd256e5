"""DARTS: mixed operations, the architecture step (first and second order), derivation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.darts import (
    NONE_OP, DartsNetwork, MixedOp, SkipConnectionStopping, cell_edges, derive_architecture, operation_mix,
    paired_batches,
)
from tfmeta.nas.space import MicroCellSpace

TINY = MicroCellSpace(num_nodes=1, ops=("conv_1x1", "identity"))


def test_mixed_op_is_the_softmax_weighted_sum_of_its_candidates():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    for strides, out_side in ((1, 6), (2, 3)):
        mixed = MixedOp((NONE_OP, "conv_1x1", "avg_pool_3x3"), 4, strides)
        mixed.build(x.shape)
        weights = keras.ops.softmax(keras.ops.convert_to_tensor([0.3, -1.0, 2.0]))
        np.testing.assert_allclose(float(keras.ops.sum(weights)), 1.0, rtol=1e-6)
        out = mixed(x, weights, training=False)
        assert tuple(out.shape) == (2, out_side, out_side, 4)
        expected = sum(float(weights[k]) * np.asarray(op(x, training=False))
                       for k, op in enumerate(mixed.candidates))
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)


def test_network_alphas_are_separate_from_the_weights_and_rows_sum_to_one():
    space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))
    net = DartsNetwork(space, (8, 8, 1), 3, filters=4, num_reductions=1)
    assert net(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 3)
    edges = len(cell_edges(2))
    for w in net.architecture_weights().values():
        assert w.shape == (edges, 3)  # none + two ops
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    arch_ids = {id(v) for v in net.arch_variables}
    assert not arch_ids & {id(v) for v in net.weight_variables}
    assert len(net.weight_variables) + 2 == len(net.trainable_variables)


def test_derivation_keeps_the_strongest_inputs_and_non_none_ops_and_caps_skips():
    space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "max_pool_3x3", "identity"))
    ops = (NONE_OP,) + space.ops
    edges = cell_edges(2)  # node0: in 0, 1; node1: in 0, 1, 2
    w = np.full((len(edges), len(ops)), 0.1)
    w[:, 0] = 0.9  # "none" dominates every edge, and must never be derived
    w[0, 1], w[1, 3] = 0.5, 0.6        # node0: sep3x3 on input 0, identity on input 1
    w[3, 3], w[4, 3], w[2, 2] = 0.7, 0.4, 0.3  # node1: identity on 1 and 2 beat input 0
    w[1, 2], w[3, 2], w[4, 1] = 0.2, 0.2, 0.35  # the runners-up of the identity edges
    arch = derive_architecture(space, {"normal": w, "reduce": w}, ops)
    assert space.cell(arch, "normal") == [(0, "sep_conv_3x3", 1, "identity"), (1, "identity", 2, "identity")]
    assert operation_mix(space, arch)["normal"] == {"sep_conv_3x3": 1, "identity": 3}
    capped = derive_architecture(space, {"normal": w, "reduce": w}, ops, max_skips=1)
    # The two weakest identity edges (0.4 and 0.6) switch to their best other op; 0.7 stays.
    assert space.cell(capped, "normal") == [(0, "sep_conv_3x3", 1, "max_pool_3x3"), (1, "identity", 2, "sep_conv_3x3")]
    assert space.cell(capped, "reduce") == space.cell(arch, "reduce")  # the cap is for the normal cell
    with pytest.raises(ValueError, match="max_skips"):
        derive_architecture(space, {"normal": w, "reduce": w}, ops, max_skips=-1)


def _tiny_batches(seed=0, n=16):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, 4, 1)).astype("float64")
    y = (x[:, :2].mean(axis=(1, 2, 3)) > 0).astype("int64")
    return x, y


@pytest.fixture
def float64():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(previous)


def test_second_order_gradient_matches_finite_differences_of_the_unrolled_loss(float64):
    import tensorflow as tf

    space = MicroCellSpace(num_nodes=1, ops=("conv_1x1", "avg_pool_3x3"), reduction=False)
    xi = 0.5
    # A tiny network with batch norm is far from linear over the paper's 0.01 perturbation; a
    # smaller one checks the formula itself (float64 keeps the difference accurate).
    net = DartsNetwork(space, (4, 4, 1), 2, filters=2, num_reductions=0, second_order=True,
                       unrolled_learning_rate=xi, finite_difference_scale=1e-5)
    for a in net.arch_variables:
        a.assign(np.random.default_rng(1).normal(scale=0.5, size=a.shape))
    train, val = _tiny_batches(0), _tiny_batches(1)
    weights = net.weight_variables
    w0 = [v.numpy() for v in weights]

    def unrolled_val_loss():  # L_val(w - xi * dL_train/dw, alpha), weights restored after
        grads, _, _ = net._gradients(*train, weights)
        for v, w, g in zip(weights, w0, grads):
            v.assign(w - xi * g)
        loss = float(net._loss(*val)[0])
        for v, w in zip(weights, w0):
            v.assign(w)
        return loss

    second, _, _ = net.architecture_gradients(train, val)
    for v, w in zip(weights, w0):  # the step restored the weights
        np.testing.assert_array_equal(v.numpy(), w)
    net.second_order = False
    first, _, _ = net.architecture_gradients(train, val)
    alpha = net.alphas["normal"]
    a0, h = alpha.numpy(), 1e-6
    numeric = np.zeros_like(a0)
    for idx in np.ndindex(*a0.shape):
        values = []
        for sign in (1, -1):
            a = a0.copy()
            a[idx] += sign * h
            alpha.assign(a)
            values.append(unrolled_val_loss())
        numeric[idx] = (values[0] - values[1]) / (2 * h)
    alpha.assign(a0)
    second, first = np.asarray(second[0]), np.asarray(first[0])
    scale = np.abs(numeric).max()
    assert np.abs(second - numeric).max() < 0.02 * scale  # the finite-difference Hessian term is accurate
    assert np.abs(first - numeric).max() > 5 * np.abs(second - numeric).max()  # and first order misses it
    assert tf.reduce_all(tf.math.is_finite(second))


def test_search_steps_alphas_and_weights_then_the_derived_cell_builds_and_trains(digits):
    (x, y), (xv, yv) = digits["train"], digits["validation"]
    net = DartsNetwork(TINY, (8, 8, 1), 10, filters=4, num_reductions=0, arch_learning_rate=0.05)
    net.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), jit_compile=False)
    before = {k: v.numpy().copy() for k, v in net.alphas.items()}
    stop = SkipConnectionStopping(max_skips=99)
    history = net.fit(paired_batches(x, y, xv, yv, batch_size=32), epochs=2, steps_per_epoch=10, verbose=0,
                      callbacks=[stop])
    assert set(history.history) == {"loss", "accuracy", "arch_loss", "arch_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(net.alphas["normal"].numpy(), before["normal"])
    assert stop.stopped_epoch == -1
    arch = net.derive()
    TINY.validate(arch)
    model = build_cell_model(TINY, arch, (8, 8, 1), 10, num_cells=1, filters=4, num_reductions=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", jit_compile=False)
    losses = model.fit(x, y, epochs=3, batch_size=64, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


def test_fit_needs_paired_batches():
    net = DartsNetwork(TINY, (8, 8, 1), 2, filters=2, num_reductions=0)
    net.compile(optimizer="sgd", jit_compile=False)
    with pytest.raises(ValueError, match="paired_batches"):
        net.fit(np.zeros((4, 8, 8, 1), "float32"), np.zeros(4, "int64"), epochs=1, verbose=0)


def test_skip_connection_stopping_fires_when_the_normal_cell_collapses_onto_identity():
    net = DartsNetwork(TINY, (8, 8, 1), 2, filters=2, num_reductions=0)
    stop = SkipConnectionStopping(max_skips=1)
    stop.set_model(net)
    net.stop_training = False  # as fit() sets it
    healthy = np.zeros(net.alphas["normal"].shape)
    healthy[:, net.candidate_ops.index("conv_1x1")] = 5.0
    net.alphas["normal"].assign(healthy)
    stop.on_epoch_end(0)
    assert stop.stopped_epoch == -1 and not net.stop_training
    collapsed = np.zeros(net.alphas["normal"].shape)
    collapsed[:, net.candidate_ops.index("identity")] = 5.0  # both edges of the node prefer identity
    net.alphas["normal"].assign(collapsed)
    stop.on_epoch_end(3)
    assert stop.stopped_epoch == 3 and net.stop_training
    assert operation_mix(TINY, net.derive(max_skips=1))["normal"] == {"identity": 1, "conv_1x1": 1}
