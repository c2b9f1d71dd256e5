"""Search small, transfer deep: a searched cell stacked deeper and wider trains on new data."""

from __future__ import annotations

import numpy as np
import pytest

from tfmeta.nas.cells import Cell
from tfmeta.nas.space import MicroCellSpace
from tfmeta.nas.transfer import cell_space_of, transfer


def test_transfer_stacks_the_cell_deeper_and_wider_and_trains(digits):
    space = MicroCellSpace(num_nodes=1, ops=("conv_3x3", "conv_1x1", "identity"))
    arch = space.from_dict({"normal/node0/in0": 1, "normal/node0/op0": "conv_3x3", "normal/node0/in1": 0,
                            "normal/node0/op1": "identity", "reduce/node0/in0": 1, "reduce/node0/op0": "conv_1x1",
                            "reduce/node0/in1": 1, "reduce/node0/op1": "identity"})
    rebuilt = cell_space_of(arch)
    assert rebuilt.num_nodes == 1 and rebuilt.cell(arch) == space.cell(arch)
    (x, y), (xt, yt) = digits["train"], digits["test"]
    model, history = transfer(arch, (x, y), cells=2, filters=12, epochs=3, learning_rate=1e-2,
                              validation_data=(xt, yt))
    cells = [layer for layer in model.layers if isinstance(layer, Cell)]
    # 8x8 digits: one reduction; two stages of 2 normal cells, filters 12 then 24.
    assert [c.reduction for c in cells] == [False, False, True, False, False]
    assert [c.filters for c in cells] == [12, 12, 24, 24, 24]
    assert all(c.nodes == space.cell(arch, "reduce" if c.reduction else "normal") for c in cells)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.5  # chance: 0.1


def test_transfer_rejects_a_non_cell_architecture():
    from tfmeta.nas.space import MacroSpace

    arch = MacroSpace(num_layers=2).from_key("12")
    with pytest.raises(ValueError, match="cell Architecture"):
        transfer(arch, (np.zeros((2, 8, 8, 1)), np.zeros(2)))


def test_batch_norm_momentum_lets_moving_statistics_follow_a_short_training():
    import keras

    from tfmeta.nas.transfer import fit_classifier

    rng = np.random.default_rng(0)
    x = (5.0 + rng.normal(size=(160, 4))).astype("float32")  # feature mean 5
    y = (x[:, 0] > 5).astype("int64")

    def moving_mean_after_fit(momentum):
        keras.utils.set_random_seed(0)
        inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])  # Keras default 0.99
        model = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2, activation="softmax")])
        fit_classifier(model, (x, y), epochs=1, batch_size=16, batch_norm_momentum=momentum)
        return float(np.mean(inner.layers[0].moving_mean))

    # 10 steps: at 0.99 the moving mean has moved about a tenth of the way; at 0.5 it has arrived.
    assert moving_mean_after_fit(None) < 1.0
    assert abs(moving_mean_after_fit(0.5) - 5.0) < 0.2
    with pytest.raises(ValueError, match="batch_norm_momentum"):
        fit_classifier(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), (x, y), 1,
                       batch_norm_momentum=1.0)
