"""The MAML meta-gradient is the true (second-order) gradient: checked by finite differences."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import classification_batch, regression_batch, tiny_convnet, tiny_regressor


def meta_loss(maml, batch):
    return maml._meta_loss(batch, training=True)[0]


def tape_gradient(maml, batch):
    with tf.GradientTape() as tape:
        loss = meta_loss(maml, batch)
    variables = maml.network.trainable_variables
    grads = tape.gradient(loss, variables)
    # The fast path drops conv biases that batch-statistics BN cancels: their gradient is 0.
    return [np.zeros(v.shape) if g is None else g.numpy() for g, v in zip(grads, variables)]


def finite_differences(maml, batch, eps=1e-5):
    grads = []
    for var in maml.network.trainable_variables:
        base = var.numpy()
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for sign in (1, -1):
                pert = base.copy()
                pert[idx] += sign * eps
                var.assign(pert)
                g[idx] += sign * float(meta_loss(maml, batch)) / (2 * eps)
            var.assign(base)
        grads.append(g)
    return grads


def max_rel_err(a, b):
    a, b = np.concatenate([x.ravel() for x in a]), np.concatenate([x.ravel() for x in b])
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_matches_finite_differences_first_order_does_not(steps):
    keras.utils.set_random_seed(1)
    net = tiny_regressor("float64")
    batch = regression_batch(dtype=np.float64)
    second = tfmeta.MAML(net, inner_lr=0.3, inner_steps=steps, order=2, fast_path=False)
    fd = finite_differences(second, batch)
    exact = tape_gradient(second, batch)
    assert max_rel_err(exact, fd) < 1e-6
    first = tfmeta.MAML(net, inner_lr=0.3, inner_steps=steps, order=1, fast_path=False)
    approx = tape_gradient(first, batch)
    assert max_rel_err(approx, fd) > 1e-2  # the second-order terms matter


def test_vectorised_path_matches_finite_differences():
    keras.utils.set_random_seed(2)
    net = tiny_regressor("float64")
    batch = regression_batch(dtype=np.float64, seed=3)
    maml = tfmeta.MAML(net, inner_lr=0.3, inner_steps=2, order=2, fast_path=True)
    assert maml.fast_path
    assert max_rel_err(tape_gradient(maml, batch), finite_differences(maml, batch)) < 1e-6


@pytest.mark.parametrize("order", [1, 2])
def test_vectorised_conv_path_equals_per_task_loop(order):
    """Grouped-convolution fast path (BN per task) == stateless_call loop: loss and meta-gradient."""
    keras.utils.set_random_seed(3)
    net = tiny_convnet()
    batch = classification_batch(tasks=3)
    fast = tfmeta.MAML(net, inner_lr=0.4, inner_steps=2, order=order, fast_path=True)
    ref = tfmeta.MAML(net, inner_lr=0.4, inner_steps=2, order=order, fast_path=False)
    assert fast.fast_path and not ref.fast_path
    np.testing.assert_allclose(float(meta_loss(fast, batch)), float(meta_loss(ref, batch)), rtol=1e-4)
    for a, b in zip(tape_gradient(fast, batch), tape_gradient(ref, batch)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize("order, fused_passes", [(2, 1), (1, 3)])
def test_fused_batch_norm_only_where_differentiated_once(order, fused_passes):
    """Second-order support passes keep the composite BN (the fused kernel's gradient of its
    gradient is wrong on CPU); query passes, and every pass of first order, use the fused one."""
    keras.utils.set_random_seed(4)
    maml = tfmeta.MAML(tiny_convnet(), inner_lr=0.4, inner_steps=2, order=order, fast_path=True)
    batch = classification_batch(tasks=2)

    @tf.function
    def meta_gradient(batch):
        with tf.GradientTape() as tape:
            loss = meta_loss(maml, batch)
        return tape.gradient(loss, maml.network.trainable_variables)

    graph = meta_gradient.get_concrete_function(batch).graph
    ops = [op.type for op in graph.get_operations()]
    bn_layers = 2
    assert ops.count("FusedBatchNormV3") == fused_passes * bn_layers


def test_mixed_bfloat16_model_runs_on_the_fast_path_in_bfloat16():
    """A `mixed_bfloat16` model keeps float32 weights and computes convs in bfloat16 on the
    vectorised path, matching the Keras per-task loop to bfloat16 precision."""
    keras.utils.set_random_seed(5)
    policy = "mixed_bfloat16"
    net = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", dtype=policy, name="conv"),
            keras.layers.BatchNormalization(dtype=policy),
            keras.layers.ReLU(dtype=policy),
            keras.layers.MaxPooling2D(2, dtype=policy),
            keras.layers.Flatten(dtype=policy),
            keras.layers.Dense(3, dtype=policy),
        ]
    )
    batch = classification_batch(tasks=2)
    fast = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2, fast_path=True)
    ref = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2, fast_path=False)
    assert all(v.dtype == "float32" for v in fast.trainable_variables)

    @tf.function
    def query_pass(sx):
        params = [tf.stack([v.value] * 2) for v in fast.runner.variables]
        return fast.runner(params, sx, differentiated_once=True)

    graph = query_pass.get_concrete_function(batch[0][0]).graph
    convs = [op for op in graph.get_operations() if op.type == "Conv2D"]
    assert convs and all(op.outputs[0].dtype == tf.bfloat16 for op in convs)
    np.testing.assert_allclose(float(meta_loss(fast, batch)), float(meta_loss(ref, batch)), rtol=3e-2)
    got, want = tape_gradient(fast, batch), tape_gradient(ref, batch)
    for v, a, b in zip(net.trainable_variables, got, want):
        if v.path.endswith("conv/bias"):
            # BN cancels this bias: its true gradient is 0, both values are rounding noise.
            assert np.linalg.norm(a) < 0.05 * np.linalg.norm(want[0])
            continue
        assert np.linalg.norm(a - b) < 0.02 * np.linalg.norm(b), v.path
