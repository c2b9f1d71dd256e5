"""Macro-layer and dense-block models are built as their architecture says; `build_model` picks the builder."""

from __future__ import annotations

import numpy as np
import pytest

from tfmeta.nas.builders import build_dense_model, build_macro_model, build_model
from tfmeta.nas.cells import Cell
from tfmeta.nas.space import Decision, DenseSpace, MacroSpace, MicroCellSpace, SearchSpace


def test_macro_model_builds_each_layers_digit():
    space = MacroSpace(num_layers=4)
    model = build_macro_model(space, space.from_key("2102"), (8, 8, 1), 10, filters=8)
    assert model.output_shape == (None, 10)
    assert model(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 10)
    names = {layer.name for layer in model.layers}
    # Stages change before layers n//3 = 1 and 2n//3 = 2: stride-2 convs doubling the filters.
    assert {"down1", "down2"} <= names and model.get_layer("down2").filters == 32
    # Digit 2 = MobileNetV2 k5 e6, 1 = k3 e3 (at the stage's filters), 0 = identity (no layer).
    for i, kernel, expanded in ((0, 5, 8 * 6), (1, 3, 16 * 3), (3, 5, 32 * 6)):
        assert model.get_layer(f"layer{i}_dw").kernel_size == (kernel, kernel)
        assert model.get_layer(f"layer{i}_expand").filters == expanded
    assert not [n for n in names if n.startswith("layer2_")]
    # Another key, another network.
    other = build_macro_model(space, space.from_key("0000"), (8, 8, 1), 10, filters=8)
    assert other.count_params() < model.count_params()
    assert not [layer for layer in other.layers if layer.name.startswith("layer")]


def test_dense_model_has_the_searched_widths_and_dropout():
    space = DenseSpace(num_layers=3)
    for seed in range(3):
        arch = space.sample(np.random.default_rng(seed))
        model = build_dense_model(space, arch, (13,), 1, final_activation=None)
        assert model.output_shape == (None, 1)
        layers = space.layers(arch)
        dense = [layer for layer in model.layers if layer.name.startswith("dense")]
        assert [d.units for d in dense] == [u for u, _ in layers if u]
        dropout = [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"]
        assert dropout == [p for u, p in layers if u and p]
    skip_all = space.from_dict({f"layer{i}/{k}": 0 for i in range(3) for k in ("units", "dropout")})
    assert [layer.name for layer in build_dense_model(space, skip_all, (13,), 2).layers][1:] == ["head"]


def test_build_model_dispatches_on_the_space():
    cells = MicroCellSpace(num_nodes=2, ops=("identity", "max_pool_3x3"))
    model = build_model(cells, cells.sample(np.random.default_rng(0)), (8, 8, 1), 10, filters=4)
    assert any(isinstance(layer, Cell) for layer in model.layers)
    macro = MacroSpace(num_layers=3)
    assert build_model(macro, macro.from_key("120"), (8, 8, 1), 10).name == "macro_net"
    dense = DenseSpace(num_layers=2)
    assert build_model(dense, dense.sample(np.random.default_rng(0)), (5,), 3).name == "dense_net"
    custom = SearchSpace([Decision("units", (8, 16))])
    with pytest.raises(ValueError, match="own build function"):
        build_model(custom, custom.decode([0]), (8,), 2)
    with pytest.raises(ValueError, match="space"):
        build_model(object(), None, (8,), 2)


def test_errors():
    macro, dense = MacroSpace(num_layers=2), DenseSpace(num_layers=2)
    with pytest.raises(ValueError, match="MacroSpace"):
        build_macro_model(dense, None, (8, 8, 1), 10)
    with pytest.raises(ValueError, match="DenseSpace"):
        build_dense_model(macro, None, (8,), 10)
    with pytest.raises(ValueError, match="outputs"):
        build_dense_model(dense, dense.sample(np.random.default_rng(0)), (8,), 0)
    odd = MacroSpace(num_layers=2, ops=("identity", "conv_3x3"))
    with pytest.raises(ValueError, match="Unknown macro op 'conv_3x3'"):
        build_macro_model(odd, odd.from_key("11"), (8, 8, 1), 10)
