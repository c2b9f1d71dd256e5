"""ENAS weight sharing: the supernet computes exactly the chosen child, trains only its ops,
switches children without retracing, and a weight-sharing search learns and resumes."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.nas.cells import Cell, build_cell_model
from tfmeta.nas.digits import load_digits_splits
from tfmeta.nas.enas import (CHECKPOINT, SharedCellNetwork, UniformPathSampler, WeightSharingSearch,
                             architecture_indices, save_checkpoint)
from tfmeta.nas.space import MicroCellSpace

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
    network.set_architecture(arch)
    used, unused = network.op_variables(arch)
    assert used and unused
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, network(x, training=True)))
    grads = tape.gradient(loss, used + unused)
    norms = [0.0 if g is None else float(tf.norm(tf.convert_to_tensor(g))) for g in grads]
    assert all(n == 0.0 for n in norms[len(used):])
    assert sum(n > 0 for n in norms[: len(used)]) >= len(used) // 2  # a read-but-unused node may get none


def test_batch_norm_calibration_sets_the_childs_own_statistics(network):
    network.set_architecture(archs(1, seed=6)[0])
    for seed in (1, 2):  # the second call reuses the traced calibration
        x = np.random.default_rng(seed).random((32, *SHAPE)).astype("float32") * seed
        network.calibrate_batch_norm(x)
        stem = network.stem_conv(x).numpy()
        np.testing.assert_allclose(network.stem_bn.moving_mean.numpy(), stem.mean(axis=(0, 1, 2)), atol=1e-6)
        np.testing.assert_allclose(network.stem_bn.moving_variance.numpy(), stem.var(axis=(0, 1, 2)), atol=1e-6)
    assert network.stem_bn.momentum == 0.9  # restored


def test_uniform_path_sampler_trains_a_new_random_child_every_batch():
    space = MicroCellSpace(num_nodes=2, ops=("max_pool_3x3", "identity"))  # weightless ops: quick to trace
    keras.utils.set_random_seed(0)
    net = SharedCellNetwork(space, SHAPE, 5, filters=4, num_reductions=1)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, *SHAPE)).astype("float32"), rng.integers(0, 5, 32)
    trained = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: trained.append(net.architecture.numpy()))
    net.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
            callbacks=[UniformPathSampler(space, np.random.default_rng(7)), record])
    draws = np.random.default_rng(7)
    expected = [architecture_indices(space, space.sample(draws)) for _ in range(8)]
    assert len(trained) == 8
    for got, want in zip(trained, expected):  # each batch trained the next uniform draw
        np.testing.assert_array_equal(got, want)
    assert len({a.tobytes() for a in trained}) > 1


def test_errors():
    with pytest.raises(ValueError, match="space"):
        SharedCellNetwork(object(), SHAPE, 5)
    with pytest.raises(ValueError, match="input_shape"):
        SharedCellNetwork(SPACE, (8, 8), 5)
    with pytest.raises(ValueError, match="child_steps"):
        WeightSharingSearch(SPACE, SHAPE, 10, child_steps=0)
    with pytest.raises(ValueError, match="train_paths.*'every'"):
        WeightSharingSearch(SPACE, SHAPE, 10, train_paths="every")


def test_chief_worker_mode_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    with pytest.raises(RuntimeError, match="one independent supernet per worker.*'tuner0'"):
        WeightSharingSearch(SPACE, SHAPE, 5, directory=str(tmp_path))


def test_search_refuses_bad_data_and_another_networks_checkpoint(tmp_path):
    common = dict(directory=str(tmp_path), project_name="p", max_trials=1, seed=0, num_reductions=1)
    first = WeightSharingSearch(SPACE, SHAPE, 5, filters=4, **common)
    x, y = np.zeros((4, *SHAPE), "float32"), np.zeros(4, "int64")
    with pytest.raises(ValueError, match="same length"):
        first.search(x, y[:3], validation_data=(x, y))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 1\)"):
        first.search(x[:, :4], y, validation_data=(x, y))
    with pytest.raises(ValueError, match="validation_data"):
        first.search(x, y, validation_data=x)
    with pytest.raises(ValueError, match="validation_data"):
        first.score_children([SPACE.sample(np.random.default_rng(0))], validation_data=x)
    save_checkpoint(os.path.join(first.project_dir, CHECKPOINT), first.network)
    wider = WeightSharingSearch(SPACE, SHAPE, 5, filters=6, **common)  # same project, resumes
    with pytest.raises(ValueError, match="another network"):
        wider.search(x, y, validation_data=(x, y), verbose=0)
    # Shared weights trained one child per trial are not resumed as single-path ones.
    save_checkpoint(os.path.join(first.project_dir, CHECKPOINT), first.network, {"train_paths": "trial"})
    uniform = WeightSharingSearch(SPACE, SHAPE, 5, filters=4, train_paths="uniform", **common)
    with pytest.raises(ValueError, match="`train_paths='trial'`.*given `train_paths='uniform'`"):
        uniform.search(x, y, validation_data=(x, y), verbose=0)


def test_weight_sharing_search_learns_resumes_and_derives(tmp_path, count_train_step_traces):
    splits = load_digits_splits()
    (x, y), (xv, yv) = splits["train"], splits["val"]
    common = dict(strategy="controller", child_steps=16, filters=8, directory=str(tmp_path), project_name="enas",
                  seed=0, num_reductions=1, strategy_kwargs={"units": 16})

    space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))  # less to trace

    def make(max_trials):
        return WeightSharingSearch(space, SHAPE, 10, max_trials=max_trials,
                                   optimizer=keras.optimizers.Adam(1e-2), **common)

    first = make(6)
    traces = count_train_step_traces(first.network)
    first.search(x, y, validation_data=(xv, yv), verbose=0)
    records = first.completed()
    assert len(records) == 6
    assert len(traces) == 1  # six children, one trace: switching children never retraces
    # 96 shared steps of 64 images: the children's validation accuracy climbs far above chance.
    scores = [r["score"] for r in records]
    assert max(scores) > 0.5 and np.mean(scores[-2:]) > np.mean(scores[:2])
    assert os.path.exists(os.path.join(first.project_dir, CHECKPOINT))

    # Resume: a new process-like search on the same project reloads the trials, the controller
    # and the shared weights (not a fresh initialisation), then extends the search.
    trained = [v.numpy() for v in first.network.weights]
    second = make(6)
    second.search(x, y, validation_data=(xv, yv), verbose=0)  # nothing left to run: only reloads
    for a, b in zip(trained, second.network.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert second.oracle.strategy.get_state() == first.oracle.strategy.get_state()
    third = make(8)
    third.search(x, y, validation_data=(xv, yv), verbose=0)
    assert [r["trial_id"] for r in third.completed()[:6]] == [r["trial_id"] for r in records]
    assert len(third.completed()) == 8

    arch, accuracy = third.derive((xv, yv), top_k=2)
    assert accuracy > 0.5
    assert str(arch) in {r["arch"] for r in third.completed()}
    # score_children is the score derive() ranks by, and leaves the network's current child
    # and batch-norm statistics as they were.
    before = [v.numpy() for v in third.network.non_trainable_weights]
    assert third.score_children([arch], (xv, yv)) == [accuracy]
    for a, b in zip(before, third.network.non_trainable_weights):
        np.testing.assert_array_equal(a, b.numpy())
    model = third.build_best_model(arch)
    assert model.output_shape == (None, 10)
    with pytest.raises(RuntimeError, match="build_best_model"):
        third.best_model()
