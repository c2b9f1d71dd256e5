"""Models built from sampled architectures: output shapes, training step, supernet cell."""

from __future__ import annotations

import numpy as np
import pytest

from tfmeta.nas.cells import Cell, build_cell_model, build_dense_model, build_macro_model, build_model
from tfmeta.nas.space import DenseSpace, MacroSpace, MicroCellSpace

SMALL = MicroCellSpace(num_nodes=3)


@pytest.mark.parametrize("seed,input_shape,num_cells,num_reductions", [(0, (8, 8, 1), 1, 2), (1, (9, 9, 3), 2, 1)])
def test_cell_model_shapes(seed, input_shape, num_cells, num_reductions):
    arch = SMALL.sample(np.random.default_rng(seed))
    model = build_cell_model(SMALL, arch, input_shape, 7, num_cells=num_cells, filters=8,
                             num_reductions=num_reductions)
    assert model.output_shape == (None, 7)
    cells = [layer for layer in model.layers if isinstance(layer, Cell)]
    assert len(cells) == num_cells * (num_reductions + 1) + num_reductions
    x = np.random.default_rng(0).random((3, *input_shape)).astype("float32")
    y = model(x).numpy()
    assert y.shape == (3, 7)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    # Reduction cells halve the spatial size and double the filters.
    reduce_cells = [c for c in cells if c.reduction]
    assert [c.filters for c in reduce_cells] == [8 * 2 ** (i + 1) for i in range(num_reductions)]


def test_deeper_transfer_has_more_cells_same_architecture():
    arch = SMALL.sample(np.random.default_rng(3))
    small = build_cell_model(SMALL, arch, (8, 8, 1), 10, num_cells=1, filters=8)
    big = build_cell_model(SMALL, arch, (8, 8, 1), 10, num_cells=2, filters=8)
    assert big.count_params() > small.count_params()
    normal = [c for c in big.layers if isinstance(c, Cell) and not c.reduction]
    assert all(c.nodes == SMALL.cell(arch, "normal") for c in normal)


def test_macro_and_dense_models():
    macro = MacroSpace(num_layers=4)
    model = build_macro_model(macro, macro.from_key("2102"), (8, 8, 1), 10, filters=8)
    assert model.output_shape == (None, 10)
    assert model(np.zeros((2, 8, 8, 1), "float32")).shape == (2, 10)
    dense = DenseSpace(num_layers=3)
    for seed in range(3):
        arch = dense.sample(np.random.default_rng(seed))
        m = build_dense_model(dense, arch, (13,), 1, final_activation=None)
        assert m.output_shape == (None, 1)
        n_dense = sum(1 for u, _ in dense.layers(arch) if u)
        assert sum(1 for layer in m.layers if layer.name.startswith("dense")) == n_dense
    with pytest.raises(ValueError, match="space"):
        build_model(object(), None, (8,), 2)


def test_supernet_cell_shares_weights_between_children():
    # A cell built without an architecture owns every candidate op (ENAS supernet); children
    # select ops by key and reuse the same weights.
    cell = Cell(None, filters=4, ops=("sep_conv_3x3", "identity"), num_nodes=2)
    x = np.random.default_rng(0).random((2, 6, 6, 4)).astype("float32")
    a = [(0, "sep_conv_3x3", 1, "identity"), (2, "identity", 0, "sep_conv_3x3")]
    b = [(1, "identity", 1, "identity"), (0, "sep_conv_3x3", 2, "identity")]
    ya, yb = cell([x, x], nodes=a), cell([x, x], nodes=b)
    assert ya.shape == yb.shape == (2, 6, 6, 4)
    # node0/in0/sep_conv_3x3 is one shared layer used by child a; all candidates exist.
    assert "node0/in0/sep_conv_3x3" in cell.op_layers and len(cell.op_layers) == 2 * 2 * 2
    with pytest.raises(ValueError, match="nodes"):
        cell([x, x])


def test_errors():
    arch = SMALL.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="input_shape"):
        build_cell_model(SMALL, arch, (8, 8), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_cell_model(SMALL, arch, (8, 8, 1), 0)
