"""Search children are trained with their train step traced once (`build_training_state`)."""

from __future__ import annotations

import keras

from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.search import ArchitectureSearch
from tfmeta.nas.space import MicroCellSpace


def test_search_children_trace_their_train_step_once(digits, tmp_path, count_train_step_traces):
    (x, y), (xv, yv) = digits["train"], digits["validation"]
    space = MicroCellSpace(num_nodes=2, ops=("max_pool_3x3", "identity"))  # weightless ops: quick to trace
    traces_per_child = []

    def child(arch):
        model = build_cell_model(space, arch, x.shape[1:], 10, filters=8)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        traces_per_child.append(count_train_step_traces(model))
        return model

    search = ArchitectureSearch(space, build_model=child, strategy="random", objective="val_accuracy",
                                max_trials=2, directory=str(tmp_path), project_name="trace", seed=0)
    search.search(x[:256], y[:256], validation_data=(xv[:128], yv[:128]), epochs=1, batch_size=64, verbose=0)
    assert len(search.completed()) == 2
    assert [len(traces) for traces in traces_per_child] == [1, 1]  # Keras alone: [2, 2]
