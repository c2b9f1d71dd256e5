"""The inner loop on its own: hand-computed SGD steps, and the variables it owns."""

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import classification_batch, tiny_convnet, tiny_regressor
from tfmeta.gradient.inner_loop import InnerLoop


def _dense(units, features, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(units, name="head")])


def test_one_regression_step_is_the_hand_computed_sgd_update():
    """y = x w + b, support loss mean((y - t)^2) per task: w' = w - lr 2/S sum x (y - t)."""
    net = _dense(1, 2, seed=0)
    rng = np.random.default_rng(0)
    sx, sy = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 1))
    qx, qy = rng.normal(size=(3, 5, 2)), rng.normal(size=(3, 5, 1))
    loop = InnerLoop(net, inner_lr=0.1)
    c = lambda a: tf.constant(a, tf.float32)  # noqa: E731
    params, losses, out, _ = loop.run(c(sx), c(sy), 1, 2, query_x=c(qx), query_y=c(qy))
    w, b = (v.numpy().astype(np.float64) for v in net.trainable_variables)
    err = sx @ w + b - sy  # [T, S, 1]
    w1 = w - 0.1 * 2 / 4 * np.einsum("tsd,tsu->tdu", sx, err)
    b1 = b - 0.1 * 2 / 4 * err.sum(1)
    np.testing.assert_allclose(params[0].numpy(), w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params[1].numpy(), b1, rtol=1e-5, atol=1e-6)
    query = np.einsum("tqd,tdu->tqu", qx, w1) + b1[:, None]
    np.testing.assert_allclose(out.numpy(), query, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(losses[-1].numpy(), ((query - qy) ** 2).mean((1, 2)), rtol=1e-5)


def test_one_classification_step_with_meta_sgd_rates_is_the_hand_computed_update():
    """Cross-entropy on a Dense softmax head: dL/dW = x^T (softmax - onehot) / S, scaled
    element-wise by Meta-SGD's per-parameter rates."""
    net = _dense(3, 4, seed=1)
    rng = np.random.default_rng(1)
    sx = rng.normal(size=(2, 6, 4)).astype(np.float32)
    sy = np.tile(np.repeat(np.arange(3), 2), (2, 1)).astype(np.int32)
    loop = InnerLoop(net, inner_lr=0.3, meta_sgd=True)
    rates = [rng.uniform(0.1, 0.5, v.shape).astype(np.float32) for v in loop.lr_vars]
    for var, rate in zip(loop.lr_vars, rates):
        var.assign(rate)
    params = loop.run(tf.constant(sx), tf.constant(sy), 1, 1).params
    w, b = (v.numpy().astype(np.float64) for v in net.trainable_variables)
    logits = sx @ w + b
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    delta = (p - np.eye(3)[sy]) / 6  # [T, S, U]
    np.testing.assert_allclose(
        params[0].numpy(), w - rates[0] * np.einsum("tsd,tsu->tdu", sx, delta), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(params[1].numpy(), b - rates[1] * delta.sum(1), rtol=1e-5, atol=1e-6)


def test_inner_layers_leave_the_other_weights_at_the_meta_parameters():
    loop = InnerLoop(tiny_regressor(), inner_lr=0.5, inner_layers=["head"])
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 4, 1)).astype(np.float32))
    params = loop.run(x, x * 2.0, 2, 0).params
    for var, p in zip(loop.runner.variables, params):
        moved = np.abs(p.numpy() - var.numpy()[None]).max()
        assert (moved > 1e-4) == ("head" in var.path), var.path


def test_the_learner_tracks_saves_and_restores_the_inner_loops_variables(tmp_path):
    """MAML++'s per-step rates and BatchNorm rows belong to the inner loop; a model holding
    it trains them and writes them to its weights file."""
    keras.utils.set_random_seed(0)
    options = dict(inner_lr=0.2, inner_steps=2, learn_step_lrs=True, per_step_bn=True, bn_test_stats="running")
    maml = tfmeta.MAML(tiny_convnet(), **options)
    own = maml.inner.trainable_variables[: len(maml.inner.lr_vars)]
    assert all(a is b for a, b in zip(own, maml.inner_lr_vars))
    assert {id(v) for v in maml.inner.lr_vars + maml.inner.bn_step_mean} <= {id(v) for v in maml.weights}
    maml.compile(keras.optimizers.Adam(1e-2))
    batch = classification_batch()
    maml.train_on_batch(batch[0], batch[1])
    path = str(tmp_path / "maml.weights.h5")
    maml.save_weights(path)
    with h5py.File(path) as f:  # the wrapped model's weights keep their place in the file
        assert "inner/vars" in f and "encoder/layers" in f
    restored = tfmeta.MAML(tiny_convnet(), **options)
    restored.load_weights(path)
    for a, b in zip(maml.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(restored.bn_step_mean[0].numpy(), 0.0)


def test_weights_files_of_the_earlier_layout_still_load(tmp_path):
    """Before the inner loop was a layer, its variables were the learner's own: a file
    then held them at its root (`vars/`) instead of under `inner/vars/`."""
    keras.utils.set_random_seed(1)
    maml = tfmeta.MAML(tiny_regressor(), inner_lr=0.1, meta_sgd=True)
    for var in maml.inner_lr_vars:
        var.assign(np.full(var.shape, 0.37, np.float32))
    path = str(tmp_path / "old.weights.h5")
    maml.save_weights(path)
    with h5py.File(path, "a") as f:
        if "vars" in f:
            del f["vars"]
        f.move("inner/vars", "vars")
        del f["inner"]
    fresh = tfmeta.MAML(tiny_regressor(), inner_lr=0.1, meta_sgd=True)
    fresh.load_weights(path)
    for a, b in zip(maml.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="could not be loaded"):  # another configuration's file
        tfmeta.MAML(tiny_regressor(), inner_lr=0.1).load_weights(path)
