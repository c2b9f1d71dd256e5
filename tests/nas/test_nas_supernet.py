"""The ENAS supernet computes exactly the chosen child, trains only its ops, switches children
without retracing, and gives each child its own batch-norm statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.nas.cells import Cell, build_cell_model
from tfmeta.nas.space import MicroCellSpace
from tfmeta.nas.supernet import SharedCellNetwork, architecture_indices

SPACE = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "max_pool_3x3", "identity"))
SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def network():
    keras.utils.set_random_seed(0)
    return SharedCellNetwork(SPACE, SHAPE, 5, filters=4)


def archs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


def child_with_shared_weights(net: SharedCellNetwork, arch) -> keras.Model:
    """The standalone child model of `arch` (`build_cell_model`) holding the supernet's weights."""
    child = build_cell_model(SPACE, arch, SHAPE, 5, filters=4)
    child.get_layer("stem_conv").set_weights(net.stem_conv.get_weights())
    child.get_layer("stem_bn").set_weights(net.stem_bn.get_weights())
    child.get_layer("classifier").set_weights(net.classifier.get_weights())
    cells = [layer for layer in child.layers if isinstance(layer, Cell)]
    assert len(cells) == len(net.shared_cells)
    for small, shared in zip(cells, net.shared_cells):
        for name in ("pre0", "pre1"):
            if getattr(small, name) is not None:
                getattr(small, name).set_weights(getattr(shared, name).get_weights())
        for key, layer in small.op_layers.items():
            layer.set_weights(shared.op_layers[key].get_weights())
        # The supernet projects every node (read ones zeroed); the child only its loose ends.
        read = {n[0] for n in small.nodes} | {n[2] for n in small.nodes}
        loose = [k for k in range(len(small.nodes)) if k + 2 not in read]
        kernel, *bn = shared.project.get_weights()
        f = shared.filters
        rows = np.concatenate([kernel[:, :, k * f:(k + 1) * f, :] for k in loose], axis=2)
        small.project.set_weights([rows, *bn])
    return child


def test_supernet_computes_exactly_the_chosen_child(network):
    x = np.random.default_rng(1).random((6, *SHAPE)).astype("float32")
    outputs = []
    for arch in archs(4):
        network.set_architecture(arch)
        np.testing.assert_array_equal(network.architecture.numpy(), architecture_indices(SPACE, arch))
        got = network(x, training=False).numpy()
        want = child_with_shared_weights(network, arch)(x, training=False).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        outputs.append(got)
    assert not np.allclose(outputs[0], outputs[1])  # different children, different functions


def test_switching_children_does_not_retrace(network):
    x = tf.constant(np.random.default_rng(2).random((3, *SHAPE)).astype("float32"))
    forward = tf.function(lambda images: network(images, training=False))
    for arch in archs(3, seed=3):
        network.set_architecture(arch)
        np.testing.assert_allclose(forward(x).numpy(), network(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    assert forward.experimental_get_tracing_count() == 1


def test_only_the_chosen_ops_receive_gradients(network):
    x = np.random.default_rng(4).random((8, *SHAPE)).astype("float32")
    y = np.arange(8) % 5
    arch = archs(1, seed=5)[0]
    # Both cells read h[k-1], so every cell's output reaches the loss and every chosen op with
    # weights is on a path to it.
    assert all(any(1 in (n[0], n[2]) for n in SPACE.cell(arch, which)) for which in ("normal", "reduce"))
    network.set_architecture(arch)
    used, unused = network.op_variables(arch)
    assert used and unused
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, network(x, training=True)))
    grads = tape.gradient(loss, used + unused)
    norms = [0.0 if g is None else float(tf.norm(tf.convert_to_tensor(g))) for g in grads]
    assert all(n > 0.0 for n in norms[: len(used)])
    assert all(n == 0.0 for n in norms[len(used):])


def test_batch_norm_calibration_sets_the_childs_own_statistics(network):
    network.set_architecture(archs(1, seed=6)[0])
    for seed in (1, 2):  # the second call reuses the traced calibration
        x = np.random.default_rng(seed).random((32, *SHAPE)).astype("float32") * seed
        network.calibrate_batch_norm(x)
        stem = network.stem_conv(x).numpy()
        np.testing.assert_allclose(network.stem_bn.moving_mean.numpy(), stem.mean(axis=(0, 1, 2)), atol=1e-6)
        np.testing.assert_allclose(network.stem_bn.moving_variance.numpy(), stem.var(axis=(0, 1, 2)), atol=1e-6)
    assert network.stem_bn.momentum == 0.9  # restored


def test_errors():
    with pytest.raises(ValueError, match="space"):
        SharedCellNetwork(object(), SHAPE, 5)
    with pytest.raises(ValueError, match="input_shape"):
        SharedCellNetwork(SPACE, (8, 8), 5)
    with pytest.raises(ValueError, match="SharedCell needs `nodes`"):
        SharedCellNetwork(SPACE, SHAPE, 5, filters=4, num_reductions=0).shared_cells[0](
            [np.zeros((1, 8, 8, 4), "float32")] * 2)
