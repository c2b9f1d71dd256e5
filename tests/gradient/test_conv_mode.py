"""Grouped or split convolutions: `conv_mode="auto"` picks what this TensorFlow can differentiate."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import classification_batch, tiny_convnet
from tfmeta.gradient import functional
from tfmeta.gradient.functional import VectorizedRunner, grouped_conv_gradients_supported


def _grouped_conv_gradient_runs() -> bool:
    x = tf.random.normal([2, 6, 6, 6])
    k = tf.Variable(tf.random.normal([3, 3, 2, 9]))  # 3 groups
    try:
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(tf.square(tf.nn.conv2d(x, k, 1, "SAME")))
        return tape.gradient(y, k) is not None
    except tf.errors.InvalidArgumentError:
        return False


def test_the_probe_tells_the_truth_about_this_tensorflow():
    assert grouped_conv_gradients_supported("float32") == _grouped_conv_gradient_runs()


def test_auto_falls_back_to_split_with_a_warning(monkeypatch):
    monkeypatch.setattr(functional, "grouped_conv_gradients_supported", lambda dtype: False)
    with pytest.warns(UserWarning, match="cannot differentiate grouped convolutions in float32"):
        runner = VectorizedRunner(tiny_convnet())
    assert runner.conv_mode == "split"
    monkeypatch.setattr(functional, "grouped_conv_gradients_supported", lambda dtype: True)
    assert VectorizedRunner(tiny_convnet()).conv_mode == "grouped"


def test_bad_conv_mode_is_named():
    with pytest.raises(ValueError, match="`conv_mode` must be 'auto', 'grouped' or 'split'; received 'groups'"):
        VectorizedRunner(tiny_convnet(), conv_mode="groups")


def test_split_path_with_tasks_known_at_run_time_equals_static_split():
    """The per-task loop for a dynamic task axis gives the static split's outputs and gradients."""
    keras.utils.set_random_seed(5)
    net = tiny_convnet()
    runner = VectorizedRunner(net, conv_mode="split")
    (sx, _, _), _ = classification_batch(tasks=3)
    params = [tf.stack([v.value * (1.0 + 0.1 * i) for i in range(3)]) for v in runner.variables]

    def loss_and_grads(params, x):
        with tf.GradientTape() as tape:
            tape.watch(params)
            out = runner(params, x)
            loss = tf.reduce_sum(tf.square(out))
        return out, tape.gradient(loss, params)

    static_out, static_grads = tf.function(loss_and_grads)(params, sx)
    unknown_tasks = lambda t: tf.TensorSpec([None] + list(t.shape[1:]), t.dtype)  # noqa: E731
    dynamic = tf.function(
        loss_and_grads, input_signature=[[unknown_tasks(p) for p in params], unknown_tasks(sx)]
    )
    ops = {op.type for op in dynamic.get_concrete_function().graph.get_operations()}
    assert "While" in ops or "StatelessWhile" in ops  # the per-task loop, not the static split
    dynamic_out, dynamic_grads = dynamic(params, sx)
    np.testing.assert_allclose(dynamic_out.numpy(), static_out.numpy(), rtol=1e-5, atol=1e-6)
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in static_grads if g is not None)
    for a, b in zip(dynamic_grads, static_grads):
        if a is None or b is None:
            assert a is None and b is None
            continue
        # atol: float32 round-off on gradients that are 0 in exact arithmetic (conv biases
        # in front of batch-statistics BatchNorm).
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_split_meta_gradient_equals_the_per_task_loop():
    """Second-order MAML through split convolutions == the stateless_call reference."""
    keras.utils.set_random_seed(6)
    net = tiny_convnet()
    batch = classification_batch(tasks=3)
    split = tfmeta.MAML(net, inner_lr=0.4, inner_steps=2, fast_path=True, conv_mode="split")
    ref = tfmeta.MAML(net, inner_lr=0.4, inner_steps=2, fast_path=False)

    def grads(maml):
        with tf.GradientTape() as tape:
            loss = maml._meta_loss(batch, training=True)[0]
        return loss, tape.gradient(loss, net.trainable_variables)

    (l1, g1), (l2, g2) = grads(split), grads(ref)
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-4)
    for a, b, v in zip(g1, g2, net.trainable_variables):
        a = np.zeros(v.shape) if a is None else a.numpy()  # dropped conv biases: gradient 0
        np.testing.assert_allclose(a, b.numpy(), rtol=2e-3, atol=2e-5)
