"""Build Keras models from architectures: cells (images), macro layers, dense blocks (tables).

- `build_cell_model(space, arch, input_shape, num_classes, num_cells=N)`: the NASNet "search
  small, stack more" network: stem, then `num_reductions + 1` stages of N normal cells with a
  reduction cell (stride 2, filters x2) between stages, global pooling and a classifier. The
  same architecture can be searched with N=1 and transferred with a larger N / filters.
- `build_macro_model(space, arch, ...)`: one searched op per layer (identity or MobileNetV2
  inverted residual blocks), NAS-Bench-Macro-like layout.
- `build_dense_model(space, arch, ...)`: dense blocks for tabular data.

Weight sharing (ENAS) builds on this: a `Cell` names every operation it owns by its position
key `"node{i}/in{slot}/{op}"` (`op_key`), and `Cell(nodes=None)` instantiates *every*
candidate key, so each child reuses exactly the weights of the keys it selects (one set of
weights per node, input slot and op). `tfmeta.nas.enas.SharedCell` is that supernet cell with
the child given as a tensor (no retracing between children) and `SharedCellNetwork` /
`WeightSharingSearch` search with it.

Example:

>>> from tfmeta.nas.space import MicroCellSpace
>>> space = MicroCellSpace(num_nodes=2)
>>> model = build_cell_model(space, space.sample(np.random.default_rng(0)), (8, 8, 1), 10)
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
from keras import layers

from tfmeta.nas.space import Architecture, DenseSpace, MacroSpace, MicroCellSpace


BN_MOMENTUM = 0.9  # short child trainings: moving statistics must warm up within a few epochs

# ---------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------
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


def _relu_conv_bn(filters: int, kernel: int, strides: int, name: str, separable=False, dilation=1):
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


OPS: dict[str, Callable[[int, int, str], layers.Layer]] = {
    "sep_conv_3x3": lambda f, s, n: _relu_conv_bn(f, 3, s, n, separable=True),
    "sep_conv_5x5": lambda f, s, n: _relu_conv_bn(f, 5, s, n, separable=True),
    "avg_pool_3x3": _pool("avg"),
    "max_pool_3x3": _pool("max"),
    "identity": _identity,
    "conv_3x3": lambda f, s, n: _relu_conv_bn(f, 3, s, n),
    "conv_1x1": lambda f, s, n: _relu_conv_bn(f, 1, s, n),
    "dil_conv_3x3": lambda f, s, n: _relu_conv_bn(f, 3, s, n, separable=True, dilation=2) if s == 1
    else _relu_conv_bn(f, 3, s, n, separable=True),
}
"""Cell operations: `name -> factory(filters, strides, layer_name) -> keras layer`.
Register your own by adding to this dict before building a `MicroCellSpace` that uses it."""


def op_key(node: int, slot: int, op: str) -> str:
    """The weight-sharing key of an operation: node index, input slot (0/1) and op name."""
    return f"node{node}/in{slot}/{op}"


# ---------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------
class Cell(layers.Layer):
    """A NASNet/ENAS micro cell.

    Inputs are `[h_prev_prev, h_prev]`. Both are calibrated to `filters` channels (ReLU-1x1
    conv-BN; a factorized reduce when `h_prev_prev` is twice as large). Node i adds
    `op0(inputs[in0]) + op1(inputs[in1])`; in a reduction cell, ops reading a cell input use
    stride 2. The output concatenates the loose-end nodes and projects them back to `filters`
    channels with a 1x1 conv (ENAS).

    Args:
        nodes: `[(in0, op0, in1, op1), ...]` (see `MicroCellSpace.cell`), or None to create
            every candidate op (a weight-shared supernet cell; pass `nodes` at call time).
        filters: Output channels.
        reduction: Whether the cell halves the spatial size.
        ops: Candidate op names (needed when `nodes` is None).
        num_nodes: Number of nodes (needed when `nodes` is None).
        reduce_prev: Whether `h_prev_prev` has twice the spatial size of `h_prev`.
    """

    def __init__(
        self,
        nodes: Sequence[tuple] | None,
        filters: int,
        reduction: bool = False,
        ops: Sequence[str] | None = None,
        num_nodes: int | None = None,
        reduce_prev: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.nodes = [tuple(n) for n in nodes] if nodes is not None else None
        self.filters = filters
        self.reduction = reduction
        self.reduce_prev = reduce_prev
        self.num_nodes = len(self.nodes) if self.nodes is not None else int(num_nodes)
        self.candidate_ops = tuple(ops) if ops is not None else None
        if self.nodes is None and (ops is None or num_nodes is None):
            raise ValueError("`ops` and `num_nodes` are required when `nodes` is None (supernet cell).")
        # A child only calibrates the cell inputs its nodes read (no weights without gradients);
        # a supernet cell calibrates both.
        read = {n[0] for n in self.nodes} | {n[2] for n in self.nodes} if self.nodes is not None else {0, 1}
        self.pre0 = None
        if 0 in read:
            self.pre0 = (
                FactorizedReduce(filters, name="pre0_reduce") if reduce_prev else _relu_conv_bn(filters, 1, 1, "pre0")
            )
        self.pre1 = _relu_conv_bn(filters, 1, 1, "pre1") if 1 in read else None
        self.op_layers: dict[str, layers.Layer] = {}
        for i in range(self.num_nodes):
            for slot in (0, 1):
                if self.nodes is not None:
                    inp, op = self.nodes[i][0 if slot == 0 else 2], self.nodes[i][1 if slot == 0 else 3]
                    candidates = [(inp, op)]
                else:
                    candidates = [(inp, op) for inp in range(i + 2) for op in self.candidate_ops]
                for inp, op in candidates:
                    key = op_key(i, slot, op)
                    strides = 2 if reduction and inp < 2 else 1
                    # Ops reading a cell input in a reduction cell have stride 2; a supernet
                    # keeps separate weights for the stride-2 variant.
                    full_key = key if strides == 1 else key + "/s2"
                    if full_key not in self.op_layers:
                        self.op_layers[full_key] = OPS[op](filters, strides, full_key.replace("/", "_"))
        self.project = _relu_conv_bn(filters, 1, 1, "project")

    def _op(self, node, slot, inp, op):
        key = op_key(node, slot, op)
        return self.op_layers[key + "/s2" if self.reduction and inp < 2 else key]

    def call(self, inputs, nodes=None, training=None):
        nodes = [tuple(n) for n in nodes] if nodes is not None else self.nodes
        if nodes is None:
            raise ValueError("A supernet cell needs `nodes` at call time.")
        h0, h1 = inputs
        states = [
            self.pre0(h0, training=training) if self.pre0 is not None else None,
            self.pre1(h1, training=training) if self.pre1 is not None else None,
        ]
        used = set()
        for i, (in0, op0, in1, op1) in enumerate(nodes):
            a = self._op(i, 0, in0, op0)(states[in0], training=training)
            b = self._op(i, 1, in1, op1)(states[in1], training=training)
            states.append(a + b)
            used.update((in0, in1))
        loose = [states[j] for j in range(2, len(states)) if j not in used]
        out = loose[0] if len(loose) == 1 else keras.ops.concatenate(loose, axis=-1)
        return self.project(out, training=training)

    def compute_output_shape(self, input_shapes):
        shape = list(input_shapes[1])
        if self.reduction:
            shape[1] = None if shape[1] is None else (shape[1] + 1) // 2
            shape[2] = None if shape[2] is None else (shape[2] + 1) // 2
        shape[-1] = self.filters
        return tuple(shape)


def check_cell_network_args(space, input_shape, num_classes, num_cells, filters, num_reductions) -> tuple:
    """Validates the arguments of a stacked-cell network; returns `input_shape` as a tuple."""
    if not isinstance(space, MicroCellSpace):
        raise ValueError(f"`space` must be a MicroCellSpace; received {type(space).__name__}.")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (H, W, C); received {input_shape}.")
    for arg, value in (("num_classes", num_classes), ("num_cells", num_cells), ("filters", filters)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int; received {value!r}.")
    if not isinstance(num_reductions, int) or num_reductions < 0:
        raise ValueError(f"`num_reductions` must be a non-negative int; received {num_reductions!r}.")
    return input_shape


def build_cell_model(
    space: MicroCellSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    num_cells: int = 1,
    filters: int = 16,
    num_reductions: int = 2,
    dropout: float = 0.0,
    final_activation: str | None = "softmax",
    name: str = "cell_net",
) -> keras.Model:
    """Stacks cells into a classifier (the NASNet "search small, stack more" transfer).

    Layout: 3x3 conv stem -> [N normal cells -> reduction cell (filters x2)] x num_reductions
    -> N normal cells -> ReLU -> global average pool -> dropout -> Dense(num_classes).

    Args:
        space: The `MicroCellSpace` the architecture belongs to.
        arch: The architecture (normal and reduction cell).
        input_shape: Image shape `(H, W, C)`.
        num_classes: Output units.
        num_cells: N, normal cells per stage (search with 1, transfer with more).
        filters: Channels of the first stage.
        num_reductions: Reduction cells (each halves H and W).
        dropout: Dropout before the classifier.
        final_activation: `"softmax"` for classification, None for regression/logits.
        name: Model name.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> space = MicroCellSpace(num_nodes=3)
    >>> arch = space.sample(np.random.default_rng(1))
    >>> build_cell_model(space, arch, (32, 32, 3), 10, num_cells=2).output_shape
    (None, 10)
    """
    input_shape = check_cell_network_args(space, input_shape, num_classes, num_cells, filters, num_reductions)
    normal = space.cell(arch, "normal")
    reduce = space.cell(arch, "reduce")
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    h0, h1 = x, x
    f = filters
    reduce_prev = False
    index = 0
    for stage in range(num_reductions + 1):
        for _ in range(num_cells):
            h0, h1 = h1, Cell(normal, f, reduction=False, reduce_prev=reduce_prev, name=f"cell{index}_normal")([h0, h1])
            reduce_prev = False
            index += 1
        if stage < num_reductions:
            f *= 2
            h0, h1 = h1, Cell(reduce, f, reduction=True, reduce_prev=reduce_prev, name=f"cell{index}_reduce")([h0, h1])
            reduce_prev = True
            index += 1
    x = layers.ReLU()(h1)
    x = layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation=final_activation, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------------------
# Macro and dense models
# ---------------------------------------------------------------------------------------
def _mbconv(x, filters: int, kernel: int, expand: int, name: str):
    """MobileNetV2 inverted residual block (stride 1, residual when shapes match)."""
    inp = x
    c = x.shape[-1]
    x = layers.Conv2D(c * expand, 1, use_bias=False, name=f"{name}_expand")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn0")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(x)
    return layers.Add()([inp, x]) if c == filters else x


def build_macro_model(
    space: MacroSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    filters: int = 16,
    final_activation: str | None = "softmax",
    name: str = "macro_net",
) -> keras.Model:
    """One searched op per layer: `identity`, `mbconv_k{K}_e{E}` (MobileNetV2 blocks).

    NAS-Bench-Macro-like layout: stem conv, three stages over the searched layers with a fixed
    stride-2 conv (filters x2) between stages, pooling, classifier.

    Example:

    >>> space = MacroSpace(num_layers=3)
    >>> build_macro_model(space, space.from_key("120"), (8, 8, 1), 10).output_shape
    (None, 10)
    """
    if not isinstance(space, MacroSpace):
        raise ValueError(f"`space` must be a MacroSpace; received {type(space).__name__}.")
    inputs = keras.Input(tuple(input_shape))
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    n = space.num_layers
    boundaries = {n // 3, (2 * n) // 3} - {0}
    f = filters
    for i, op in enumerate(space.layer_ops(arch)):
        if i in boundaries:
            f *= 2
            x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False, name=f"down{i}")(x)
            x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
        if op == "identity":
            continue
        if not op.startswith("mbconv_k"):
            raise ValueError(f"Unknown macro op {op!r}: expected 'identity' or 'mbconv_k<K>_e<E>'.")
        k, e = op[len("mbconv_k"):].split("_e")
        x = _mbconv(x, f, int(k), int(e), name=f"layer{i}")
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation=final_activation)(x)
    return keras.Model(inputs, outputs, name=name)


def build_dense_model(
    space: DenseSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    outputs: int,
    final_activation: str | None = "softmax",
    name: str = "dense_net",
) -> keras.Model:
    """Dense blocks for tables: per searched layer `Dense(units, relu)` + dropout, or a skip.

    Example:

    >>> space = DenseSpace(num_layers=2)
    >>> build_dense_model(space, space.sample(np.random.default_rng(0)), (5,), 3).output_shape
    (None, 3)
    """
    if not isinstance(space, DenseSpace):
        raise ValueError(f"`space` must be a DenseSpace; received {type(space).__name__}.")
    if not isinstance(outputs, (int, np.integer)) or outputs < 1:
        raise ValueError(f"`outputs` must be a positive int; received {outputs!r}.")
    inputs = keras.Input(tuple(input_shape))
    x = layers.Flatten()(inputs) if len(tuple(input_shape)) > 1 else inputs
    for i, (units, rate) in enumerate(space.layers(arch)):
        if units == 0:
            continue
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        if rate:
            x = layers.Dropout(rate)(x)
    out = layers.Dense(outputs, activation=final_activation, name="head")(x)
    return keras.Model(inputs, out, name=name)


def build_model(space, arch: Architecture, input_shape: Sequence[int], num_classes: int, **kwargs) -> keras.Model:
    """Dispatches to the builder of the space type (cells, macro layers or dense blocks)."""
    if isinstance(space, MicroCellSpace):
        return build_cell_model(space, arch, input_shape, num_classes, **kwargs)
    if isinstance(space, MacroSpace):
        return build_macro_model(space, arch, input_shape, num_classes, **kwargs)
    if isinstance(space, DenseSpace):
        return build_dense_model(space, arch, input_shape, num_classes, **kwargs)
    raise ValueError(
        f"`space` must be a MicroCellSpace, MacroSpace or DenseSpace to build a model; received "
        f"{type(space).__name__} (pass your own build function for custom spaces)."
    )
