"""ENAS weight-sharing search: refuses bad input and foreign checkpoints, learns, resumes and derives."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

from tfmeta.nas.cells import Cell
from tfmeta.nas.checkpoint import save_checkpoint
from tfmeta.nas.enas import CHECKPOINT, UniformPathSampler, WeightSharingSearch
from tfmeta.nas.space import MicroCellSpace
from tfmeta.nas.supernet import SharedCellNetwork, architecture_indices

SPACE = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "max_pool_3x3", "identity"))
SHAPE = (8, 8, 1)


def test_errors():
    with pytest.raises(ValueError, match="MicroCellSpace"):
        WeightSharingSearch(object(), SHAPE, 10)
    with pytest.raises(ValueError, match="child_steps"):
        WeightSharingSearch(SPACE, SHAPE, 10, child_steps=0)
    with pytest.raises(ValueError, match="train_paths.*'every'"):
        WeightSharingSearch(SPACE, SHAPE, 10, train_paths="every")


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


@pytest.mark.slow
def test_weight_sharing_search_learns_resumes_and_derives(digits, tmp_path, count_train_step_traces):
    (x, y), (xv, yv) = digits["train"], digits["validation"]
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
    model = third.build_best_model(arch, num_cells=2)
    assert model.output_shape == (None, 10)
    cells = [layer for layer in model.layers if isinstance(layer, Cell)]
    assert len(cells) == 2 * 2 + 1  # num_reductions=1 as searched, two normal cells per stage
    assert all(c.nodes == space.cell(arch, "reduce" if c.reduction else "normal") for c in cells)
    with pytest.raises(RuntimeError, match="build_best_model"):
        third.best_model()


def test_moved_supernet_names_keep_their_old_spelling():
    import tfmeta.nas.checkpoint as checkpoint
    import tfmeta.nas.enas as enas
    import tfmeta.nas.supernet as supernet

    for name, home in (("SharedCell", supernet), ("SharedCellNetwork", supernet), ("architecture_indices", supernet),
                       ("save_checkpoint", checkpoint), ("load_checkpoint", checkpoint)):
        with pytest.warns(DeprecationWarning, match=f"tfmeta.nas.enas.{name}"):
            assert getattr(enas, name) is getattr(home, name)
