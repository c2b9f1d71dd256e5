"""Model-Agnostic Meta-Learning (Finn et al., 2017) and its variants, as one `keras.Model`.

`MAML(model, inner_lr, inner_steps, order=2)` wraps any built Keras model (the "learner").
`train_step` adapts a copy of the weights to every task of the meta-batch with
`inner_steps` steps of gradient descent on the support set (nested `tf.GradientTape`s), then
back-propagates the query loss of the adapted weights to the meta-parameters through the
inner loop (true second order; `order=1` drops the second-order terms).

The variants are arguments of the one inner loop, not copies of it:

* `order=1`: first-order MAML (inner gradients are treated as constants).
* `inner_layers=["head"]`: ANIL (Raghu et al., 2020): only the named layers are adapted in
  the inner loop; the others are meta-learned only.
* `meta_sgd=True`: Meta-SGD (Li et al., 2017): a learned inner learning rate per parameter.
* MAML++ (Antoniou et al., 2019): `multi_step_loss=True` (query loss after every inner step,
  weights annealed towards the last step over `msl_anneal_steps` meta-iterations),
  `learn_step_lrs=True` (a learned learning rate per layer variable and per step) and
  `per_step_bn=True` (BatchNorm scale/offset and running statistics per inner step; every
  step's scale/offset start from the wrapped layer's own, so a pre-trained network keeps them).
  Only the `inner_steps` trained steps get their own rates and BN parameters; with
  `eval_steps > inner_steps` the extra test-time steps reuse the last trained step's.
* `zero_head=True`: the Dense head starts every inner loop at zero (the "zeroing trick" of
  Kao et al., 2022; equivalent to Ye & Chao, 2022's UNICORN-MAML, a single meta-learned head
  vector shared by all classes, because a column shared by every class cancels in the
  softmax and in the body's gradients). Every class then starts alike, so predictions do
  not depend on which label each support class was given; the first inner step makes each
  class's head column its support embeddings' deviation from the mean, a prototype.
* `proto_head=True`: Proto-MAML (Triantafillou et al., 2020): every inner loop starts from
  the head a prototypical network amounts to, `W_k = 2 c_k`, `b_k = -|c_k|^2`, with `c_k`
  the mean embedding of class `k`'s support examples (the softmax of these logits is the
  softmax over negative squared Euclidean distances to the prototypes). Before any inner step
  the model classifies as a prototypical network with its encoder; the inner steps then
  fine-tune from there. The meta-gradient flows through the prototypes into the encoder;
  the head's own weights are unused (set to zero). Needs the vectorised path. With one shot
  and no test-time views every support example *is* its class's prototype, so the support
  loss and the inner steps are nearly zero: the adaptation matters with several shots or
  `test_time_views`.
* `tfmeta.Reptile` (in `reptile.py`) reuses the same inner loop.

**Batching.** Every task's weights carry a leading task axis `T`. For models made of
Conv2D / BatchNormalization / ReLU / pooling / Flatten / Dense layers (conv4 + a Dense head, the
sinusoid MLP) the tasks of a meta-batch run together, one grouped convolution or batched
matmul per layer (`tfmeta.gradient.functional.VectorizedRunner`). Any other Keras model runs
through `model.stateless_call` once per task (`fast_path=False` forces that reference path).

**BatchNormalization.** As in the MAML paper's code, BN normalises with the statistics of
the batch it sees, per task, in the inner loop (the support set) and for the query pass
(the query set), at training and at test time (transductive); the layers' moving averages
are not used or updated. With `per_step_bn=True` (vectorised path only) every inner step has
its own BN scale/offset, and per-step running statistics are accumulated during training;
`bn_test_stats="running"` makes evaluation and serving use them instead of batch statistics.
`adapt()` returns a plain Keras model whose BN moving statistics are set to the statistics of
the support set under the adapted weights, so it predicts single examples in inference mode.

**Test-time augmentation.** `test_time_views=V > 1` (image classification) makes evaluation,
`predict_few_shot` and the exported `few_shot` signature see every image as `V` views: the
image and `V - 1` fixed affine distortions drawn once from `tfmeta.data.augment.RandomAffine`
(`tfmeta.test_time_augmentation.draw_test_time_transforms`). The inner loop adapts on all views of the
support set (a 1-shot task becomes a V-shot task of distorted copies) and each query's class
probabilities are averaged over its views. Training and `adapt()` are unchanged. The warp is
a fixed gather (`tfmeta.test_time_augmentation.affine_views`), so the export still compiles with XLA.

Example:

>>> net = keras.Sequential([tfmeta.backbones.conv4((28, 28, 1)), keras.layers.Dense(5)])
>>> maml = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2)
>>> maml.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> maml.fit(sampler.dataset(meta_batch=32), steps_per_epoch=100, epochs=10)
>>> adapted = maml.adapt(support_x, support_y, steps=3)      # a keras.Model
>>> maml.evaluate_episodes(test_x, test_y, ways=5, shots=1)   # {"accuracy", "ci95", ...}
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.validation import check_positive_int, check_support_set
from tfmeta.fewshot.evaluation import mean_confidence_interval
from tfmeta.fewshot import FewShotMixin
from tfmeta.gradient.functional import KerasRunner, flatten_layers, make_runner, tile_params
from tfmeta.training_state import PrebuiltOptimizerMixin

_NEG = -1e9

#: Input values (images x height x width x channels) one evaluation batch may hold: about
#: 5,300 images of 28 x 28, so the first conv4 layer's activations stay near 1 GB.
EVAL_PIXEL_BUDGET = 2**22


def _check_lr(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"`{name}` must be a positive number; received {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number; received {value!r}.")
    return float(value)


class MAML(PrebuiltOptimizerMixin, FewShotMixin, keras.Model):
    """MAML and its variants (first order, ANIL, Meta-SGD, MAML++) around any Keras model.

    Args:
        model: A built Keras model: inputs -> logits (classification; its last layer has as
            many units as the training ways) or -> predictions (regression).
        inner_lr: Inner-loop learning rate (initial value when learned).
        inner_steps: Inner gradient steps during meta-training.
        order: 2 for second-order MAML, 1 for first-order MAML.
        eval_steps: Inner steps at test time, in `adapt`, evaluation and the exported
            `few_shot` signature; defaults to `inner_steps`. 0 scores the meta-learned
            starting point itself (with `proto_head=True`: the encoder's prototypical
            network, the baseline the inner steps must beat).
        inner_layers: Names of the layers adapted in the inner loop (ANIL: the head);
            `None` adapts every trainable weight.
        meta_sgd: Learn one inner learning rate per parameter (Meta-SGD).
        learn_step_lrs: Learn one inner learning rate per variable and per step (MAML++).
        multi_step_loss: Meta-loss over the query loss after every inner step (MAML++).
        msl_anneal_steps: Meta-iterations over which the multi-step loss weights move to the
            last step.
        per_step_bn: Per-step BatchNorm scale/offset and running statistics (MAML++).
        bn_test_stats: `"batch"` (transductive, default) or `"running"` (per-step running
            statistics, needs `per_step_bn=True`) at test time.
        bn_momentum: Momentum of the per-step running statistics.
        task: `"classification"`, `"regression"` or `"auto"` (integer labels -> classification).
        zero_head: Start every inner loop from a zero Dense head (the last trainable layer,
            which must be a `keras.layers.Dense` adapted in the inner loop). The head's
            weights are set to zero and are not meta-learned; see "zeroing trick" above.
        proto_head: Start every inner loop from the prototype head of the support set
            (Proto-MAML, see above); the same requirements as `zero_head`, and the
            vectorised path. The two are alternatives.
        ways: Optional classes per training episode; checked against the model's output
            units (episodes may use fewer classes than units: extra logits are masked at
            test time).
        fast_path: `"auto"`, `True` (vectorised or raise) or `False` (per-task loop).
        conv_mode: `"auto"` (default), `"grouped"` or `"split"` convolution in the
            vectorised path; see `tfmeta.gradient.functional.VectorizedRunner`.
        test_time_views: Views of every image at test time (1 = the image alone); see
            "Test-time augmentation" above. Costs `V` times the adaptation and query passes.
        test_time_seed: Seed of the test-time distortions.
        name: Model name.

    Speed: the vectorised path runs every task of a meta-batch in one grouped convolution
    per layer, uses TensorFlow's fused batch-norm kernel on the passes that are differentiated
    only once (query passes, first-order variants, evaluation) and honours the model's Keras
    dtype policy: build it under `keras.config.set_dtype_policy("mixed_bfloat16")` to run the
    convolutions in bfloat16 with float32 weights, inner-loop updates and losses.

    Raises:
        ValueError: On invalid arguments (naming the argument and the value received).
    """

    learner_name = "maml"

    def __init__(
        self,
        model: keras.Model,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        order: int = 2,
        *,
        eval_steps: int | None = None,
        inner_layers: Sequence[str] | None = None,
        meta_sgd: bool = False,
        learn_step_lrs: bool = False,
        multi_step_loss: bool = False,
        msl_anneal_steps: int = 10000,
        per_step_bn: bool = False,
        zero_head: bool = False,
        proto_head: bool = False,
        bn_test_stats: str = "batch",
        bn_momentum: float = 0.9,
        task: str = "auto",
        ways: int | None = None,
        fast_path: bool | str = "auto",
        conv_mode: str = "auto",
        test_time_views: int = 1,
        test_time_seed: int = 0,
        name: str = "maml",
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}.")
        if not model.built or not model.trainable_variables:
            raise ValueError(
                "`model` must be a built Keras model with trainable weights (give it an Input "
                "or call it once); received an unbuilt model or one without weights."
            )
        self.inner_lr = _check_lr(inner_lr, "inner_lr")
        self.inner_steps = check_positive_int(inner_steps, "inner_steps")
        if order not in (0, 1, 2) or isinstance(order, bool):
            raise ValueError(f"`order` must be 1 or 2; received {order!r}.")
        self.order = int(order)
        self.eval_steps = (
            self.inner_steps if eval_steps is None
            else check_positive_int(eval_steps, "eval_steps", minimum=0)
        )
        if meta_sgd and learn_step_lrs:
            raise ValueError(
                "`meta_sgd` and `learn_step_lrs` are alternatives; received both True."
            )
        if task not in ("auto", "classification", "regression"):
            raise ValueError(
                f"`task` must be 'auto', 'classification' or 'regression'; received {task!r}."
            )
        if bn_test_stats not in ("batch", "running"):
            raise ValueError(f"`bn_test_stats` must be 'batch' or 'running'; received {bn_test_stats!r}.")
        if bn_test_stats == "running" and not per_step_bn:
            raise ValueError("`bn_test_stats='running'` needs `per_step_bn=True`.")
        self.meta_sgd = bool(meta_sgd)
        self.learn_step_lrs = bool(learn_step_lrs)
        self.multi_step_loss = bool(multi_step_loss)
        self.msl_anneal_steps = check_positive_int(msl_anneal_steps, "msl_anneal_steps")
        self.per_step_bn = bool(per_step_bn)
        self.bn_test_stats = bn_test_stats
        self.bn_momentum = float(bn_momentum)
        self.task = task
        units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
        if ways is not None:
            ways = check_positive_int(ways, "ways", 2)
            if units is not None and ways > units:
                raise ValueError(
                    f"`ways`={ways} exceeds the model's {units} output units; give the head "
                    "at least `ways` units."
                )
        self.ways = ways
        self.network = model
        self.test_time_views = check_positive_int(test_time_views, "test_time_views")
        self.test_time_seed = int(test_time_seed)
        self.test_time_transforms = None
        if self.test_time_views > 1:
            shape = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else ()
            if len(shape) != 3 or None in shape[:2]:
                raise ValueError(
                    "`test_time_views` > 1 needs a model of fixed-size images [height, width, "
                    f"channels]; received a model with input shape {model.input_shape}."
                )
            from tfmeta.test_time_augmentation import draw_test_time_transforms

            self.test_time_transforms = draw_test_time_transforms(
                self.test_time_views, shape, seed=self.test_time_seed
            )
        self.runner = make_runner(model, fast_path=fast_path, conv_mode=conv_mode)
        self.fast_path = not isinstance(self.runner, KerasRunner)
        if self.per_step_bn and not self.fast_path:
            raise ValueError(
                "`per_step_bn=True` needs a model of Conv2D/BatchNormalization/ReLU/pooling/"
                "Flatten/Dense layers (the vectorised path); this model is not one."
            )
        self.inner_layers = None if inner_layers is None else list(inner_layers)
        self._adapted = self._adapted_indices(model, self.inner_layers)
        if self.per_step_bn:  # the layers' own BN scale/offset are replaced by per-step ones
            bn_ids = {id(v) for layer in self.runner.bn_layers for v in layer.trainable_variables}
            self._adapted = [i for i in self._adapted if id(self.runner.variables[i]) not in bn_ids]
        if zero_head and proto_head:
            raise ValueError("`zero_head` and `proto_head` are alternatives; received both True.")
        if proto_head and not self.fast_path:
            raise ValueError(
                "`proto_head=True` needs a model of Conv2D/BatchNormalization/ReLU/pooling/"
                "Flatten/Dense layers (the vectorised path); this model is not one."
            )
        self.zero_head = bool(zero_head)
        self.proto_head = bool(proto_head)
        self._zero_indices = self._zero_head_indices(model) if self.zero_head else []
        self._proto_indices = (
            self._zero_head_indices(model, "proto_head") if self.proto_head else []
        )
        self._build_inner_lrs()
        self._build_per_step_bn()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self.built = True

    # ------------------------------------------------------------------ setup
    @property
    def encoder(self) -> keras.Model:
        """The wrapped model (FewShotMixin reads its input shape)."""
        return self.network

    def _adapted_indices(self, model, names) -> list[int]:
        variables = self.runner.variables
        if names is None:
            return list(range(len(variables)))
        if isinstance(names, str):
            names = [names]
        by_name = {}
        for layer in flatten_layers(model) + [
            l for l in _all_sublayers(model) if isinstance(l, keras.Model)
        ]:
            by_name[layer.name] = layer
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

    def _zero_head_indices(self, model, option: str = "zero_head") -> list[int]:
        """Indices (in `runner.variables`) of the Dense head's weights, which are zeroed
        (`option` names the argument that asked for it, in errors)."""
        with_weights = [l for l in flatten_layers(model) if l.trainable_variables]
        head = with_weights[-1] if with_weights else None
        if not isinstance(head, keras.layers.Dense):
            raise ValueError(
                f"`{option}=True` needs a model whose last layer with weights is a "
                f"keras.layers.Dense head; received one ending in {type(head).__name__}."
            )
        chosen = self._adapted_indices(model, [head.name])
        if not set(chosen) <= set(self._adapted):
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
        return chosen

    def _build_inner_lrs(self):
        variables = self.runner.variables
        self.inner_lr_vars = []
        if self.meta_sgd:
            for j, i in enumerate(self._adapted):
                self.inner_lr_vars.append(
                    self.add_weight(
                        shape=tuple(variables[i].shape),
                        initializer=keras.initializers.Constant(self.inner_lr),
                        name=f"meta_sgd_lr_{j}",
                    )
                )
        elif self.learn_step_lrs:
            # One rate per *trained* step: test-time steps beyond `inner_steps` reuse the last
            # one (a row that training never reaches would stay at its initial value).
            steps = self.inner_steps
            for j, i in enumerate(self._adapted):
                self.inner_lr_vars.append(
                    self.add_weight(
                        shape=(steps,),
                        initializer=keras.initializers.Constant(self.inner_lr),
                        name=f"step_lr_{j}",
                    )
                )

    def _build_per_step_bn(self):
        self.bn_step_gamma, self.bn_step_beta = [], []
        self.bn_step_mean, self.bn_step_var = [], []
        self.bn_stats_seen = None
        if not self.per_step_bn:
            return
        rows = self.inner_steps + 1  # later test-time steps reuse the last trained row
        self._bn_rows = rows
        for k, layer in enumerate(self.runner.bn_layers):
            c = int(layer.gamma.shape[0] if layer.scale else layer.beta.shape[0])
            # Every step's row starts from the layer's own scale/offset (1 and 0 for a fresh
            # layer), so a pre-trained network keeps what its BatchNormalization learned.
            self.bn_step_gamma.append(
                self.add_weight(
                    shape=(rows, c), initializer=_rows_of(layer.gamma), name=f"bn{k}_step_gamma"
                )
                if layer.scale
                else None
            )
            self.bn_step_beta.append(
                self.add_weight(
                    shape=(rows, c), initializer=_rows_of(layer.beta), name=f"bn{k}_step_beta"
                )
                if layer.center
                else None
            )
            self.bn_step_mean.append(
                self.add_weight(shape=(rows, c), initializer="zeros", trainable=False, name=f"bn{k}_step_mean")
            )
            self.bn_step_var.append(
                self.add_weight(shape=(rows, c), initializer="ones", trainable=False, name=f"bn{k}_step_var")
            )

    # ------------------------------------------------------------------ core
    def _is_classification(self, labels) -> bool:
        if self.task != "auto":
            return self.task == "classification"
        return labels.dtype.is_integer

    def _forward(
        self,
        params,
        x,
        step: int,
        *,
        use_running: bool = False,
        collect=None,
        once: bool = True,
        skip_head: bool = False,
    ):
        """Runs the network with per-task `params`; `once=False` when a gradient of a gradient
        will flow through this pass (the support passes of second-order MAML); `skip_head`
        returns the features the Dense head reads."""
        kwargs = {"differentiated_once": once}
        if skip_head:
            kwargs["skip_head"] = True
        if self.per_step_bn:
            idx = min(step, self._bn_rows - 1)
            kwargs["bn_params"] = {
                k: (
                    None if g is None else g[idx],
                    None if b is None else b[idx],
                )
                for k, (g, b) in enumerate(zip(self.bn_step_gamma, self.bn_step_beta))
            }
            if use_running:
                kwargs["bn_stats"] = {
                    k: (m[idx], v[idx]) for k, (m, v) in enumerate(zip(self.bn_step_mean, self.bn_step_var))
                }
        out = self.runner(params, x, collect=collect, **kwargs)
        if out.dtype in (tf.bfloat16, tf.float16):  # mixed precision: losses in float32
            out = tf.cast(out, tf.float32)
        return out

    def _task_loss(self, outputs, labels, classification: bool, ways=None):
        """Per-task loss `[T]`."""
        if classification:
            logits = _mask_logits(outputs, ways)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=logits
            )
            return tf.reduce_mean(ce, axis=1)
        labels = tf.cast(labels, outputs.dtype)
        labels = tf.reshape(labels, tf.shape(outputs))
        err = tf.reshape(tf.square(outputs - labels), [tf.shape(outputs)[0], -1])
        return tf.reduce_mean(err, axis=1)

    def _lr(self, j: int, step: int):
        if self.meta_sgd:
            return self.inner_lr_vars[j]
        if self.learn_step_lrs:
            return self.inner_lr_vars[j][min(step, self.inner_lr_vars[j].shape[0] - 1)]
        return self.inner_lr

    def inner_loop(
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
    ):
        """Adapts per-task weights on the support sets: the one inner loop of every variant.

        Args:
            support_x: `[T, S, ...]` support inputs.
            support_y: `[T, S]` int labels or `[T, S, ...]` float targets.
            steps: Number of inner gradient steps.
            order: 2 keeps the graph of the inner gradients (second order); 1 or 0 treats
                them as constants.
            query_x: Optional `[T, Q, ...]`; with `query_y`, the per-task query losses after
                each step are returned (the last one always, earlier ones for the
                multi-step loss).
            query_y: Optional query labels/targets.
            ways: Optional number of classes (logits past it are masked).
            use_running: Normalise BN with the per-step running statistics.
            collect_stats: Return the BN batch statistics of every forward pass.

        Returns:
            `(params, query_losses, query_outputs, stats)`: adapted weights (each
            `[T, *shape]`), a list of per-task query losses `[T]` (one per step with the
            multi-step loss, else one), the final query outputs and
            `{step index: [(mean, var), ...]}` BN statistics (when `collect_stats`).
        """
        classification = self._is_classification(support_y)
        tasks = tf.shape(support_x)[0]
        params = tile_params([v.value for v in self.runner.variables], tasks)
        for i in self._zero_indices:  # constants: the head gets no meta-gradient
            params[i] = tf.zeros(tf.shape(params[i]), params[i].dtype)
        if self.proto_head:
            if not classification:
                raise ValueError("`proto_head=True` needs a classification task (integer labels).")
            params = self._prototype_head(params, support_x, support_y, use_running)
        stats = {}
        query_losses = []
        want_query = query_x is not None and query_y is not None
        for s in range(steps):
            collect = [] if collect_stats else None
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                watched = [params[i] for i in self._adapted]
                for p in watched:
                    tape.watch(p)
                out = self._forward(
                    params, support_x, s, use_running=use_running, collect=collect, once=order < 2
                )
                loss = tf.reduce_sum(self._task_loss(out, support_y, classification, ways))
            grads = tape.gradient(loss, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            if collect_stats:
                stats[s] = collect
            params = list(params)
            for j, (i, g) in enumerate(zip(self._adapted, grads)):
                if order < 2:
                    g = tf.stop_gradient(g)
                params[i] = params[i] - self._lr(j, s) * g
            if want_query and self.multi_step_loss and s < steps - 1:
                q = self._forward(params, query_x, s + 1, use_running=use_running)
                query_losses.append(self._task_loss(q, query_y, classification, ways))
        query_out = None
        if query_x is not None:
            collect = [] if collect_stats else None
            query_out = self._forward(params, query_x, steps, use_running=use_running, collect=collect)
            if collect_stats:
                stats[steps] = collect
            if query_y is not None:
                query_losses.append(self._task_loss(query_out, query_y, classification, ways))
        return params, query_losses, query_out, stats

    def _prototype_head(self, params, support_x, support_y, use_running: bool) -> list:
        """`params` with the Dense head set to the support set's prototype classifier:
        kernel `[T, D, U]` = 2 c, bias `[T, U]` = -|c|^2 (zero for classes without examples)."""
        features = self._forward(params, support_x, 0, use_running=use_running, skip_head=True)
        if features.shape.rank != 3:
            raise ValueError(
                "`proto_head=True` needs flat features before the Dense head (end the body with "
                f"Flatten or global pooling); received features of shape {features.shape}."
            )
        kernel_i, bias_i = self._proto_indices
        units = params[bias_i].shape[-1]
        onehot = tf.one_hot(tf.cast(support_y, tf.int32), units, dtype=features.dtype)  # [T, S, U]
        counts = tf.reduce_sum(onehot, axis=1)  # [T, U]
        sums = tf.einsum("tsu,tsd->tud", onehot, features)
        prototypes = sums / tf.maximum(counts, 1.0)[..., tf.newaxis]  # [T, U, D]
        params = list(params)
        params[kernel_i] = tf.cast(2.0 * tf.transpose(prototypes, [0, 2, 1]), params[kernel_i].dtype)
        params[bias_i] = tf.cast(-tf.reduce_sum(tf.square(prototypes), -1), params[bias_i].dtype)
        return params

    def _msl_weights(self, steps: int):
        optimizer = getattr(self, "optimizer", None)
        it = tf.cast(optimizer.iterations, tf.float32) if optimizer is not None else tf.constant(0.0)
        n = float(steps)
        decay = 1.0 / n / self.msl_anneal_steps
        floor = 0.03 / n
        early = tf.maximum(1.0 / n - it * decay, floor)
        last = tf.minimum(1.0 / n + it * (n - 1) * decay, 1.0 - (n - 1) * floor)
        return [early] * (steps - 1) + [last]

    def _meta_loss(self, data, training: bool):
        (sx, sy, qx), qy = _unpack(data)
        classification = self._is_classification(sy)
        steps = self.inner_steps if training else self.eval_steps
        use_running = (not training) and self.bn_test_stats == "running"
        collect = training and self.per_step_bn
        order = self.order if training else 0
        _, losses, out, stats = self.inner_loop(
            sx, sy, steps, order, query_x=qx, query_y=qy,
            use_running=use_running, collect_stats=collect,
        )
        if training and self.multi_step_loss and len(losses) > 1:
            weights = self._msl_weights(len(losses))
            per_task = tf.add_n([w * l for w, l in zip(weights, losses)])
        else:
            per_task = losses[-1]
        return tf.reduce_mean(per_task), losses[-1], out, stats, classification

    def _update_metrics(self, loss, out, qy, classification):
        self.loss_tracker.update_state(loss)
        if classification:
            pred = tf.argmax(out, axis=-1, output_type=tf.int32)
            acc = tf.reduce_mean(tf.cast(tf.equal(pred, tf.cast(qy, tf.int32)), tf.float32))
            self.accuracy_tracker.update_state(acc)
            return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}
        mse = tf.reduce_mean(tf.square(out - tf.reshape(tf.cast(qy, out.dtype), tf.shape(out))))
        self.mse_tracker.update_state(mse)
        return {"loss": self.loss_tracker.result(), "mse": self.mse_tracker.result()}

    def _update_running_stats(self, stats):
        m = self.bn_momentum
        for idx, per_bn in stats.items():
            row = min(idx, self._bn_rows - 1)
            for k, (mean, var) in enumerate(per_bn):
                for store, value in ((self.bn_step_mean[k], mean), (self.bn_step_var[k], var)):
                    old = store.value
                    new = tf.tensor_scatter_nd_update(
                        old, [[row]], [m * old[row] + (1.0 - m) * tf.stop_gradient(value)]
                    )
                    store.assign(new)

    def train_step(self, data):
        """One meta-update on a meta-batch `((support_x, support_y, query_x), query_y)`."""
        with tf.GradientTape() as tape:
            loss, final, out, stats, classification = self._meta_loss(data, training=True)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self.optimizer.apply_gradients(pairs)
        if stats:
            self._update_running_stats(stats)
        return self._update_metrics(tf.reduce_mean(final), out, _unpack(data)[1], classification)

    def test_step(self, data):
        """Adapts on each task's support set (`eval_steps`) and scores its queries."""
        _, final, out, _, classification = self._meta_loss(data, training=False)
        return self._update_metrics(tf.reduce_mean(final), out, _unpack(data)[1], classification)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.mse_tracker]

    def compile(self, optimizer="adam", jit_compile: bool = False, **kwargs):
        """`keras.Model.compile`; XLA is off by default (slower on CPU for this workload)."""
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def call(self, x, training=None):
        """Outputs of the meta-initialisation (no adaptation), BN with batch statistics."""
        x = tf.convert_to_tensor(x)
        params = tile_params([v.value for v in self.runner.variables], 1)
        return self._forward(params, x[tf.newaxis], 0)[0]

    # ------------------------------------------------------------------ adaptation
    def _adapt_fn(self, steps: int):
        cache = self.__dict__.setdefault("_adapt_fns", {})
        if steps not in cache:
            def fn(sx, sy):
                params, _, _, _ = self.inner_loop(sx[tf.newaxis], sy[tf.newaxis], steps, 0)
                return [p[0] for p in params]

            cache[steps] = tf.function(fn, reduce_retracing=True, autograph=False)
        return cache[steps]

    def adapt(self, support_x, support_y, steps: int | None = None) -> keras.Model:
        """Fine-tunes a copy of the meta-learned model on one support set.

        Args:
            support_x: `[S, ...]` support inputs.
            support_y: `[S]` integer labels 0..N-1 (classification) or `[S, ...]` targets.
            steps: Inner steps (0 returns the starting point); defaults to `eval_steps`.

        Returns:
            A new `keras.Model` (a clone of the wrapped model) holding the adapted weights;
            its BatchNorm moving statistics are those of the support set, so it can be
            called in inference mode on any number of queries.

        Example:

        >>> adapted = maml.adapt(task.support_x, task.support_y, steps=10)
        >>> adapted.predict(x_grid)
        """
        steps = self.eval_steps if steps is None else check_positive_int(steps, "steps", minimum=0)
        classification = self.task == "classification" or (
            self.task == "auto" and np.issubdtype(np.asarray(support_y).dtype, np.integer)
        )
        if classification:
            support_x, support_y, _, _ = check_support_set(support_x, support_y)
        else:
            support_x = np.asarray(support_x, np.float32)
            support_y = np.asarray(support_y, np.float32)
            if len(support_x) == 0 or len(support_x) != len(support_y):
                raise ValueError(
                    "`support_x` and `support_y` must be non-empty and of equal length; received "
                    f"{len(support_x)} and {len(support_y)}."
                )
        expected = tuple(self.network.input_shape[1:])
        if tuple(support_x.shape[1:]) != expected:
            raise ValueError(
                f"`support_x` examples must have shape {expected}; received {support_x.shape[1:]}."
            )
        params = self._adapt_fn(steps)(tf.constant(support_x), tf.constant(support_y))
        clone = keras.models.clone_model(self.network)
        clone.set_weights(self.network.get_weights())
        for var, value in zip(clone.trainable_variables, params):
            var.assign(value)
        self._set_clone_bn(clone, support_x, steps)
        return clone

    def _set_clone_bn(self, clone, support_x, steps):
        bns = [l for l in _all_sublayers(clone) if isinstance(l, keras.layers.BatchNormalization)]
        if not bns:
            return
        if self.per_step_bn:
            row = min(steps, self._bn_rows - 1)
            for k, layer in enumerate(bns):
                if self.bn_step_gamma[k] is not None:
                    layer.gamma.assign(self.bn_step_gamma[k][row])
                if self.bn_step_beta[k] is not None:
                    layer.beta.assign(self.bn_step_beta[k][row])
        saved = [layer.momentum for layer in bns]
        try:
            for layer in bns:
                layer.momentum = 0.0
            clone(tf.constant(support_x), training=True)
        finally:
            for layer, m in zip(bns, saved):
                layer.momentum = m

    # ------------------------------------------------------------------ few-shot protocol
    def few_shot_core(self, support_x, support_y, query_x):
        """`[Q, units]` probabilities for one episode with static shapes (XLA-compilable).

        Adapts on the support set for `eval_steps` steps inside the graph; classes past
        `max(support_y)` get probability 0.
        """
        support_y = tf.cast(support_y, tf.int32)
        ways = tf.reduce_max(support_y) + 1
        use_running = self.bn_test_stats == "running"
        sx, sy, qx = self._test_time_episode(
            support_x[tf.newaxis], support_y[tf.newaxis], query_x[tf.newaxis]
        )
        _, _, out, _ = self.inner_loop(
            sx, sy, self.eval_steps, 0, query_x=qx, ways=ways, use_running=use_running,
        )
        return self._query_probabilities(out, ways)[0]

    def _test_time_episode(self, support_x, support_y, query_x):
        """Replaces every image of `[T, N, H, W, C]` support/query sets by its test-time views.

        Returns `[T, V * N, ...]` sets, view-major (view `v` of example `n` at `v * N + n`),
        and the support labels tiled to match; the inputs unchanged when `test_time_views` is 1.
        """
        if self.test_time_views == 1:
            return support_x, support_y, query_x
        if support_x.shape.rank != 5:
            raise ValueError(
                "`test_time_views` > 1 needs image episodes [tasks, examples, height, width, "
                f"channels]; received support_x of shape {support_x.shape}."
            )
        from tfmeta.test_time_augmentation import affine_views

        views = self.test_time_views

        image_shape = tuple(int(d) for d in support_x.shape[2:])  # static: checked in __init__

        def expand(x):
            shape = tf.shape(x)
            flat = tf.reshape(x, (-1,) + image_shape)  # [T * N, H, W, C]
            warped = affine_views(flat, self.test_time_transforms)  # [V * T * N, H, W, C]
            warped = tf.reshape(warped, tf.concat([[views], shape], 0))  # [V, T, N, H, W, C]
            warped = tf.transpose(warped, [1, 0, 2, 3, 4, 5])
            return tf.reshape(warped, tf.concat([shape[:1], [-1], shape[2:]], 0))

        return expand(support_x), tf.tile(support_y, [1, views]), expand(query_x)

    def _query_probabilities(self, out, ways):
        """`[T, Q, units]` class probabilities, averaged over the test-time views of each query."""
        probs = tf.nn.softmax(_mask_logits(out, ways), axis=-1)
        if self.test_time_views == 1:
            return probs
        shape = tf.shape(probs)
        views = tf.reshape(probs, [shape[0], self.test_time_views, -1, shape[2]])
        return tf.reduce_mean(views, axis=1)

    def few_shot_logits(self, support_x, support_y, query_x, ways):
        """`[Q, ways]` logits after adapting on the support set (log-probabilities)."""
        probs = self.few_shot_core(support_x, support_y, query_x)
        return tf.math.log(tf.maximum(probs[:, :ways], 1e-30))

    def few_shot_probabilities(self, support_x, support_y, query_x):
        """`[Q, N]` probabilities after adaptation, `N = max(support_y) + 1`."""
        ways = tf.reduce_max(tf.cast(support_y, tf.int32)) + 1
        return self.few_shot_core(support_x, support_y, query_x)[:, :ways]

    def serving_endpoints(self) -> dict:
        """`serving_default`: outputs of the meta-initialisation (no adaptation)."""
        spec = self._example_spec()

        def outputs(x):
            return {"outputs": self.call(x)}

        return {"serving_default": (outputs, [tf.TensorSpec((None,) + spec, tf.float32, name="x")])}

    def adaptation_metadata(self) -> dict:
        """The inner-loop settings recorded in tfmeta.json."""
        return {
            "inner_steps": self.eval_steps,
            "train_inner_steps": self.inner_steps,
            "inner_lr": self.inner_lr,
            "order": self.order,
            "inner_layers": self.inner_layers,
            "meta_sgd": self.meta_sgd,
            "learn_step_lrs": self.learn_step_lrs,
            "multi_step_loss": self.multi_step_loss,
            "per_step_bn": self.per_step_bn,
            "zero_head": self.zero_head,
            "proto_head": self.proto_head,
            "batch_norm": (
                "per-step running statistics" if self.bn_test_stats == "running"
                else "batch statistics of the support set (inner loop) and query set (transductive)"
            ),
            "output_units": int(self.network.output_shape[-1]),
            "test_time_views": self.test_time_views,
            "test_time_seed": self.test_time_seed,
        }

    def export(self, base_dir: str, metadata: dict | None = None, version: int | None = None) -> str:
        """Exports `serving_default` and `few_shot` (adaptation inside the graph).

        The number of adaptation steps and the inner learning rate go to `tfmeta.json`
        under `"adaptation"`.
        """
        meta = {"adaptation": self.adaptation_metadata()}
        meta.update(metadata or {})
        return super().export(base_dir, metadata=meta, version=version)

    # ------------------------------------------------------------------ evaluation
    def _eval_fn(self):
        fn = self.__dict__.get("_eval_batch_fn")
        if fn is None:
            def evaluate_batch(sx, sy, qx, qy):
                classification = self._is_classification(sy)
                if classification:  # the test-time views, if any (unchanged when 1)
                    sx, sy, qx = self._test_time_episode(sx, sy, qx)
                _, losses, out, _ = self.inner_loop(
                    sx, sy, self.eval_steps, 0, query_x=qx,
                    query_y=None if classification else qy,
                    use_running=self.bn_test_stats == "running",
                )
                if classification:
                    pred = tf.argmax(self._query_probabilities(out, None), -1, output_type=tf.int32)
                    return tf.reduce_mean(tf.cast(tf.equal(pred, tf.cast(qy, tf.int32)), tf.float32), 1)
                return losses[-1]

            fn = tf.function(evaluate_batch, reduce_retracing=True, autograph=False)
            self.__dict__["_eval_batch_fn"] = fn
        return fn

    def evaluate_tasks(
        self, tasks, episodes: int = 600, seed: int = 1234, meta_batch: int | None = None
    ) -> dict:
        """Adapts to `episodes` test tasks and reports the mean score with a 95% CI.

        Args:
            tasks: A `tfmeta.data.EpisodeSampler` (classification: accuracy) or
                `tfmeta.data.sinusoid.SinusoidTasks` (regression: MSE) - anything with a
                `dataset(meta_batch, episodes, seed)` method.
            episodes: Number of test tasks (600 as in the papers).
            seed: Seed of the test tasks.
            meta_batch: Tasks adapted together (does not change the result). `None`: up to
                25, fewer when one task holds many images (test-time views included), so
                that a batch holds at most `EVAL_PIXEL_BUDGET` input values.

        Returns:
            `{"accuracy" or "mse", "ci95", "episodes"}`.
        """
        episodes = check_positive_int(episodes, "episodes")
        if meta_batch is None:
            meta_batch = self.eval_meta_batch(tasks)
        meta_batch = min(check_positive_int(meta_batch, "meta_batch"), episodes)
        batches = -(-episodes // meta_batch)
        fn = self._eval_fn()
        values, classification = [], None
        for (sx, sy, qx), qy in tasks.dataset(meta_batch=meta_batch, episodes=batches, seed=seed):
            classification = sy.dtype.is_integer if self.task == "auto" else self.task == "classification"
            values.extend(fn(sx, sy, qx, qy).numpy().tolist())
        values = values[:episodes]
        mean, ci = mean_confidence_interval(values)
        key = "accuracy" if classification else "mse"
        return {key: mean, "ci95": ci, "episodes": len(values)}

    def eval_meta_batch(self, tasks, limit: int = 25) -> int:
        """Tasks per evaluation batch for `tasks`: at most `limit` and `EVAL_PIXEL_BUDGET`.

        An image task's input values are `ways * (shots + queries) * test_time_views` images
        of `H * W * C`; tasks without `ways`/`x` (the sinusoids) are small and get `limit`.
        A 5-way 1-shot task with 15 queries and 16 views (1,280 images of 28 x 28) gives 4;
        20-way with 15 queries and 16 views gives 1, where 25 tasks at once would ask for
        128,000 images (26 GB of activations in the first conv4 layer: TensorFlow crashed).
        Without views they give 25 and 16.
        """
        ways, x = getattr(tasks, "ways", None), getattr(tasks, "x", None)
        if ways is None or x is None or np.ndim(x) < 2:
            return limit
        images = int(ways) * (int(tasks.shots) + int(tasks.queries)) * self.test_time_views
        per_task = images * int(np.prod(np.shape(x)[1:]))
        return int(max(1, min(limit, EVAL_PIXEL_BUDGET // per_task)))

    def evaluate_episodes(
        self, x, y, ways: int, shots: int, queries: int = 15, episodes: int = 600, seed: int = 1234
    ) -> dict:
        """Mean accuracy and 95% CI over `episodes` N-way K-shot episodes from `(x, y)`."""
        from tfmeta.data.episodes import EpisodeSampler

        sampler = EpisodeSampler(x, y, ways=ways, shots=shots, queries=queries, seed=seed)
        result = self.evaluate_tasks(sampler, episodes=episodes, seed=seed)
        result.update(ways=ways, shots=shots)
        return result


def _rows_of(variable):
    """An initializer that repeats `variable`'s current value along a new leading axis."""
    value = np.asarray(keras.ops.convert_to_numpy(variable.value), dtype="float32")

    def initializer(shape, dtype=None):
        return tf.cast(tf.broadcast_to(value, shape), dtype or "float32")

    return initializer


def _unpack(data):
    """`((support_x, support_y, query_x), query_y)` from a Keras data tuple."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        x, y = x
    if not isinstance(x, (tuple, list)) or len(x) != 3:
        raise ValueError(
            "MAML expects elements ((support_x, support_y, query_x), query_y); received x with "
            f"structure {tf.nest.map_structure(lambda t: getattr(t, 'shape', t), x)}."
        )
    return tuple(x), y


def _mask_logits(outputs, ways):
    if ways is None:
        return outputs
    units = tf.shape(outputs)[-1]
    keep = tf.range(units) < tf.cast(ways, tf.int32)
    return tf.where(keep, outputs, tf.cast(_NEG, outputs.dtype))


def _all_sublayers(model) -> list:
    out = []
    for layer in getattr(model, "layers", None) or []:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_sublayers(layer))
    return out


__all__ = ["MAML"]
