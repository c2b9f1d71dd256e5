"""ArchitectureSearch's hooks: suggested first architectures, and a custom fit per trial."""

import keras_tuner
import numpy as np

from tfmeta.nas.search import ArchitectureSearch
from tfmeta.nas.space import Decision, SearchSpace
from tfmeta.nas.strategies import make_strategy


def _space():
    return SearchSpace([Decision("units", (4, 8, 16)), Decision("batch_size", (8, 32))], name="hooks")


def test_suggested_architectures_come_first_once_and_survive_resume(tmp_path):
    space = _space()
    first = space.from_dict({"units": 16, "batch_size": 32})
    scores = {}

    def evaluate(arch):
        scores.setdefault(str(arch), len(scores))
        return {"score": float(arch["units"])}

    common = dict(evaluate=evaluate, strategy="random", objective=keras_tuner.Objective("score", "max"),
                  directory=str(tmp_path),
                  project_name="p", seed=0, initial_architectures=[first])
    search = ArchitectureSearch(space, max_trials=2, **common).search()
    order = [r["arch"] for r in search.results()]
    assert order[0] == str(first) and len(set(order)) == 2
    # Resumed with a larger budget: the suggestion was evaluated already, so it is not repeated.
    resumed = ArchitectureSearch(space, max_trials=4, **common).search()
    archs = [r["arch"] for r in resumed.results()]
    assert len(archs) == 4 and len(set(archs)) == 4 and archs[0] == str(first)


def test_strategies_propose_suggestions_before_their_own():
    space = _space()
    for name in ("random", "evolution", "controller"):
        strategy = make_strategy(name, space, seed=1)
        wanted = [space.from_dict({"units": 4, "batch_size": 8}), space.from_dict({"units": 8, "batch_size": 32})]
        strategy.suggest(wanted + wanted[:1])  # duplicates are queued once
        assert [strategy.propose() for _ in range(2)] == wanted
        strategy.observe(wanted[0], 1.0)
        state = strategy.get_state()
        again = make_strategy(name, space, seed=1)
        again.set_state(state)
        again.suggest(wanted)  # known or pending: nothing new is queued
        assert again.queued == []


def test_fit_model_trains_each_child_with_its_architecture(tmp_path):
    import keras

    space = _space()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    seen = []

    def build(arch):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(arch["units"], activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit_model(arch, model, *args, **kwargs):
        seen.append((arch["units"], arch["batch_size"]))
        return model.fit(x, y, validation_data=(x, y), batch_size=arch["batch_size"], **kwargs)

    search = ArchitectureSearch(space, build_model=build, fit_model=fit_model, strategy="random", max_trials=2,
                                directory=str(tmp_path), project_name="fit", seed=0)
    search.search(epochs=2, verbose=0)
    assert len(seen) == 2 and all(b in (8, 32) for _, b in seen)
    assert {str(space.from_dict({"units": u, "batch_size": b})) for u, b in seen} == \
        {r["arch"] for r in search.completed()}
