"""DARTS (Liu et al. 2019): the micro cell space relaxed into softmax-weighted mixed operations.

Every edge of a cell (node i reading state j, for every j < i + 2) computes a *mixed
operation*: the softmax-weighted sum of every candidate operation of the space plus `"none"`
(zero). The softmax logits, the architecture parameters alpha (one `[edges, ops]` matrix for
the normal and one for the reduction cell), are ordinary Keras variables held apart from the
network weights. `DartsNetwork.train_step` alternates, on each pair of batches:

1. an architecture step on the *validation* batch: alpha follows the gradient of the
   validation loss, either at the current weights (`second_order=False`, DARTS first order)
   or at the weights after one virtual SGD step on the training batch (`second_order=True`;
   the Hessian-vector product of the chain rule approximated by central finite differences,
   eq. 7-8 of the paper);
2. a weight step on the *training* batch with the compiled optimizer.

`fit()` therefore takes a dataset of `((x_train, y_train), (x_val, y_val))` pairs;
`paired_batches(...)` builds one from arrays. `derive()` then discretises the cell as the
paper does (per node the two strongest inputs, each with its strongest operation other than
`"none"`) into an ordinary `Architecture` of the `MicroCellSpace`, which
`tfmeta.nas.cells.build_cell_model` (or `tfmeta.nas.transfer.transfer`) retrains from scratch
and every other tool stores, exports and searches like any other.

Skip-connection collapse: with enough search epochs DARTS drifts toward parameter-free
operations, identity above all (Zela et al. 2020; Chen et al. 2019, P-DARTS; Liang et al.
2019, DARTS+). Two guards are here: `derive(max_skips=2)` keeps at most that many identity
edges in the normal cell (P-DARTS's cap: the weakest ones take their next-best operation),
and `SkipConnectionStopping`, a callback that stops the search once the unconstrained
derivation of the normal cell holds more than `max_skips` identity edges (DARTS+'s early
stop). `operation_mix(arch)` counts the operations of a derived architecture.

Strategies and mixed precision: both steps end as every tfmeta learner's does
(`tfmeta.optimizer_step`): a replica's gradients are scaled by the global batch and by the
optimizer's loss scale, so the first-order search under `MirroredStrategy` or
`MultiWorkerMirroredStrategy` takes one device's steps, and under `mixed_float16` the
architecture optimizer is a `LossScaleOptimizer` as `compile()` makes the weight optimizer.
Gradient clipping acts on each replica's own mean gradient (on one device: the paper's). The
second-order step moves the weights to virtual points that differ between replicas, which
mirrored variables cannot hold: under a strategy of several replicas it is an error.

Example:

>>> import numpy as np
>>> from tfmeta.nas.space import MicroCellSpace
>>> space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))
>>> net = DartsNetwork(space, (8, 8, 1), 10, filters=8, num_reductions=1)
>>> net.compile(optimizer=keras.optimizers.SGD(0.025, momentum=0.9))
>>> data = paired_batches(x_train, y_train, x_val, y_val, batch_size=64)   # doctest: +SKIP
>>> net.fit(data, epochs=10, steps_per_epoch=20)                           # doctest: +SKIP
>>> arch = net.derive(max_skips=2)
>>> space.validate(arch) is arch
True
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfmeta import optimizer_step
from tfmeta.multi_worker_fit import MultiWorkerFitMixin
from tfmeta.nas import operations
from tfmeta.nas.cells import cell_layout, check_cell_network_args
from tfmeta.nas.operations import BN_MOMENTUM
from tfmeta.nas.space import Architecture, MicroCellSpace

NONE_OP = "none"


def cell_edges(num_nodes: int) -> list[tuple[int, int]]:
    """`[(node, input), ...]`: every edge of a DARTS cell, node by node (inputs 0 .. node+1)."""
    return [(i, j) for i in range(num_nodes) for j in range(i + 2)]


class Zero(layers.Layer):
    """The `"none"` operation: zeros of the output shape (stride 2 halves H and W, "same")."""

    def __init__(self, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.strides = strides

    def call(self, x):
        return keras.ops.zeros_like(x[:, :: self.strides, :: self.strides, :])


class MixedOp(layers.Layer):
    """`sum_k weights[k] * op_k(x)`: one edge of a DARTS cell, every candidate operation at once.

    Args:
        ops: Candidate operation names (`tfmeta.nas.operations.OPS`, or `"none"`).
        filters: Channels of the input and the output.
        strides: 2 for edges leaving a reduction cell's inputs.

    Call: `mixed(x, weights)` with `weights` a `[len(ops)]` vector (a softmax row).
    """

    def __init__(self, ops: Sequence[str], filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.ops = tuple(ops)
        self.candidates = [
            Zero(strides, name=f"{name}_{k}") if name == NONE_OP
            else operations.make_op(name, filters, strides, f"{name}_{k}")
            for k, name in enumerate(self.ops)
        ]

    def build(self, input_shape):
        for op in self.candidates:
            op.build(tuple(input_shape))
        self.built = True

    def call(self, x, weights, training=None):
        return sum(weights[k] * op(x, training=training) for k, op in enumerate(self.candidates))


class DartsCell(layers.Layer):
    """A DARTS cell: a `MixedOp` on every edge; the output projects all nodes concatenated.

    The cell inputs are calibrated to `filters` channels as in `tfmeta.nas.cells.Cell`.
    """

    def __init__(self, ops: Sequence[str], num_nodes: int, filters: int, reduction: bool = False,
                 reduce_prev: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_nodes, self.filters, self.reduction = num_nodes, filters, reduction
        self.pre0 = (operations.FactorizedReduce(filters, name="pre0_reduce") if reduce_prev
                     else operations.relu_conv_bn(filters, 1, 1, "pre0"))
        self.pre1 = operations.relu_conv_bn(filters, 1, 1, "pre1")
        self.edges = cell_edges(num_nodes)
        self.mixed = [MixedOp(ops, filters, 2 if reduction and j < 2 else 1, name=f"node{i}_in{j}")
                      for i, j in self.edges]
        self.project = operations.relu_conv_bn(filters, 1, 1, "project")

    def build(self, input_shapes):
        shape0, shape1 = (tuple(s) for s in input_shapes)
        self.pre0.build(shape0)
        self.pre1.build(shape1)
        for mixed in self.mixed:
            mixed.build((None, None, None, self.filters))
        self.project.build((None, None, None, self.num_nodes * self.filters))
        self.built = True

    def call(self, inputs, weights, training=None):
        h0, h1 = inputs
        states = [self.pre0(h0, training=training), self.pre1(h1, training=training)]
        e = 0
        for i in range(self.num_nodes):
            total = 0.0
            for j in range(i + 2):
                total = total + self.mixed[e](states[j], weights[e], training=training)
                e += 1
            states.append(total)
        return self.project(keras.ops.concatenate(states[2:], axis=-1), training=training)


class DartsNetwork(MultiWorkerFitMixin, keras.Model):
    """The DARTS supernet of a `MicroCellSpace`, searched with `fit()` on paired batches.

    The layout is `build_cell_model`'s: stem, stages of `num_cells` normal cells with a
    reduction cell between stages, global pooling, a linear classifier (logits). Compile it with
    the *weight* optimizer (the paper: SGD 0.025, momentum 0.9); the loss is sparse categorical
    cross-entropy on the logits and cannot be changed. The architecture optimizer is Adam
    (paper: learning rate 3e-4, beta_1 0.5, weight decay 1e-3; Keras's decoupled decay here).

    Args:
        space: The `MicroCellSpace` relaxed (its `ops`; a normal and a reduction cell).
        input_shape: Image shape `(H, W, C)`.
        num_classes: Classes.
        filters: Channels of the first stage.
        num_cells: Normal cells per stage.
        num_reductions: Reduction cells.
        include_none: Add the `"none"` (zero) operation to every edge, as the paper does.
        second_order: Unrolled (second-order) architecture gradient instead of first order.
        unrolled_learning_rate: xi, the virtual step's learning rate (None: the weight
            optimizer's current learning rate, as in the paper).
        arch_learning_rate, arch_beta_1, arch_weight_decay: The architecture optimizer.
        grad_clip_norm: Global-norm clipping of the weight gradients (5 in the paper).
        finite_difference_scale: The norm of the weight perturbation of the second-order
            step's finite difference (0.01 in the paper).

    Metrics: `loss`, `accuracy` (training batch, weight step) and `arch_loss`,
    `arch_accuracy` (validation batch, architecture step). `evaluate()`/`predict()` take
    ordinary `(x, y)` data.
    """

    def __init__(self, space: MicroCellSpace, input_shape: Sequence[int], num_classes: int, filters: int = 16,
                 num_cells: int = 1, num_reductions: int = 2, include_none: bool = True, second_order: bool = False,
                 unrolled_learning_rate: float | None = None, arch_learning_rate: float = 3e-4,
                 arch_beta_1: float = 0.5, arch_weight_decay: float = 1e-3, grad_clip_norm: float | None = 5.0,
                 finite_difference_scale: float = 0.01, **kwargs):
        kwargs.setdefault("name", "darts_net")
        super().__init__(**kwargs)
        input_shape = check_cell_network_args(space, input_shape, num_classes, num_cells, filters, num_reductions)
        self.space = space
        self.image_shape = input_shape
        self.candidate_ops = ((NONE_OP,) if include_none else ()) + tuple(space.ops)
        self.second_order = bool(second_order)
        self.unrolled_learning_rate = unrolled_learning_rate
        self.grad_clip_norm = grad_clip_norm
        if not finite_difference_scale > 0:
            raise ValueError(f"`finite_difference_scale` must be > 0; received {finite_difference_scale!r}.")
        self.finite_difference_scale = float(finite_difference_scale)
        self.stem_conv = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem_conv")
        self.stem_bn = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")
        layout = cell_layout(num_cells, num_reductions, filters)
        self.cell_kinds = [kind for kind, _, _ in layout]
        self.darts_cells = [DartsCell(self.candidate_ops, space.num_nodes, f, reduction=kind == "reduce",
                                      reduce_prev=reduce_prev, name=f"cell{i}_{kind}")
                            for i, (kind, f, reduce_prev) in enumerate(layout)]
        self.classifier = layers.Dense(num_classes, name="classifier")
        shape = (len(cell_edges(space.num_nodes)), len(self.candidate_ops))
        init = keras.initializers.RandomNormal(stddev=1e-3, seed=0)  # the paper's 1e-3 * randn
        self.alphas = {kind: self.add_weight(shape=shape, initializer=init, name=f"alphas_{kind}")
                       for kind in ("normal", "reduce")}
        self.arch_optimizer = keras.optimizers.Adam(arch_learning_rate, beta_1=arch_beta_1,
                                                    weight_decay=arch_weight_decay)
        if keras.config.dtype_policy().name == "mixed_float16":  # as compile() wraps the weights' optimizer
            self.arch_optimizer = keras.optimizers.LossScaleOptimizer(self.arch_optimizer)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "arch_loss")}
        self.trackers.update({name: keras.metrics.SparseCategoricalAccuracy(name=name)
                              for name in ("accuracy", "arch_accuracy")})
        self(np.zeros((1, *input_shape), "float32"))
        self.arch_optimizer.build(self.arch_variables)

    # -- parameters ------------------------------------------------------------------
    @property
    def arch_variables(self) -> list:
        """The architecture parameters: `[alphas_normal, alphas_reduce]`."""
        return [self.alphas["normal"], self.alphas["reduce"]]

    @property
    def weight_variables(self) -> list:
        """Every trainable variable but the architecture parameters."""
        arch = {id(v) for v in self.arch_variables}
        return [v for v in self.trainable_variables if id(v) not in arch]

    def architecture_weights(self) -> dict[str, np.ndarray]:
        """`{"normal", "reduce"}: [edges, ops]` softmax weights (rows sum to 1)."""
        return {kind: keras.ops.convert_to_numpy(keras.ops.softmax(a, axis=-1)) for kind, a in self.alphas.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # -- forward and losses ------------------------------------------------------------
    def call(self, x, training=None):
        weights = {kind: keras.ops.softmax(a, axis=-1) for kind, a in self.alphas.items()}
        x = self.stem_bn(self.stem_conv(x), training=training)
        h0 = h1 = x
        for cell, kind in zip(self.darts_cells, self.cell_kinds):
            h0, h1 = h1, cell([h0, h1], weights[kind], training=training)
        return self.classifier(keras.ops.mean(keras.ops.relu(h1), axis=(1, 2)))

    def _loss(self, x, y):
        logits = self(x, training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        return loss, logits

    def _gradients(self, x, y, variables, factor=None):
        """Gradients of the batch's mean loss (times `factor`, the optimizer's scaling of a
        replica's gradient: `optimizer_step.gradient_factor`), zeros where unconnected."""
        with tf.GradientTape() as tape:
            loss, logits = self._loss(x, y)
        factor = None if factor is None else tf.cast(factor, loss.dtype)
        grads = tape.gradient(loss, variables, output_gradients=factor)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)], loss, logits

    def architecture_gradients(self, train_batch, val_batch):
        """The gradient of the validation loss w.r.t. alpha: first or second order (unrolled).

        Second order (paper, eq. 7-8): with w' = w - xi * dL_train/dw,
        `dL_val(w', a)/da - xi * (dL_train(w+, a)/da - dL_train(w-, a)/da) / (2 eps)`, where
        `w+- = w +- eps * dL_val(w', a)/dw'` and `eps = 0.01 / ||dL_val(w', a)/dw'||` (0.01: `finite_difference_scale`). The
        weights are restored before returning.

        Returns:
            `(gradients [normal, reduce], validation loss, validation logits)`, the gradients
            scaled for `arch_optimizer` (global batch, loss scale; see the module docstring).
        """
        (xt, yt), (xv, yv) = train_batch, val_batch
        arch, weights = self.arch_variables, self.weight_variables
        factor = optimizer_step.gradient_factor(self.arch_optimizer)
        if not self.second_order:
            return self._gradients(xv, yv, arch, factor)
        if optimizer_step.num_replicas() > 1:
            raise ValueError(
                f"DartsNetwork(second_order=True) cannot train under a strategy of "
                f"{optimizer_step.num_replicas()} replicas: its virtual weight step differs between "
                f"replicas, which mirrored weights cannot hold. Use second_order=False (first order) "
                f"or train on one device."
            )
        xi = self.unrolled_learning_rate
        if xi is None:
            xi = self.optimizer.learning_rate
        xi = tf.cast(xi, weights[0].dtype)
        original = [tf.identity(v) for v in weights]
        train_grads, _, _ = self._gradients(xt, yt, weights)
        for v, w, g in zip(weights, original, train_grads):
            v.assign(w - xi * g)
        grads, loss, logits = self._gradients(xv, yv, arch + weights)
        val_arch, val_weights = grads[: len(arch)], grads[len(arch):]
        eps = self.finite_difference_scale / (tf.linalg.global_norm(val_weights) + 1e-12)
        hessian = []
        for sign in (1.0, -1.0):
            for v, w, g in zip(weights, original, val_weights):
                v.assign(w + sign * eps * g)
            hessian.append(self._gradients(xt, yt, arch)[0])
        for v, w in zip(weights, original):
            v.assign(w)
        grads = [(g - xi * (p - n) / (2.0 * eps)) * tf.cast(factor, g.dtype) for g, p, n in zip(val_arch, *hessian)]
        return grads, loss, logits

    def train_step(self, data):
        try:
            (xt, yt), (xv, yv) = data
        except (TypeError, ValueError):
            raise ValueError("DartsNetwork.fit needs batches `((x_train, y_train), (x_val, y_val))`; "
                             "build them with `paired_batches(...)`.") from None
        arch_grads, arch_loss, arch_logits = self.architecture_gradients((xt, yt), (xv, yv))
        self.arch_optimizer.apply(arch_grads, self.arch_variables)
        weights = self.weight_variables
        factor = optimizer_step.gradient_factor(self.optimizer)
        grads, loss, logits = self._gradients(xt, yt, weights, factor)
        if self.grad_clip_norm:  # the replica's mean gradient clipped at grad_clip_norm
            grads, _ = tf.clip_by_global_norm(grads, self.grad_clip_norm * factor)
        self.optimizer.apply(grads, weights)
        self.trackers["loss"].update_state(loss)
        self.trackers["accuracy"].update_state(yt, logits)
        self.trackers["arch_loss"].update_state(arch_loss)
        self.trackers["arch_accuracy"].update_state(yv, arch_logits)
        return {name: m.result() for name, m in self.trackers.items()}

    def test_step(self, data):
        x, y = data[0], data[1]
        logits = self(x, training=False)
        self.trackers["loss"].update_state(
            keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)))
        self.trackers["accuracy"].update_state(y, logits)
        return {name: self.trackers[name].result() for name in ("loss", "accuracy")}

    # -- derivation --------------------------------------------------------------------
    def derive(self, max_skips: int | None = None) -> Architecture:
        """The discrete cell: per node the two strongest inputs, each with its strongest op.

        An input's strength is the largest softmax weight of an operation other than `"none"`
        on its edge (the paper's rule). `max_skips` caps the identity edges of the normal cell
        (P-DARTS): beyond it, the identity edges of lowest weight switch to their strongest
        operation other than `"none"` and identity. None: no cap.
        """
        return derive_architecture(self.space, self.architecture_weights(), self.candidate_ops, max_skips)


