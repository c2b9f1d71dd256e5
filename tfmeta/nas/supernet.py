"""The ENAS supernet (Pham et al. 2018): one network owning every candidate op of a cell space.

Training each sampled architecture from scratch costs a whole model per trial. ENAS instead
keeps one *supernet* that owns every candidate operation of every cell position; a child
architecture is a path through it, and every child that picks operation `op` for input slot
`s` of node `i` reuses (and trains) the same weights.

- `SharedCell`: a `Cell` that owns every candidate op and takes the architecture as an int
  tensor `[num_nodes, 4]` of `(in0, op0, in1, op1)` indices. Inside a `tf.function` each
  candidate op sits in a `tf.cond`, so switching children never retraces: only the chosen ops
  run, and only their weights get gradients. The cell output concatenates every node with the
  nodes another node reads zeroed (ENAS's loose ends), then projects them with one 1x1 conv.
- `SharedCellNetwork`: the NASNet layout of `build_cell_model` built from shared cells. The
  current child lives in a non-trainable int32 variable (`set_architecture(arch)`), so the
  network trains with `compile()` / `fit()` / `evaluate()` like any Keras model, and
  `calibrate_batch_norm(x)` gives a child its own batch-norm statistics before it is scored.

The search that trains and scores children with it is `tfmeta.nas.enas.WeightSharingSearch`.

Example:

>>> import numpy as np
>>> from tfmeta.nas.space import MicroCellSpace
>>> space = MicroCellSpace(num_nodes=2)
>>> net = SharedCellNetwork(space, (8, 8, 1), 10, filters=8)
>>> net.set_architecture(space.sample(np.random.default_rng(0)))
>>> net(np.zeros((2, 8, 8, 1), "float32")).shape
TensorShape([2, 10])
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfmeta.multi_worker_fit import MultiWorkerFitMixin
from tfmeta.nas.cells import Cell, cell_layout, check_cell_network_args
from tfmeta.nas.operations import BN_MOMENTUM
from tfmeta.nas.space import Architecture, MicroCellSpace


class SharedCell(Cell):
    """A supernet cell: every candidate op, the child chosen at call time by an int tensor.

    Args:
        filters: Output channels.
        ops: Candidate op names (`tfmeta.nas.operations.OPS`).
        num_nodes: Nodes per cell.
        reduction: Whether the cell halves the spatial size.
        reduce_prev: Whether `h_prev_prev` has twice the spatial size of `h_prev`.

    Call: `cell([h_prev_prev, h_prev], nodes=indices)` with `indices` int `[num_nodes, 4]`: per
    node `(in0, op0, in1, op1)`, inputs as `MicroCellSpace` numbers them and ops as positions in
    `ops`.
    """

    def __init__(self, filters: int, ops: Sequence[str], num_nodes: int, reduction: bool = False,
                 reduce_prev: bool = False, **kwargs):
        super().__init__(None, filters, reduction=reduction, ops=ops, num_nodes=num_nodes,
                         reduce_prev=reduce_prev, **kwargs)

    def build(self, input_shapes):
        # Every candidate is built here, outside any `tf.cond` branch (variables cannot be
        # created inside one) and whether or not the first child uses it.
        shape0, shape1 = (tuple(s) for s in input_shapes)
        self.pre0.build(shape0)
        self.pre1.build(shape1)
        for layer in self.op_layers.values():
            layer.build((None, None, None, self.filters))
        self.project.build((None, None, None, self.num_nodes * self.filters))
        self.built = True

    def _select(self, node: int, slot: int, inp, op, states, training):
        """The output of the chosen op on the chosen input.

        One `tf.cond` per candidate op: only the chosen one runs (the others give zeros), and
        only its weights get gradients.
        """
        # Inputs of one spatial size are gathered with `inp`; a reduction cell's cell inputs
        # (stride-2 ops) and its nodes (stride 1) form two groups of candidates.
        groups = [list(range(node + 2))]
        if self.reduction:
            groups = [[0, 1], list(range(2, node + 2))] if node > 0 else [[0, 1]]
        total = None
        for members in groups:
            stacked = tf.stack([states[j] for j in members])
            picked = tf.gather(stacked, tf.clip_by_value(inp - members[0], 0, len(members) - 1))
            in_group = tf.logical_and(inp >= members[0], inp <= members[-1])
            strided = self.reduction and members[0] < 2
            zeros = tf.zeros_like(picked[:, ::2, ::2, :] if strided else picked)  # "same" padding
            for k, name in enumerate(self.candidate_ops):
                layer = self._op(node, slot, members[0], name)
                out = tf.cond(
                    tf.logical_and(in_group, tf.equal(op, k)),
                    lambda layer=layer, picked=picked: layer(picked, training=training),
                    lambda zeros=zeros: zeros,
                )
                total = out if total is None else total + out
        return total

    def call(self, inputs, nodes=None, training=None):
        if nodes is None:
            raise ValueError("A SharedCell needs `nodes`: int [num_nodes, 4] of (in0, op0, in1, op1).")
        nodes = tf.cast(nodes, tf.int32)
        h0, h1 = inputs
        states = [self.pre0(h0, training=training), self.pre1(h1, training=training)]
        reads = []
        for i in range(self.num_nodes):
            out = [self._select(i, slot, nodes[i, 2 * slot], nodes[i, 2 * slot + 1], states, training)
                   for slot in (0, 1)]
            states.append(out[0] + out[1])
            reads += [nodes[i, 0], nodes[i, 2]]
        read = tf.reduce_max(tf.one_hot(tf.stack(reads), self.num_nodes + 2, dtype=states[2].dtype), axis=0)
        loose = [states[2 + k] * (1.0 - read[2 + k]) for k in range(self.num_nodes)]
        return self.project(keras.ops.concatenate(loose, axis=-1), training=training)


def architecture_indices(space: MicroCellSpace, arch: Architecture) -> np.ndarray:
    """int32 `[2, num_nodes, 4]`: the normal and reduction cells as `(in0, op0, in1, op1)` indices."""
    rows = []
    for which in ("normal", "reduce"):
        rows.append([[in0, space.ops.index(op0), in1, space.ops.index(op1)]
                     for in0, op0, in1, op1 in space.cell(arch, which)])
    return np.asarray(rows, dtype=np.int32)


class SharedCellNetwork(MultiWorkerFitMixin, keras.Model):
    """The supernet of a `MicroCellSpace`: `build_cell_model`'s layout from `SharedCell`s.

    Args:
        space: The cell space.
        input_shape: Image shape `(H, W, C)`.
        num_classes: Output classes (softmax).
        filters: Channels of the first stage.
        num_reductions: Reduction cells (each halves H and W and doubles the filters).
        num_cells: Normal cells per stage.

    Example:

    >>> space = MicroCellSpace(num_nodes=2)
    >>> net = SharedCellNetwork(space, (8, 8, 1), 10)
    >>> net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> net.set_architecture(space.sample(np.random.default_rng(0)))
    >>> net.fit(x, y, epochs=1)                                   # doctest: +SKIP
    """

    def __init__(self, space: MicroCellSpace, input_shape: Sequence[int], num_classes: int, filters: int = 16,
                 num_reductions: int = 2, num_cells: int = 1, **kwargs):
        kwargs.setdefault("name", "shared_cell_net")
        super().__init__(**kwargs)
        input_shape = check_cell_network_args(space, input_shape, num_classes, num_cells, filters, num_reductions)
        self.space = space
        self.image_shape = input_shape
        self.num_classes = int(num_classes)
        self.stem_conv = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem_conv")
        self.stem_bn = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")
        layout = cell_layout(num_cells, num_reductions, filters)
        self.cell_rows = [0 if kind == "normal" else 1 for kind, _, _ in layout]
        self.shared_cells = [SharedCell(f, space.ops, space.num_nodes, reduction=kind == "reduce",
                                        reduce_prev=reduce_prev, name=f"cell{i}_{kind}")
                             for i, (kind, f, reduce_prev) in enumerate(layout)]
        self.classifier = layers.Dense(num_classes, activation="softmax", name="classifier")
        self.architecture = self.add_weight(shape=(2, space.num_nodes, 4), dtype="int32", initializer="zeros",
                                            trainable=False, name="architecture")
        self._calibrate_fn = None
        self(np.zeros((1, *input_shape), "float32"))  # builds every shared op now

    def set_architecture(self, arch: Architecture) -> None:
        """Makes `arch` the child the network computes (no retracing)."""
        self.architecture.assign(architecture_indices(self.space, arch))

    def calibrate_batch_norm(self, x) -> None:
        """Sets every batch-norm layer's moving statistics to the current child's on `x`.

        Shared batch-norm layers hold statistics mixed over the children that trained them;
        one forward pass in training mode with momentum 0 (no weight update) replaces them
        with this child's own, measured on `x` (e.g. 512 training images).
        """
        bns = [layer for layer in self._flatten_layers() if isinstance(layer, layers.BatchNormalization)]
        saved = [bn.momentum for bn in bns]
        if self._calibrate_fn is None:
            # Traced (once per input shape) while the momentum is 0, so the graph keeps it.
            self._calibrate_fn = tf.function(lambda images: self(images, training=True), reduce_retracing=True)
        try:
            for bn in bns:
                bn.momentum = 0.0
            self._calibrate_fn(tf.convert_to_tensor(x, self.compute_dtype))
        finally:
            for bn, momentum in zip(bns, saved):
                bn.momentum = momentum

    def call(self, x, training=None):
        x = self.stem_bn(self.stem_conv(x), training=training)
        h0 = h1 = x
        for cell, row in zip(self.shared_cells, self.cell_rows):
            h0, h1 = h1, cell([h0, h1], nodes=self.architecture[row], training=training)
        x = keras.ops.mean(keras.ops.relu(h1), axis=(1, 2))
        return self.classifier(x)

    def op_variables(self, arch: Architecture) -> tuple[list, list]:
        """The op weights a child uses and the ones it does not (cell ops only)."""
        used_keys = {}
        for row, which in ((0, "normal"), (1, "reduce")):
            keys = set()
            for i, (in0, op0, in1, op1) in enumerate(self.space.cell(arch, which)):
                keys |= {(i, 0, in0, op0), (i, 1, in1, op1)}
            used_keys[row] = keys
        used, unused = [], []
        for cell, row in zip(self.shared_cells, self.cell_rows):
            chosen = {id(cell._op(i, s, inp, op)) for i, s, inp, op in used_keys[row]}
            for layer in cell.op_layers.values():
                (used if id(layer) in chosen else unused).extend(layer.trainable_variables)
        return used, unused
