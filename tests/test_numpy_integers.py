"""numpy integers are accepted wherever Python integers are (and bools nowhere)."""

from __future__ import annotations

import numpy as np
import pytest

from tfmeta.nas.space import DenseSpace, MacroSpace, MicroCellSpace


def _int_arguments():
    from tfmeta.metric.protonet import PrototypicalNetwork
    from tfmeta.nas.controller import ControllerRNN
    from tfmeta.nas.strategies import EvolutionStrategy

    three = np.int64(3)
    return {
        "MacroSpace(num_layers)": (lambda v: MacroSpace(num_layers=v).num_layers),
        "DenseSpace(num_layers)": (lambda v: DenseSpace(num_layers=v).num_layers),
        "MicroCellSpace(num_nodes)": (lambda v: MicroCellSpace(num_nodes=v).num_nodes),
        "EvolutionStrategy(population_size)": (
            lambda v: EvolutionStrategy(MacroSpace(), population_size=v, sample_size=np.int32(2)).population_size),
        "ControllerRNN(units)": (lambda v: ControllerRNN([3, 3], units=v).units),
        "PrototypicalNetwork(refine_steps)": (lambda v: PrototypicalNetwork(input_shape=(28, 28, 1), refine_steps=v).refine_steps),
    }, three


@pytest.mark.parametrize("name", ["MacroSpace(num_layers)", "DenseSpace(num_layers)", "MicroCellSpace(num_nodes)",
                                  "EvolutionStrategy(population_size)", "ControllerRNN(units)",
                                  "PrototypicalNetwork(refine_steps)"])
def test_numpy_integer_is_taken_as_int_and_bool_refused(name):
    makers, three = _int_arguments()
    value = makers[name](three)
    assert value == 3 and type(value) is int, (name, value, type(value))
    with pytest.raises(ValueError):
        makers[name](True)


def test_automodel_accepts_numpy_integers(monkeypatch, tmp_path):
    import tfmeta
    from tfmeta.automodel import similarity

    seen = {}
    monkeypatch.setattr(similarity, "fit", lambda am, *a, **k: seen.update(am.get_params()))
    x = np.random.default_rng(0).random((40, 4), dtype=np.float32)
    tfmeta.AutoModel(task="similarity", max_trials=np.int64(3), epochs=np.int32(2), steps_per_epoch=np.int64(5),
                     ways=np.int64(2), shots=np.int64(1), seed=np.int64(0), learning_rate=np.int64(1),
                     directory=str(tmp_path), verbose=0).fit(x, np.arange(40) % 2)
    assert seen["max_trials"] == 3
