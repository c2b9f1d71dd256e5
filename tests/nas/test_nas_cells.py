"""Cell networks: stacked shapes, the deeper transfer of one architecture trains, supernet cells share weights."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from tfmeta.nas.cells import Cell, build_cell_model
from tfmeta.nas.space import MicroCellSpace

SMALL = MicroCellSpace(num_nodes=3)


def cells_of(model: keras.Model) -> list[Cell]:
    return [layer for layer in model.layers if isinstance(layer, Cell)]


@pytest.mark.parametrize("seed,input_shape,num_cells,num_reductions", [(0, (8, 8, 1), 1, 2), (1, (9, 9, 3), 2, 1)])
def test_cell_model_shapes(seed, input_shape, num_cells, num_reductions):
    arch = SMALL.sample(np.random.default_rng(seed))
    model = build_cell_model(SMALL, arch, input_shape, 7, num_cells=num_cells, filters=8,
                             num_reductions=num_reductions)
    assert model.output_shape == (None, 7)
    cells = cells_of(model)
    assert len(cells) == num_cells * (num_reductions + 1) + num_reductions
    x = np.random.default_rng(0).random((3, *input_shape)).astype("float32")
    y = model(x).numpy()
    assert y.shape == (3, 7)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    # Reduction cells halve the spatial size and double the filters.
    reduce_cells = [c for c in cells if c.reduction]
    assert [c.filters for c in reduce_cells] == [8 * 2 ** (i + 1) for i in range(num_reductions)]


def test_deeper_transfer_has_more_cells_same_architecture(digits):
    arch = SMALL.sample(np.random.default_rng(3))
    small = build_cell_model(SMALL, arch, (8, 8, 1), 10, num_cells=1, filters=8, num_reductions=1)
    big = build_cell_model(SMALL, arch, (8, 8, 1), 10, num_cells=2, filters=8, num_reductions=1)
    # More cells: 2 normal cells per stage instead of 1, the one reduction cell between stages.
    assert len(cells_of(small)) == 3 and len(cells_of(big)) == 5
    assert big.count_params() > small.count_params()
    # The same architecture: every cell of both stacks is wired as the searched cell says.
    for model in (small, big):
        for cell in cells_of(model):
            assert cell.nodes == SMALL.cell(arch, "reduce" if cell.reduction else "normal")
    # And the deeper stack trains: it fits a batch of 64 digits far above chance (0.1) in 8 steps.
    x, y = (a[:64] for a in digits["train"])
    # Eager: tracing this network's train step costs more than the eight steps themselves.
    big.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", run_eagerly=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist")  # a cell may ignore one input
        losses = big.fit(x, y, batch_size=64, epochs=8, shuffle=False, verbose=0).history["loss"]
    assert losses[0] == pytest.approx(np.log(10), rel=0.15)  # starts at chance
    assert losses[-1] < 0.65 * losses[0]
    assert np.all(np.diff(losses) < 0)
    accuracy = np.mean(np.argmax(big(x, training=True).numpy(), axis=-1) == y)
    assert accuracy >= 0.6


def test_supernet_cell_shares_weights_between_children():
    # A cell built without an architecture owns every candidate op (ENAS supernet): one layer per
    # node, input slot and op. Children select ops by that key, whatever input they read, and
    # reuse the same weights.
    cell = Cell(None, filters=4, ops=("sep_conv_3x3", "identity"), num_nodes=2)
    assert sorted(cell.op_layers) == sorted(f"node{i}/in{s}/{op}" for i in range(2) for s in range(2)
                                            for op in ("sep_conv_3x3", "identity"))
    x = np.random.default_rng(0).random((2, 6, 6, 4)).astype("float32")
    a = [(0, "sep_conv_3x3", 1, "identity"), (2, "identity", 0, "sep_conv_3x3")]
    b = [(1, "sep_conv_3x3", 1, "identity"), (0, "identity", 2, "identity")]
    ya, yb = cell([x, x], nodes=a).numpy(), cell([x, x], nodes=b).numpy()
    assert ya.shape == yb.shape == (2, 6, 6, 4)

    def scale(key):
        layer = cell.op_layers[key]
        layer.set_weights([1.5 * w for w in layer.get_weights()])

    # node0/in0/sep_conv_3x3 serves both children: changing it changes both.
    scale("node0/in0/sep_conv_3x3")
    ya2, yb2 = cell([x, x], nodes=a).numpy(), cell([x, x], nodes=b).numpy()
    assert not np.allclose(ya2, ya) and not np.allclose(yb2, yb)
    # node1/in1/sep_conv_3x3 is child a's alone: b computes exactly what it did.
    scale("node1/in1/sep_conv_3x3")
    assert not np.allclose(cell([x, x], nodes=a).numpy(), ya2)
    np.testing.assert_array_equal(cell([x, x], nodes=b).numpy(), yb2)
    with pytest.raises(ValueError, match="nodes"):
        cell([x, x])


def test_errors():
    arch = SMALL.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="input_shape"):
        build_cell_model(SMALL, arch, (8, 8), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_cell_model(SMALL, arch, (8, 8, 1), 0)
    with pytest.raises(ValueError, match="MicroCellSpace"):
        build_cell_model(object(), arch, (8, 8, 1), 10)
    with pytest.raises(ValueError, match="num_nodes"):
        Cell(None, filters=4, ops=("identity",))


def test_moved_builder_names_keep_their_old_spelling():
    import tfmeta.nas.builders as builders
    import tfmeta.nas.cells as cells
    import tfmeta.nas.operations as operations

    for name, home in (("build_model", builders), ("build_macro_model", builders), ("build_dense_model", builders),
                       ("OPS", operations), ("op_key", operations), ("FactorizedReduce", operations)):
        with pytest.warns(DeprecationWarning, match=f"tfmeta.nas.cells.{name}"):
            assert getattr(cells, name) is getattr(home, name)
