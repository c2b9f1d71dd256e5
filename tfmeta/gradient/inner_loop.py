"""The inner loop of the MAML family: per-task adapted weights and what steers their steps.

`InnerLoop` is a Keras layer around a built model (the "learner"). `run(support_x, support_y,
steps, order)` copies the model's trainable weights once per task (a leading task axis `T`),
takes `steps` gradient steps on every task's support set and returns the adapted weights,
and optionally the query outputs and losses. Everything that shapes those steps lives here,
as an option of the one loop:

* `inner_layers=["head"]` (ANIL): only the named layers are adapted; the others stay at the
  meta-parameters inside the loop.
* The inner learning rate: fixed (`inner_lr`), one learned rate per parameter
  (`meta_sgd=True`, Meta-SGD) or one learned rate per variable and per step
  (`learn_step_lrs=True`, MAML++).
* `per_step_bn=True` (MAML++): BatchNorm scale/offset and running statistics per inner step;
  every step's row starts from the wrapped layer's own scale/offset.
* `zero_head=True` / `proto_head=True`: every loop starts from a zero Dense head, or from the
  prototype head of the support set (`W_k = 2 c_k`, `b_k = -|c_k|^2`, Proto-MAML).

The layer owns its variables (the learned rates and the per-step BatchNorm rows) and tracks
the wrapped model, so a Keras model holding it trains, saves and restores them. `order=2`
keeps the graph of the inner gradients (second-order MAML); `order` 1 or 0 treats them as
constants. The model runs through `tfmeta.gradient.functional` (vectorised over tasks when
its layers allow, else `stateless_call` per task).

Example:

>>> loop = InnerLoop(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]), inner_lr=0.1)
>>> params, losses, out, _ = loop.run(sx, sy, steps=1, order=2, query_x=qx, query_y=qy)
>>> # params[i]: [T, *shape] adapted weights; losses[-1]: [T] query losses after the step
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.validation import check_positive_int
from tfmeta.gradient.functional import KerasRunner, flatten_layers, make_runner, tile_params

_NEG = -1e9

_VECTORISED = (
    "a model of Conv2D/BatchNormalization/ReLU/pooling/Flatten/Dense layers (the vectorised "
    "path); this model is not one."
)


class Adaptation(NamedTuple):
    """What `InnerLoop.run` returns (unpacks as the 4-tuple it is)."""

    params: list
    """Adapted weights, one `[T, *variable.shape]` tensor per trainable variable."""
    query_losses: list
    """Per-task query losses `[T]`: after every step with `query_every_step`, else the last."""
    query_outputs: Any
    """The query outputs `[T, Q, ...]` of the adapted weights (`None` without `query_x`)."""
    stats: dict
    """`{step: [(mean, variance) per BatchNorm layer]}` (with `collect_stats`)."""


def check_model(model: Any) -> None:
    """Raises a ValueError unless `model` is a built `keras.Model` with trainable weights."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}.")
    if not model.built or not model.trainable_variables:
        raise ValueError(
            "`model` must be a built Keras model with trainable weights (give it an Input "
            "or call it once); received an unbuilt model or one without weights."
        )


def check_learning_rate(value: Any, name: str) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"`{name}` must be a positive number; received {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number; received {value!r}.")
    return float(value)


def mask_logits(outputs, ways):
    """`outputs` with the logits of classes `>= ways` set very negative (`ways=None`: all kept)."""
    if ways is None:
        return outputs
    keep = tf.range(tf.shape(outputs)[-1]) < tf.cast(ways, tf.int32)
    return tf.where(keep, outputs, tf.cast(_NEG, outputs.dtype))


def all_sublayers(model) -> list:
    """Every layer of a (possibly nested) model, nested models included, in order."""
    out = []
    for layer in getattr(model, "layers", None) or []:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(all_sublayers(layer))
    return out


