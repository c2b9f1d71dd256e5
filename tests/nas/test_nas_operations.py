"""Cell operations: every name the spaces accept has a layer, with the right strides; registering one."""

from __future__ import annotations

import numpy as np
import pytest

from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.operations import OPS, make_op, op_key
from tfmeta.nas.space import MicroCellSpace
from tfmeta.nas.space.op_names import DEFAULT_CELL_OPS, SHORT_OP_NAMES, register_cell_op_name


def test_every_op_name_has_a_layer_keeping_or_halving_the_grid():
    assert set(OPS) == set(SHORT_OP_NAMES) and set(DEFAULT_CELL_OPS) <= set(OPS)
    x = np.random.default_rng(0).random((2, 8, 8, 6)).astype("float32")
    for name in OPS:
        for strides, size in ((1, 8), (2, 4)):
            y = np.asarray(make_op(name, 6, strides, f"{name}_s{strides}")(x))
            assert y.shape == (2, size, size, 6), (name, strides)
    np.testing.assert_array_equal(np.asarray(make_op("identity", 6, 1, "id")(x)), x)
    assert op_key(1, 0, "identity") == "node1/in0/identity"


@pytest.fixture
def restore_registries():
    ops, names = dict(OPS), dict(SHORT_OP_NAMES)
    yield
    for name in set(OPS) - set(ops):
        dict.__delitem__(OPS, name)
    SHORT_OP_NAMES.clear()
    SHORT_OP_NAMES.update(names)


def test_registering_a_layer_makes_its_name_a_space_op(restore_registries):
    import keras

    with pytest.raises(ValueError, match="conv_5x5"):
        MicroCellSpace(num_nodes=2, ops=("conv_5x5", "identity"))
    OPS["conv_5x5"] = lambda f, s, n: keras.layers.Conv2D(f, 5, strides=s, padding="same", name=n)
    space = MicroCellSpace(num_nodes=2, ops=("conv_5x5", "identity"))
    arch = space.decode([0, 0, 0, 0] * 4)
    assert str(arch).startswith("normal[0:conv_5x5+0:conv_5x5")
    model = build_cell_model(space, arch, (8, 8, 1), 3, filters=4, num_reductions=1)
    assert any(layer.__class__.__name__ == "Conv2D" and layer.kernel_size == (5, 5)
               for layer in model._flatten_layers())
    with pytest.raises(ValueError, match="callable"):
        OPS["broken"] = "not a factory"


def test_a_name_without_a_layer_is_a_clear_error(restore_registries):
    register_cell_op_name("mystery_op", "mys")
    space = MicroCellSpace(num_nodes=1, ops=("mystery_op",), reduction=False)
    assert str(space.decode([0, 0, 0, 0])) == "normal[0:mys+0:mys]"
    with pytest.raises(ValueError, match=r"'mystery_op' is a registered name without a layer factory"):
        build_cell_model(space, space.decode([0, 0, 0, 0]), (8, 8, 1), 3)
    with pytest.raises(ValueError, match="`op` must be one of"):
        make_op("conv_9x9", 4, 1, "x")
    with pytest.raises(ValueError, match="name"):
        register_cell_op_name("")
