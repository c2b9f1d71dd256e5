"""Cell networks: the NASNet / ENAS micro `Cell` and `build_cell_model`, cells stacked.

`build_cell_model(space, arch, input_shape, num_classes, num_cells=N)` is the NASNet "search
small, stack more" network: stem, then `num_reductions + 1` stages of N normal cells with a
reduction cell (stride 2, filters x2) between stages, global pooling and a classifier. The
same architecture can be searched with N=1 and transferred with a larger N / filters.

Weight sharing (ENAS) builds on this: a `Cell` names every operation it owns by its position
key `"node{i}/in{slot}/{op}"` (`tfmeta.nas.operations.op_key`), and `Cell(nodes=None)`
instantiates *every* candidate key, so each child reuses exactly the weights of the keys it
selects (one set of weights per node, input slot and op). `tfmeta.nas.supernet.SharedCell` is
that supernet cell with the child given as a tensor (no retracing between children).

Macro-layer and dense-block models are built in `tfmeta.nas.builders`.

Example:

>>> import numpy as np
>>> from tfmeta.nas.space import MicroCellSpace
>>> space = MicroCellSpace(num_nodes=2)
>>> model = build_cell_model(space, space.sample(np.random.default_rng(0)), (8, 8, 1), 10)
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

import numbers
from typing import Sequence

import keras
import numpy as np  # noqa: F401  (docstring examples)
from keras import layers

from tfmeta._deprecation import moved_names
from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.nas import operations
from tfmeta.nas.space import Architecture, MicroCellSpace

# Names that lived here before the builders were split by idea.
__getattr__ = moved_names(__name__, {
    "BN_MOMENTUM": "tfmeta.nas.operations",
    "FactorizedReduce": "tfmeta.nas.operations",
    "OPS": "tfmeta.nas.operations",
    "op_key": "tfmeta.nas.operations",
    "build_macro_model": "tfmeta.nas.builders",
    "build_dense_model": "tfmeta.nas.builders",
    "build_model": "tfmeta.nas.builders",
})


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
        if nodes is None and (ops is None or num_nodes is None):
            raise ValueError(
                "`ops` and `num_nodes` are required when `nodes` is None (supernet cell); received "
                f"ops={ops!r}, num_nodes={num_nodes!r}."
            )
        self.nodes = [tuple(n) for n in nodes] if nodes is not None else None
        self.filters = filters
        self.reduction = reduction
        self.reduce_prev = reduce_prev
        self.num_nodes = len(self.nodes) if self.nodes is not None else int(num_nodes)
        self.candidate_ops = tuple(ops) if ops is not None else None
        # A child only calibrates the cell inputs its nodes read (no weights without gradients);
        # a supernet cell calibrates both.
        read = {n[0] for n in self.nodes} | {n[2] for n in self.nodes} if self.nodes is not None else {0, 1}
        self.pre0 = None
        if 0 in read:
            self.pre0 = (
                operations.FactorizedReduce(filters, name="pre0_reduce")
                if reduce_prev
                else operations.relu_conv_bn(filters, 1, 1, "pre0")
            )
        self.pre1 = operations.relu_conv_bn(filters, 1, 1, "pre1") if 1 in read else None
        self.op_layers: dict[str, layers.Layer] = {}
        for i in range(self.num_nodes):
            for slot in (0, 1):
                if self.nodes is not None:
                    inp, op = self.nodes[i][0 if slot == 0 else 2], self.nodes[i][1 if slot == 0 else 3]
                    candidates = [(inp, op)]
                else:
                    candidates = [(inp, op) for inp in range(i + 2) for op in self.candidate_ops]
                for inp, op in candidates:
                    key = operations.op_key(i, slot, op)
                    strides = 2 if reduction and inp < 2 else 1
                    # Ops reading a cell input in a reduction cell have stride 2; a supernet
                    # keeps separate weights for the stride-2 variant.
                    full_key = key if strides == 1 else key + "/s2"
                    if full_key not in self.op_layers:
                        self.op_layers[full_key] = operations.make_op(op, filters, strides, full_key.replace("/", "_"))
        self.project = operations.relu_conv_bn(filters, 1, 1, "project")

    def _op(self, node, slot, inp, op):
        key = operations.op_key(node, slot, op)
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
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`{arg}` must be a positive int; received {value!r}.")
    if isinstance(num_reductions, bool) or not isinstance(num_reductions, numbers.Integral) or num_reductions < 0:
        raise ValueError(f"`num_reductions` must be a non-negative int; received {num_reductions!r}.")
    num_reductions = int(num_reductions)
    return input_shape


def cell_layout(num_cells: int, num_reductions: int, filters: int) -> list[tuple[str, int, bool]]:
    """The NASNet stacking: `[(kind, filters, reduce_prev), ...]`, one entry per cell.

    `num_reductions + 1` stages of `num_cells` normal cells with a reduction cell (filters x2)
    between stages; `reduce_prev` says whether the cell's `h[k-2]` input is twice as large.
    The supernets (`tfmeta.nas.supernet`, `tfmeta.nas.darts`) stack their cells this way.
    """
    layout, f, reduce_prev = [], filters, False
    for stage in range(num_reductions + 1):
        for _ in range(num_cells):
            layout.append(("normal", f, reduce_prev))
            reduce_prev = False
        if stage < num_reductions:
            f *= 2
            layout.append(("reduce", f, reduce_prev))
            reduce_prev = True
    return layout


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
    x = layers.BatchNormalization(momentum=operations.BN_MOMENTUM, name="stem_bn")(x)
    h0, h1 = x, x
    for index, (kind, f, reduce_prev) in enumerate(cell_layout(num_cells, num_reductions, filters)):
        cell = Cell(normal if kind == "normal" else reduce, f, reduction=kind == "reduce", reduce_prev=reduce_prev,
                    name=f"cell{index}_{kind}")
        h0, h1 = h1, cell([h0, h1])
    x = layers.ReLU()(h1)
    x = layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation=final_activation, name="classifier")(x)
    return FunctionalModel(inputs, outputs, name=name)