class InnerLoop(keras.layers.Layer):
    """The one inner loop of MAML, its variants and Reptile, with the variables it learns.

    Args:
        model: A built Keras model: inputs -> logits (classification) or predictions.
        inner_lr: Inner learning rate (initial value when learned).
        inner_steps: Inner steps trained: the learned per-step rates and BatchNorm rows
            cover these; later (test-time) steps reuse the last trained step's.
        inner_layers: Names of the layers adapted (ANIL: the head); `None`: every weight.
        meta_sgd: One learned inner learning rate per parameter (Meta-SGD).
        learn_step_lrs: One learned rate per variable and per step (MAML++).
        per_step_bn: Per-step BatchNorm scale/offset and running statistics (MAML++).
        bn_momentum: Momentum of the per-step running statistics.
        zero_head: Start every loop from a zero Dense head (the head is zeroed once and
            gets no meta-gradient).
        proto_head: Start every loop from the support set's prototype head.
        task: `"classification"`, `"regression"` or `"auto"` (integer labels classify).
        fast_path: `"auto"`, `True` (vectorised or raise) or `False` (per-task loop).
        conv_mode: `"auto"`, `"grouped"` or `"split"` (see `VectorizedRunner`).

    Raises:
        ValueError: On invalid arguments (naming the argument and the value received).
    """

    def __init__(
        self,
        model: keras.Model,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        *,
        inner_layers: Sequence[str] | None = None,
        meta_sgd: bool = False,
        learn_step_lrs: bool = False,
        per_step_bn: bool = False,
        bn_momentum: float = 0.9,
        zero_head: bool = False,
        proto_head: bool = False,
        task: str = "auto",
        fast_path: bool | str = "auto",
        conv_mode: str = "auto",
        name: str = "inner_loop",
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        check_model(model)
        self.inner_lr = check_learning_rate(inner_lr, "inner_lr")
        self.inner_steps = check_positive_int(inner_steps, "inner_steps")
        if meta_sgd and learn_step_lrs:
            raise ValueError("`meta_sgd` and `learn_step_lrs` are alternatives; received both True.")
        if task not in ("auto", "classification", "regression"):
            raise ValueError(
                f"`task` must be 'auto', 'classification' or 'regression'; received {task!r}."
            )
        if zero_head and proto_head:
            raise ValueError("`zero_head` and `proto_head` are alternatives; received both True.")
        self.meta_sgd, self.learn_step_lrs = bool(meta_sgd), bool(learn_step_lrs)
        self.per_step_bn, self.bn_momentum = bool(per_step_bn), float(bn_momentum)
        self.zero_head, self.proto_head = bool(zero_head), bool(proto_head)
        self.task = task
        self.network = model
        self.runner = make_runner(model, fast_path=fast_path, conv_mode=conv_mode)
        self.fast_path = not isinstance(self.runner, KerasRunner)
        for option in ("per_step_bn", "proto_head"):
            if getattr(self, option) and not self.fast_path:
                raise ValueError(f"`{option}=True` needs {_VECTORISED}")
        self.inner_layers = None if inner_layers is None else list(inner_layers)
        adapted = self._indices_of(self.inner_layers)
        if self.per_step_bn:  # the layers' own BN scale/offset are replaced by per-step ones
            bn_ids = {id(v) for layer in self.runner.bn_layers for v in layer.trainable_variables}
            adapted = [i for i in adapted if id(self.runner.variables[i]) not in bn_ids]
        self.adapted = tuple(adapted)
        self.head_indices = ()
        if self.zero_head or self.proto_head:
            self.head_indices = self._head_indices("zero_head" if self.zero_head else "proto_head")
        self._build_learning_rates()
        self._build_per_step_bn()
        self.built = True

    # ------------------------------------------------------------------ setup
    def _indices_of(self, names) -> list[int]:
        """Indices (in `runner.variables`) of the weights of the layers `names` (None: all)."""
        variables = self.runner.variables
        if names is None:
            return list(range(len(variables)))
        if isinstance(names, str):
            names = [names]
        model = self.network
        nested = [l for l in all_sublayers(model) if isinstance(l, keras.Model)]
        by_name = {layer.name: layer for layer in flatten_layers(model) + nested}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(
                f"`inner_layers` names layers not in the model: {missing}; the model's layers "
                f"are {sorted(by_name)}."
            )
        ids = {id(v) for n in names for v in by_name[n].trainable_variables}
        chosen = [i for i, v in enumerate(variables) if id(v) in ids]
        if not chosen:
            raise ValueError(f"`inner_layers`={list(names)} hold no trainable weights.")
        return chosen

    def _head_indices(self, option: str) -> tuple:
        """Indices of the Dense head's weights, which are zeroed (`option` names the argument
        that asked for it, in errors)."""
        with_weights = [l for l in flatten_layers(self.network) if l.trainable_variables]
        head = with_weights[-1] if with_weights else None
        if not isinstance(head, keras.layers.Dense):
            raise ValueError(
                f"`{option}=True` needs a model whose last layer with weights is a "
                f"keras.layers.Dense head; received one ending in {type(head).__name__}."
            )
        chosen = self._indices_of([head.name])
        if not set(chosen) <= set(self.adapted):
            raise ValueError(
                f"`{option}=True` needs the head {head.name!r} adapted in the inner loop; "
                f"received `inner_layers`={self.inner_layers}, which leaves it out."
            )
        if option == "proto_head" and (len(chosen) != 2 or not head.use_bias):
            raise ValueError(
                f"`proto_head=True` needs a Dense head with a bias; received {head.name!r} "
                f"with use_bias={head.use_bias}."
            )
        for v in head.trainable_variables:
            v.assign(tf.zeros(v.shape, v.dtype))
        return tuple(chosen)

    def _build_learning_rates(self):
        """Meta-SGD: a rate per parameter; MAML++: a rate per variable and *trained* step
        (test-time steps beyond `inner_steps` reuse the last: a row training never reaches
        would stay at its initial value)."""
        self.lr_vars = []
        if not (self.meta_sgd or self.learn_step_lrs):
            return
        variables = self.runner.variables
        for j, i in enumerate(self.adapted):
            shape = tuple(variables[i].shape) if self.meta_sgd else (self.inner_steps,)
            self.lr_vars.append(
                self.add_weight(
                    shape=shape,
                    initializer=keras.initializers.Constant(self.inner_lr),
                    name=f"meta_sgd_lr_{j}" if self.meta_sgd else f"step_lr_{j}",
                )
            )

    def _build_per_step_bn(self):
        """A row per step, `inner_steps + 1` (the query pass after the last trained step);
        later test-time steps reuse the last row. Every row starts from the layer's own
        scale/offset (1 and 0 for a fresh layer), so a pre-trained network keeps them."""
        self.bn_step_gamma, self.bn_step_beta = [], []
        self.bn_step_mean, self.bn_step_var = [], []
        self.bn_rows = self.inner_steps + 1 if self.per_step_bn else 0
        if not self.per_step_bn:
            return
        rows = self.bn_rows
        for k, layer in enumerate(self.runner.bn_layers):
            c = int(layer.gamma.shape[0] if layer.scale else layer.beta.shape[0])

            def row_weight(source, label):
                return self.add_weight(shape=(rows, c), initializer=_rows_of(source), name=f"bn{k}_step_{label}")

            self.bn_step_gamma.append(row_weight(layer.gamma, "gamma") if layer.scale else None)
            self.bn_step_beta.append(row_weight(layer.beta, "beta") if layer.center else None)
            # Updated in the train step, once per replica: "mean" makes every replica store the
            # mean over replicas (a tf.distribute strategy's cross-replica mean).
            for store, init, label in ((self.bn_step_mean, "zeros", "mean"), (self.bn_step_var, "ones", "var")):
                store.append(self.add_weight(
                    shape=(rows, c), initializer=init, trainable=False, aggregation="mean",
                    name=f"bn{k}_step_{label}",
                ))

    # ------------------------------------------------------------------ pieces of a step
    def is_classification(self, labels) -> bool:
        """Whether `labels` are scored as classes (`task`, or with `"auto"` their dtype)."""
        if self.task != "auto":
            return self.task == "classification"
        return labels.dtype.is_integer

    def learning_rate(self, j: int, step: int):
        """The rate of the `j`-th adapted variable at `step` (a scalar or, Meta-SGD, a tensor)."""
        if self.meta_sgd:
            return self.lr_vars[j]
        if self.learn_step_lrs:
            return self.lr_vars[j][min(step, self.lr_vars[j].shape[0] - 1)]
        return self.inner_lr

    def bn_row(self, step: int) -> int:
        """The per-step BatchNorm row `step` uses."""
        return min(step, self.bn_rows - 1)

    def forward(
        self, params, x, step: int, *, use_running=False, collect=None, once=True, skip_head=False
    ):
        """Runs the network with per-task `params` on `x [T, B, ...]` at inner step `step`.

        `once=False` when a gradient of a gradient will flow through this pass (the support
        passes of second-order MAML); `skip_head` returns the features the Dense head reads.
        Outputs are float32 under mixed precision (the losses are computed in float32).
        """
        kwargs = {"differentiated_once": once}
        if skip_head:
            kwargs["skip_head"] = True
        if self.per_step_bn:
            row = self.bn_row(step)
            kwargs["bn_params"] = {
                k: (None if g is None else g[row], None if b is None else b[row])
                for k, (g, b) in enumerate(zip(self.bn_step_gamma, self.bn_step_beta))
            }
            if use_running:
                kwargs["bn_stats"] = {
                    k: (m[row], v[row]) for k, (m, v) in enumerate(zip(self.bn_step_mean, self.bn_step_var))
                }
        out = self.runner(params, x, collect=collect, **kwargs)
        if out.dtype in (tf.bfloat16, tf.float16):
            out = tf.cast(out, tf.float32)
        return out

    def task_loss(self, outputs, labels, classification: bool, ways=None):
        """Per-task loss `[T]`: cross-entropy of the (masked) logits, or the mean squared error."""
        if classification:
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=mask_logits(outputs, ways)
            )
            return tf.reduce_mean(ce, axis=1)
        labels = tf.reshape(tf.cast(labels, outputs.dtype), tf.shape(outputs))
        err = tf.reshape(tf.square(outputs - labels), [tf.shape(outputs)[0], -1])
        return tf.reduce_mean(err, axis=1)

    def initial_params(self, tasks) -> list:
        """The meta-parameters tiled over `tasks` (the zero head as constants: no meta-gradient)."""
        params = tile_params([v.value for v in self.runner.variables], tasks)
        for i in self.head_indices if self.zero_head else ():
            params[i] = tf.zeros(tf.shape(params[i]), params[i].dtype)
        return params

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        support_x,
        support_y,
        steps: int,
        order: int,
        *,
        query_x=None,
        query_y=None,
        ways=None,
        use_running: bool = False,
        collect_stats: bool = False,
        query_every_step: bool = False,
        loss_scale=None,
    ) -> Adaptation:
        """Adapts per-task weights on the support sets: the one inner loop of every variant.

        Args:
            support_x: `[T, S, ...]` support inputs.
            support_y: `[T, S]` int labels or `[T, S, ...]` float targets.
            steps: Number of inner gradient steps.
            order: 2 keeps the graph of the inner gradients (second order); 1 or 0 treats
                them as constants.
            query_x: Optional `[T, Q, ...]` queries, answered by the adapted weights.
            query_y: Optional query labels/targets: the per-task query losses are returned.
            ways: Optional number of classes (logits past it are masked).
            use_running: Normalise BN with the per-step running statistics.
            collect_stats: Return the BN batch statistics of every forward pass.
            query_every_step: With `query_y`, also the query losses after every earlier step
                (MAML++'s multi-step loss).
            loss_scale: Optional float32 factor the support losses are multiplied by before
                differentiation, the inner gradients divided by after: under `mixed_float16`
                the training step passes its `LossScaleOptimizer`'s dynamic scale, so the
                float16 backward pass of the inner loop does not underflow (and a step whose
                inner gradients overflow gets a non-finite meta-gradient, which the optimizer
                skips, lowering the scale).

        Returns:
            An `Adaptation`: `(params, query_losses, query_outputs, stats)`.
        """
        classification = self.is_classification(support_y)
        params = self.initial_params(tf.shape(support_x)[0])
        if self.proto_head:
            if not classification:
                raise ValueError("`proto_head=True` needs a classification task (integer labels).")
            params = self._prototype_head(params, support_x, support_y, use_running)
        stats, query_losses = {}, []
        for s in range(steps):
            collect = [] if collect_stats else None
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                watched = [params[i] for i in self.adapted]
                for p in watched:
                    tape.watch(p)
                out = self.forward(params, support_x, s, use_running=use_running, collect=collect, once=order < 2)
                loss = tf.reduce_sum(self.task_loss(out, support_y, classification, ways))
            grads = tape.gradient(
                loss, watched, output_gradients=loss_scale,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            if loss_scale is not None:
                grads = [g / loss_scale for g in grads]
            if collect_stats:
                stats[s] = collect
            params = list(params)
            for j, (i, g) in enumerate(zip(self.adapted, grads)):
                if order < 2:
                    g = tf.stop_gradient(g)
                params[i] = params[i] - self.learning_rate(j, s) * g
            if query_every_step and query_x is not None and query_y is not None and s < steps - 1:
                q = self.forward(params, query_x, s + 1, use_running=use_running)
                query_losses.append(self.task_loss(q, query_y, classification, ways))
        query_out = None
        if query_x is not None:
            collect = [] if collect_stats else None
            query_out = self.forward(params, query_x, steps, use_running=use_running, collect=collect)
            if collect_stats:
                stats[steps] = collect
            if query_y is not None:
                query_losses.append(self.task_loss(query_out, query_y, classification, ways))
        return Adaptation(params, query_losses, query_out, stats)

    def _prototype_head(self, params, support_x, support_y, use_running: bool) -> list:
        """`params` with the Dense head set to the support set's prototype classifier:
        kernel `[T, D, U]` = 2 c, bias `[T, U]` = -|c|^2 (zero for classes without examples)."""
        features = self.forward(params, support_x, 0, use_running=use_running, skip_head=True)
        if features.shape.rank != 3:
            raise ValueError(
                "`proto_head=True` needs flat features before the Dense head (end the body with "
                f"Flatten or global pooling); received features of shape {features.shape}."
            )
        kernel_i, bias_i = self.head_indices
        units = params[bias_i].shape[-1]
        onehot = tf.one_hot(tf.cast(support_y, tf.int32), units, dtype=features.dtype)  # [T, S, U]
        counts = tf.reduce_sum(onehot, axis=1)  # [T, U]
        sums = tf.einsum("tsu,tsd->tud", onehot, features)
        prototypes = sums / tf.maximum(counts, 1.0)[..., tf.newaxis]  # [T, U, D]
        params = list(params)
        params[kernel_i] = tf.cast(2.0 * tf.transpose(prototypes, [0, 2, 1]), params[kernel_i].dtype)
        params[bias_i] = tf.cast(-tf.reduce_sum(tf.square(prototypes), -1), params[bias_i].dtype)
        return params

    # ------------------------------------------------------------------ per-step BatchNorm state
    def update_running_stats(self, stats: dict) -> None:
        """Moves the per-step running statistics towards `run(collect_stats=True)`'s `stats`."""
        m = self.bn_momentum
        for step, per_bn in stats.items():
            row = self.bn_row(step)
            for k, (mean, var) in enumerate(per_bn):
                for store, value in ((self.bn_step_mean[k], mean), (self.bn_step_var[k], var)):
                    old = store.value
                    new = tf.tensor_scatter_nd_update(
                        old, [[row]], [m * old[row] + (1.0 - m) * tf.stop_gradient(value)]
                    )
                    store.assign(new)

    def step_bn_weights(self, step: int) -> list[tuple]:
        """`(gamma or None, beta or None)` of every BatchNorm layer at `step` (per-step BN)."""
        row = self.bn_row(step)
        return [
            (None if g is None else g[row], None if b is None else b[row])
            for g, b in zip(self.bn_step_gamma, self.bn_step_beta)
        ]

    def load_own_variables(self, store):
        """Keras weights loading. In a file of the earlier layout this layer's entry is empty:
        its owner has loaded these variables already (`load_from_owner_entry`)."""
        if self.__dict__.pop("_loaded_by_owner", False) and not len(store.keys()):
            return
        super().load_own_variables(store)

    def load_from_owner_entry(self, store) -> None:
        """Loads these variables from the owning learner's own entry of a weights file: the
        layout of files written when they were the learner's variables."""
        super().load_own_variables(store)
        self.__dict__["_loaded_by_owner"] = True

    def metadata(self) -> dict:
        """The options recorded in an export's `tfmeta.json` under `"adaptation"`."""
        return {
            "inner_lr": self.inner_lr,
            "inner_layers": None if self.inner_layers is None else list(self.inner_layers),
            "meta_sgd": self.meta_sgd,
            "learn_step_lrs": self.learn_step_lrs,
            "per_step_bn": self.per_step_bn,
            "zero_head": self.zero_head,
            "proto_head": self.proto_head,
            "output_units": int(self.network.output_shape[-1]),
        }


def _rows_of(variable):
    """An initializer that repeats `variable`'s current value along a new leading axis."""
    value = np.asarray(keras.ops.convert_to_numpy(variable.value), dtype="float32")

    def initializer(shape, dtype=None):
        return tf.cast(tf.broadcast_to(value, shape), dtype or "float32")

    return initializer


__all__ = ["InnerLoop", "Adaptation", "check_model", "check_learning_rate", "mask_logits"]