def derive_architecture(space: MicroCellSpace, weights: dict, candidate_ops: Sequence[str],
                        max_skips: int | None = None) -> Architecture:
    """`DartsNetwork.derive` on given `{"normal", "reduce"}: [edges, ops]` weights."""
    if max_skips is not None and (not isinstance(max_skips, int) or max_skips < 0):
        raise ValueError(f"`max_skips` must be None or an int >= 0; received {max_skips!r}.")
    candidate_ops = list(candidate_ops)
    edges = cell_edges(space.num_nodes)
    values = {}
    for kind in ("normal", "reduce") if space.reduction else ("normal",):
        w = np.asarray(weights[kind], dtype=np.float64)
        if w.shape != (len(edges), len(candidate_ops)):
            raise ValueError(f"`weights[{kind!r}]` must have shape {(len(edges), len(candidate_ops))}; "
                             f"received {w.shape}.")
        usable = [k for k, op in enumerate(candidate_ops) if op != NONE_OP]
        chosen = []  # (node, slot, edge, op index)
        for i in range(space.num_nodes):
            rows = [e for e, (node, _) in enumerate(edges) if node == i]
            strength = {e: w[e, usable].max() for e in rows}
            best = sorted(rows, key=lambda e: -strength[e])[:2]
            best = sorted(best, key=lambda e: edges[e][1])  # in0 the lower input, as printed
            for slot, e in enumerate(best):
                chosen.append([i, slot, e, max(usable, key=lambda k: w[e, k])])
        if kind == "normal" and max_skips is not None and "identity" in candidate_ops:
            _cap_skips(chosen, w, candidate_ops, usable, max_skips)
        for i, slot, e, k in chosen:
            values[f"{kind}/node{i}/in{slot}"] = edges[e][1]
            values[f"{kind}/node{i}/op{slot}"] = candidate_ops[k]
    return space.from_dict(values)


