"""Cell operations as Keras layers: `OPS[name](filters, strides, layer_name) -> layer`.

The names are the space's (`tfmeta.nas.space.op_names`); this module gives each one its
layer, as NASNet and ENAS define them: separable and plain convolutions are ReLU-conv-BN,
pooling is 3x3 with "same" padding, and identity at stride 2 is a factorized reduce. The cell
builders (`tfmeta.nas.cells`, `tfmeta.nas.supernet`) create every operation through `OPS`, and
name its weights by position with `op_key`, which is what weight sharing reuses.

Register your own operation by adding a factory: `OPS["conv_5x5"] = factory` also makes
`"conv_5x5"` a valid `MicroCellSpace` op.

Example:

>>> import numpy as np
>>> layer = OPS["sep_conv_3x3"](16, 1, "node0_in0_sep")
>>> layer(np.zeros((2, 8, 8, 16), "float32")).shape
TensorShape([2, 8, 8, 16])
>>> op_key(0, 1, "identity")
'node0/in1/identity'
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from tfmeta.nas.space.op_names import SHORT_OP_NAMES, register_cell_op_name

BN_MOMENTUM = 0.9  # short child trainings: moving statistics must warm up within a few epochs

OpFactory = Callable[[int, int, str], layers.Layer]  # (filters, strides, layer name) -> layer


class FactorizedReduce(layers.Layer):
    """ReLU, two 1x1 stride-2 convs on the input and the input shifted by one pixel, concat, BN.

    Halves the spatial size without losing half the pixels (NASNet/ENAS identity at stride 2).
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        half = filters // 2
        self.conv_a = layers.Conv2D(half, 1, strides=2, padding="same", use_bias=False)
        self.conv_b = layers.Conv2D(filters - half, 1, strides=2, padding="same", use_bias=False)
        self.bn = layers.BatchNormalization(momentum=BN_MOMENTUM)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape)
        self.bn.build((*input_shape[:-1], self.filters))
        self.built = True

    def call(self, x, training=None):
        x = keras.ops.relu(x)
        a = self.conv_a(x)
        shifted = keras.ops.pad(x[:, 1:, 1:, :], [[0, 0], [0, 1], [0, 1], [0, 0]])
        b = self.conv_b(shifted)
        return self.bn(keras.ops.concatenate([a, b], axis=-1), training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def relu_conv_bn(filters: int, kernel: int, strides: int, name: str, separable: bool = False,
                 dilation: int = 1) -> keras.Sequential:
    """ReLU, a (separable, dilated) convolution without bias, batch norm: the NASNet conv op."""
    conv_cls = layers.SeparableConv2D if separable else layers.Conv2D
    return keras.Sequential(
        [
            layers.ReLU(),
            conv_cls(filters, kernel, strides=strides, padding="same", dilation_rate=dilation, use_bias=False),
            layers.BatchNormalization(momentum=BN_MOMENTUM),
        ],
        name=name,
    )


def _identity(filters: int, strides: int, name: str):
    return layers.Identity(name=name) if strides == 1 else FactorizedReduce(filters, name=name)


def _pool(kind):
    def make(filters: int, strides: int, name: str):
        cls = layers.AveragePooling2D if kind == "avg" else layers.MaxPooling2D
        return cls(3, strides=strides, padding="same", name=name)

    return make


class CellOpRegistry(dict):
    """`name -> factory(filters, strides, layer_name) -> keras layer`.

    Adding a factory also registers its name with the spaces (`register_cell_op_name`), so a
    `MicroCellSpace` accepts every operation the builders can make.
    """

    def __setitem__(self, name: str, factory: OpFactory) -> None:
        if not callable(factory):
            raise ValueError(f"The factory of cell operation {name!r} must be callable; received {factory!r}.")
        register_cell_op_name(name)
        super().__setitem__(name, factory)

    def update(self, *args, **kwargs) -> None:
        for name, factory in dict(*args, **kwargs).items():
            self[name] = factory

    def setdefault(self, name: str, factory: OpFactory | None = None) -> OpFactory:
        if name not in self:
            self[name] = factory
        return self[name]


OPS = CellOpRegistry()
"""Cell operations: `name -> factory(filters, strides, layer_name) -> keras layer`."""
OPS.update({
    "sep_conv_3x3": lambda f, s, n: relu_conv_bn(f, 3, s, n, separable=True),
    "sep_conv_5x5": lambda f, s, n: relu_conv_bn(f, 5, s, n, separable=True),
    "avg_pool_3x3": _pool("avg"),
    "max_pool_3x3": _pool("max"),
    "identity": _identity,
    "conv_3x3": lambda f, s, n: relu_conv_bn(f, 3, s, n),
    "conv_1x1": lambda f, s, n: relu_conv_bn(f, 1, s, n),
    "dil_conv_3x3": lambda f, s, n: relu_conv_bn(f, 3, s, n, separable=True, dilation=2) if s == 1
    else relu_conv_bn(f, 3, s, n, separable=True),
})


def make_op(name: str, filters: int, strides: int, layer_name: str) -> layers.Layer:
    """The layer of cell operation `name`; raises ValueError when no factory builds it."""
    if name not in OPS:
        known = sorted(OPS)
        if name in SHORT_OP_NAMES:
            raise ValueError(
                f"Cell operation {name!r} is a registered name without a layer factory: add one with "
                f"`tfmeta.nas.operations.OPS[{name!r}] = factory`. Operations with factories: {known}."
            )
        raise ValueError(f"`op` must be one of {known}; received {name!r}.")
    return OPS[name](filters, strides, layer_name)


def op_key(node: int, slot: int, op: str) -> str:
    """The weight-sharing key of an operation: node index, input slot (0/1) and op name."""
    return f"node{node}/in{slot}/{op}"
