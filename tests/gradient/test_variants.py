"""ANIL, Meta-SGD, MAML++ options and Reptile: each variant does what it claims."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import classification_batch, regression_batch, tiny_convnet, tiny_regressor


@pytest.mark.parametrize("fast_path", [True, False])
def test_anil_adapts_only_the_head_but_meta_learns_the_body(fast_path):
    net = tiny_regressor()
    batch = regression_batch(dtype=np.float32)
    (sx, sy, qx), qy = batch
    anil = tfmeta.MAML(net, inner_lr=0.5, inner_steps=2, inner_layers=["head"], fast_path=fast_path)
    params, _, _, _ = anil.inner_loop(sx, sy, 2, 2)
    for var, p in zip(net.trainable_variables, params):
        moved = np.abs(p.numpy() - var.numpy()[None]).max()
        if "head" in var.path:
            assert moved > 1e-4, var.path
        else:
            assert moved == 0.0, var.path  # body weights untouched by the inner loop
    with tf.GradientTape() as tape:
        loss = anil._meta_loss(batch, training=True)[0]
    grads = tape.gradient(loss, net.trainable_variables)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)


def test_unknown_inner_layer_is_a_value_error():
    with pytest.raises(ValueError, match="inner_layers"):
        tfmeta.MAML(tiny_regressor(), inner_layers=["nope"])


def test_meta_sgd_learning_rates_receive_gradients_and_change():
    net = tiny_regressor()
    batch = regression_batch(dtype=np.float32)
    maml = tfmeta.MAML(net, inner_lr=0.1, inner_steps=1, meta_sgd=True)
    assert [tuple(v.shape) for v in maml.inner_lr_vars] == [tuple(v.shape) for v in net.trainable_variables]
    with tf.GradientTape() as tape:
        loss = maml._meta_loss(batch, training=True)[0]
    grads = tape.gradient(loss, maml.inner_lr_vars)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)
    before = [v.numpy().copy() for v in maml.inner_lr_vars]
    maml.compile(keras.optimizers.Adam(1e-2))
    maml.train_on_batch(batch[0], batch[1])
    assert any(np.abs(v.numpy() - b).max() > 0 for v, b in zip(maml.inner_lr_vars, before))


def test_mamlpp_options_train_and_track_per_step_bn():
    net = tiny_convnet()
    batch = classification_batch()
    maml = tfmeta.MAML(
        net, inner_lr=0.2, inner_steps=2, learn_step_lrs=True, multi_step_loss=True,
        per_step_bn=True, bn_test_stats="running",
    )
    # one learning rate per step for every adapted variable (BN scale/offset are per-step instead)
    assert [tuple(v.shape) for v in maml.inner_lr_vars] == [(2,)] * (len(net.trainable_variables) - 4)
    with tf.GradientTape() as tape:
        loss = maml._meta_loss(batch, training=True)[0]
    kernel_lrs = [lr for lr, i in zip(maml.inner_lr_vars, maml.inner.adapted)
                  if "kernel" in maml.runner.variables[i].path]
    variables = kernel_lrs + maml.bn_step_gamma
    grads = tape.gradient(loss, variables)
    for g in grads:  # every step's learning rate and every step's BN scale is used
        assert g is not None and np.all(np.abs(g.numpy()).reshape(len(g.numpy()), -1).max(1) > 1e-6)
    maml.compile(keras.optimizers.Adam(1e-3))
    logs = maml.train_on_batch(batch[0], batch[1], return_dict=True)
    assert np.isfinite(logs["loss"])
    assert not np.allclose(maml.bn_step_mean[0].numpy(), 0.0)  # running stats updated


def test_mamlpp_with_more_test_steps_than_trained_steps_has_no_untrained_rows():
    maml = tfmeta.MAML(tiny_convnet(), inner_lr=0.2, inner_steps=1, eval_steps=3,
                       learn_step_lrs=True, per_step_bn=True)
    assert {tuple(v.shape) for v in maml.inner_lr_vars} == {(1,)}
    assert maml.bn_step_gamma[0].shape[0] == 2  # before the step and after the one trained step
    with tf.GradientTape() as tape:
        loss = maml._meta_loss(classification_batch(), training=True)[0]
    grads = tape.gradient(loss, maml.bn_step_gamma)
    for g in grads:  # every row is trained (a row only test-time steps used would get none)
        assert np.all(np.abs(g.numpy()).max(axis=1) > 1e-6)
    x, y = classification_batch()
    probs = maml.predict_few_shot(x[0][0], x[1][0], x[2][0])  # 3 test-time steps run
    assert np.all(np.isfinite(probs))


def test_per_step_bn_starts_from_the_wrapped_layers_scale_and_offset():
    """A pre-trained network keeps its BatchNormalization: the per-step rows copy it, so the
    model computes what the same model without per-step BN (and BN not adapted) computes."""
    net = tiny_convnet()
    rng = np.random.default_rng(0)
    bn_layers = [l for l in net._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    for layer in bn_layers:
        layer.gamma.assign(rng.uniform(0.5, 2.0, layer.gamma.shape).astype("float32"))
        layer.beta.assign(rng.normal(size=layer.beta.shape).astype("float32"))
    with_rows = tfmeta.MAML(net, inner_lr=0.2, inner_steps=2, per_step_bn=True)
    # per_step_bn leaves BN out of the inner loop; so does this model without it
    plain = tfmeta.MAML(net, inner_lr=0.2, inner_steps=2, inner_layers=["conv1", "conv2", "head"])
    for layer, gamma, beta in zip(bn_layers, with_rows.bn_step_gamma, with_rows.bn_step_beta):
        np.testing.assert_array_equal(gamma.numpy(), np.tile(layer.gamma.numpy(), (3, 1)))
        np.testing.assert_array_equal(beta.numpy(), np.tile(layer.beta.numpy(), (3, 1)))
    batch = classification_batch()
    np.testing.assert_allclose(
        with_rows._meta_loss(batch, training=False)[0].numpy(),
        plain._meta_loss(batch, training=False)[0].numpy(), rtol=1e-5,
    )


def test_multi_step_loss_weights_anneal_to_last_step():
    maml = tfmeta.MAML(tiny_regressor(), inner_steps=3, multi_step_loss=True, msl_anneal_steps=10)
    maml.compile(keras.optimizers.SGD(0.0))
    w0 = [float(w) for w in maml._msl_weights(3)]
    np.testing.assert_allclose(w0, [1 / 3] * 3, rtol=1e-6)
    maml.optimizer.iterations.assign(1000)
    w = [float(x) for x in maml._msl_weights(3)]
    assert w[-1] > 0.9 and w[0] == pytest.approx(0.01)


def test_reptile_meta_gradient_points_to_the_adapted_weights():
    net = tiny_regressor()
    (sx, sy, qx), qy = regression_batch(tasks=3, dtype=np.float32)
    reptile = tfmeta.Reptile(net, inner_lr=0.05, inner_steps=3)
    reptile.compile(keras.optimizers.SGD(0.5))
    theta = [v.numpy().copy() for v in net.trainable_variables]
    x, y = tf.concat([sx, qx], 1), tf.concat([sy, qy], 1)
    adapted, _, _, _ = reptile.inner_loop(x, y, 3, 0)
    reptile.train_on_batch((sx, sy, qx), qy)
    for v, t0, p in zip(net.trainable_variables, theta, adapted):
        expected = t0 + 0.5 * (p.numpy().mean(0) - t0)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments_name_the_argument():
    net = tiny_regressor()
    for kwargs, name in [
        ({"inner_lr": -1.0}, "inner_lr"), ({"inner_steps": 0}, "inner_steps"),
        ({"order": 3}, "order"), ({"meta_sgd": True, "learn_step_lrs": True}, "meta_sgd"),
        ({"bn_test_stats": "running"}, "bn_test_stats"),
    ]:
        with pytest.raises(ValueError, match=name):
            tfmeta.MAML(net, **kwargs)
    with pytest.raises(ValueError, match="per_step_bn"):
        tfmeta.MAML(net, per_step_bn=True, fast_path=False)


@pytest.mark.parametrize("head", ["zero_head", "proto_head", None])
def test_zero_and_proto_heads_make_predictions_independent_of_the_label_order(head):
    keras.utils.set_random_seed(0)
    net = tiny_convnet(ways=3)
    (sx, sy, qx), _ = classification_batch(tasks=1, ways=3, shots=2, queries=2)
    options = {head: True} if head else {}
    maml = tfmeta.MAML(net, inner_lr=0.3, inner_steps=2, **options)
    perm = np.array([2, 0, 1])  # class k is called perm[k]
    _, _, out, _ = maml.inner_loop(sx, sy, 2, 0, query_x=qx)
    _, _, out_perm, _ = maml.inner_loop(sx, tf.constant(perm[sy.numpy()]), 2, 0, query_x=qx)
    probs = tf.nn.softmax(out).numpy()
    relabelled = tf.nn.softmax(out_perm).numpy()[..., perm]  # back to the original labels
    if head:
        np.testing.assert_allclose(relabelled, probs, atol=1e-5)
    else:  # a random head favours some labels: the same support set predicts differently
        assert np.abs(relabelled - probs).max() > 1e-2


def test_zero_head_is_zero_and_not_meta_learned():
    keras.utils.set_random_seed(1)
    net = tiny_convnet(ways=3)
    batch = classification_batch(tasks=2, ways=3)
    maml = tfmeta.MAML(net, inner_lr=0.3, inner_steps=1, zero_head=True)
    head = net.get_layer("head")
    assert all(np.all(v.numpy() == 0) for v in head.trainable_variables)
    with tf.GradientTape() as tape:
        loss = maml._meta_loss(batch, training=True)[0]
    grads = tape.gradient(loss, net.trainable_variables)
    for var, g in zip(net.trainable_variables, grads):
        if "head" in var.path:
            assert g is None, var.path
        elif "conv" in var.path and "kernel" in var.path:
            assert g is not None and np.abs(g.numpy()).max() > 0, var.path
    body_before = net.get_layer("conv1").kernel.numpy().copy()
    maml.compile(keras.optimizers.Adam(1e-2))
    maml.train_on_batch(batch[0], batch[1])
    assert np.abs(net.get_layer("conv1").kernel.numpy() - body_before).max() > 0
    assert all(np.all(v.numpy() == 0) for v in head.trainable_variables)
    assert maml.adaptation_metadata()["zero_head"] is True


def test_zero_head_errors_name_the_argument():
    no_dense_head = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 8), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="zero_head.*Conv2D"):
        tfmeta.MAML(no_dense_head, zero_head=True)
    with pytest.raises(ValueError, match="zero_head.*inner_layers"):
        tfmeta.MAML(tiny_convnet(), zero_head=True, inner_layers=["conv2"])
    with pytest.raises(ValueError, match="zero_head"):
        tfmeta.Reptile(tiny_convnet(), zero_head=True)


def test_proto_head_before_any_step_is_the_prototypical_network_of_the_encoder():
    """Proto-MAML's starting head: softmax(2 c.f - |c|^2) = softmax(-|f - c|^2) over the
    support prototypes c, computed here by hand with the body as a Keras model."""
    keras.utils.set_random_seed(6)
    net = tiny_convnet(ways=4)  # 4 units, 3-way episodes: the empty class is masked
    (sx, sy, qx), _ = classification_batch(tasks=2, ways=3, shots=2, queries=3)
    maml = tfmeta.MAML(net, inner_lr=0.3, inner_steps=1, proto_head=True)
    assert all(np.all(v.numpy() == 0) for v in net.get_layer("head").trainable_variables)
    _, _, out, _ = maml.inner_loop(sx, sy, 0, 0, query_x=qx, ways=3)
    probs = tf.nn.softmax(out[..., :3]).numpy()
    body = keras.Sequential(net.layers[:-1])
    for t in range(2):
        support = body(sx[t], training=True).numpy()  # BN: the support set's statistics
        queries = body(qx[t], training=True).numpy()
        prototypes = np.stack([support[sy.numpy()[t] == k].mean(0) for k in range(3)])
        distances = ((queries[:, None] - prototypes[None]) ** 2).sum(-1)
        expected = tf.nn.softmax(-distances).numpy()
        np.testing.assert_allclose(probs[t], expected, atol=1e-4)
    assert maml.adaptation_metadata()["proto_head"] is True


def test_zero_eval_steps_score_the_starting_point():
    """`eval_steps=0`: Proto-MAML scores as its encoder's prototypical network (the inner
    loop run for 0 steps, checked above), and `adapt(steps=0)` returns the meta-learned weights."""
    keras.utils.set_random_seed(8)
    net = tiny_convnet(ways=3)
    (sx, sy, qx), _ = classification_batch(tasks=1, ways=3, shots=2, queries=3)
    maml = tfmeta.MAML(net, inner_lr=0.3, inner_steps=1, eval_steps=0, proto_head=True)
    _, _, out, _ = maml.inner_loop(sx, sy, 0, 0, query_x=qx)
    served = maml.predict_few_shot(sx[0].numpy(), sy[0].numpy(), qx[0].numpy())
    np.testing.assert_allclose(served, tf.nn.softmax(out[0]).numpy(), atol=1e-5)
    assert maml.adaptation_metadata()["inner_steps"] == 0

    plain = tfmeta.MAML(tiny_convnet(ways=3), inner_lr=0.3, inner_steps=1)
    adapted = plain.adapt(sx[0].numpy(), sy[0].numpy(), steps=0)
    for got, want in zip(adapted.trainable_variables, plain.network.trainable_variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    one_step = plain.adapt(sx[0].numpy(), sy[0].numpy(), steps=1)
    assert not np.allclose(one_step.get_layer("head").kernel.numpy(),
                           plain.network.get_layer("head").kernel.numpy())
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 0; received -1"):
        plain.adapt(sx[0].numpy(), sy[0].numpy(), steps=-1)
    with pytest.raises(ValueError, match=r"`eval_steps` must be an integer >= 0"):
        tfmeta.MAML(tiny_convnet(ways=3), inner_steps=1, eval_steps=-2)


def test_proto_head_meta_gradient_matches_finite_differences():
    """The meta-gradient flows through the prototypes into the body (second order, float64);
    the unused head weights get none."""
    from test_meta_gradient import finite_differences, max_rel_err, tape_gradient

    keras.utils.set_random_seed(7)
    net = keras.Sequential(
        [
            keras.Input((4,), dtype="float64"),
            keras.layers.Dense(3, activation="tanh", dtype="float64", name="body"),
            keras.layers.Dense(3, dtype="float64", name="head"),
        ]
    )
    rng = np.random.default_rng(0)
    y = np.tile(np.repeat(np.arange(3), 2), (2, 1)).astype(np.int32)
    means = rng.normal(size=(2, 3, 4))
    x = lambda: tf.constant(np.stack([means[t][y[t]] for t in range(2)]) + 0.5 * rng.normal(size=(2, 6, 4)))  # noqa: E731
    batch = (x(), tf.constant(y), x()), tf.constant(y)
    maml = tfmeta.MAML(net, inner_lr=0.3, inner_steps=2, order=2, proto_head=True)
    exact = tape_gradient(maml, batch)
    fd = finite_differences(maml, batch)
    assert max_rel_err(exact, fd) < 1e-6
    assert np.abs(exact[0]).max() > 1e-3  # the body's kernel
    assert all(np.all(g == 0) for g in exact[2:])  # the head's kernel and bias


def test_proto_head_few_shot_compiles_with_xla():
    keras.utils.set_random_seed(8)
    maml = tfmeta.MAML(tiny_convnet(ways=3), inner_lr=0.3, inner_steps=2, proto_head=True)
    (sx, sy, qx), _ = classification_batch(tasks=1, ways=3, shots=1, queries=2)
    eager = maml.few_shot_core(sx[0], sy[0], qx[0]).numpy()
    xla = tf.function(maml.few_shot_core, jit_compile=True)(sx[0], sy[0], qx[0]).numpy()
    np.testing.assert_allclose(xla, eager, atol=1e-5)


def test_proto_head_errors_name_the_argument():
    with pytest.raises(ValueError, match="zero_head.*proto_head"):
        tfmeta.MAML(tiny_convnet(), zero_head=True, proto_head=True)
    with pytest.raises(ValueError, match="proto_head.*vectorised"):
        tfmeta.MAML(tiny_convnet(), proto_head=True, fast_path=False)
    no_bias = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False, name="head")])
    with pytest.raises(ValueError, match="proto_head.*use_bias=False"):
        tfmeta.MAML(no_bias, proto_head=True)
    with pytest.raises(ValueError, match="proto_head"):
        tfmeta.Reptile(tiny_convnet(), proto_head=True)
    regressor = tfmeta.MAML(tiny_regressor(), proto_head=True)
    (sx, sy, qx), _ = regression_batch(dtype=np.float32)
    with pytest.raises(ValueError, match="proto_head.*classification"):
        regressor.inner_loop(sx, sy, 1, 0, query_x=qx)