def _cap_skips(chosen: list, w: np.ndarray, ops: list, usable: list, max_skips: int) -> None:
    skip = ops.index("identity")
    others = [k for k in usable if k != skip]
    skips = sorted((c for c in chosen if c[3] == skip), key=lambda c: w[c[2], skip])
    if not others:
        return
    for c in skips[: max(0, len(skips) - max_skips)]:
        c[3] = max(others, key=lambda k: w[c[2], k])


def operation_mix(space: MicroCellSpace, arch: Architecture) -> dict[str, dict[str, int]]:
    """`{"normal": {op: count}, "reduce": {...}}`: the operations of a cell architecture."""
    cells = ("normal", "reduce") if space.reduction else ("normal",)
    return {kind: dict(Counter(op for node in space.cell(arch, kind) for op in (node[1], node[3])))
            for kind in cells}


class SkipConnectionStopping(keras.callbacks.Callback):
    """Stops a DARTS search once its normal cell would derive more than `max_skips` identities.

    DARTS+'s early stop (Liang et al. 2019): the collapse onto skip connections shows in the
    derivation before the accuracy suffers. Checked at the end of every epoch; the epoch of
    the stop is in `stopped_epoch` (-1 when it never fired).
    """

    def __init__(self, max_skips: int = 2):
        super().__init__()
        self.max_skips = max_skips
        self.stopped_epoch = -1

    def on_epoch_end(self, epoch, logs=None):
        arch = self.model.derive()
        skips = operation_mix(self.model.space, arch)["normal"].get("identity", 0)
        if skips > self.max_skips:
            self.stopped_epoch = epoch
            self.model.stop_training = True


def paired_batches(x_train, y_train, x_val, y_val, batch_size: int = 64, seed: int = 0) -> tf.data.Dataset:
    """An endless, shuffled dataset of `((x_train, y_train), (x_val, y_val))` batch pairs.

    Pass `steps_per_epoch` to `fit`; one epoch of the paper is `len(x_train) // batch_size`.
    """
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ValueError(f"`x` and `y` must have the same length; received train {len(x_train)}/{len(y_train)}, "
                         f"validation {len(x_val)}/{len(y_val)}.")

    def batches(x, y, s):
        data = tf.data.Dataset.from_tensor_slices((np.asarray(x, "float32"), np.asarray(y, "int64")))
        return data.shuffle(len(x), seed=s, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)

    return tf.data.Dataset.zip((batches(x_train, y_train, seed), batches(x_val, y_val, seed + 1))).prefetch(2)
