"""Search children are trained with their train step traced once (`build_training_state`)."""

from __future__ import annotations

from tfmeta.nas.digits import build_child_model, load_digits_splits
from tfmeta.nas.search import ArchitectureSearch
from tfmeta.nas.space import MicroCellSpace


def test_search_children_trace_their_train_step_once(tmp_path, count_train_step_traces):
    splits = load_digits_splits()
    (x, y), (xv, yv) = splits["train"], splits["val"]
    space = MicroCellSpace(num_nodes=2, ops=("max_pool_3x3", "identity"))  # weightless ops: quick to trace
    traces_per_child = []

    def child(arch):
        model = build_child_model(space, arch, x.shape[1:], filters=8)
        traces_per_child.append(count_train_step_traces(model))
        return model

    search = ArchitectureSearch(space, build_model=child, strategy="random", objective="val_accuracy",
                                max_trials=2, directory=str(tmp_path), project_name="trace", seed=0)
    search.search(x[:256], y[:256], validation_data=(xv[:128], yv[:128]), epochs=1, batch_size=64, verbose=0)
    assert len(search.completed()) == 2
    assert [len(traces) for traces in traces_per_child] == [1, 1]  # Keras alone: [2, 2]
