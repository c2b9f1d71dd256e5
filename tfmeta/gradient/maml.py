"""Model-Agnostic Meta-Learning (Finn et al., 2017) and its variants, as one `keras.Model`.

`MAML(model, inner_lr, inner_steps, order=2)` wraps any built Keras model (the "learner").
`train_step` adapts a copy of the weights to every task of the meta-batch with
`inner_steps` steps of gradient descent on the support set (nested `tf.GradientTape`s, in
`tfmeta.gradient.inner_loop.InnerLoop`), then back-propagates the query loss of the adapted
weights to the meta-parameters through the inner loop (true second order; `order=1` drops
the second-order terms). Adaptation, the few-shot protocol, test-time views and evaluation
are those every gradient-based learner shares (`tfmeta.gradient.learner.GradientLearner`).

The variants are options of the one inner loop, not copies of it:

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
* `tfmeta.Reptile` (in `reptile.py`) holds the same inner loop with fewer options.

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
(`tfmeta.test_time_augmentation.draw_test_time_transforms`). The inner loop adapts on all views
of the support set (a 1-shot task becomes a V-shot task of distorted copies) and each query's
class probabilities are averaged over its views. Training and `adapt()` are unchanged. The
warp is a fixed gather (`tfmeta.test_time_augmentation.affine_views`), so the export still
compiles with XLA.

Example:

>>> net = keras.Sequential([tfmeta.backbones.conv4((28, 28, 1)), keras.layers.Dense(5)])
>>> maml = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2)
>>> maml.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> maml.fit(sampler.dataset(meta_batch=32), steps_per_epoch=100, epochs=10)
>>> adapted = maml.adapt(support_x, support_y, steps=3)      # a keras.Model
>>> maml.evaluate_episodes(test_x, test_y, ways=5, shots=1)   # {"accuracy", "ci95", ...}
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from tfmeta.data.validation import check_positive_int
from tfmeta.gradient.inner_loop import InnerLoop, check_model
from tfmeta.gradient.learner import EVAL_PIXEL_BUDGET, GradientLearner, inner_attributes, unpack_episodes
from tfmeta.optimizer_step import minimize


@inner_attributes(
    "meta_sgd", "learn_step_lrs", "per_step_bn", "bn_momentum", "zero_head", "proto_head",
    "bn_step_gamma", "bn_step_beta", "bn_step_mean", "bn_step_var", inner_lr_vars="lr_vars",
)
class MAML(GradientLearner):
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
        check_model(model)
        if order not in (0, 1, 2) or isinstance(order, bool):
            raise ValueError(f"`order` must be 1 or 2; received {order!r}.")
        if bn_test_stats not in ("batch", "running"):
            raise ValueError(f"`bn_test_stats` must be 'batch' or 'running'; received {bn_test_stats!r}.")
        if bn_test_stats == "running" and not per_step_bn:
            raise ValueError("`bn_test_stats='running'` needs `per_step_bn=True`.")
        msl_anneal_steps = check_positive_int(msl_anneal_steps, "msl_anneal_steps")
        inner = InnerLoop(
            model, inner_lr, inner_steps, inner_layers=inner_layers, meta_sgd=meta_sgd,
            learn_step_lrs=learn_step_lrs, per_step_bn=per_step_bn, bn_momentum=bn_momentum,
            zero_head=zero_head, proto_head=proto_head, task=task, fast_path=fast_path,
            conv_mode=conv_mode,
        )
        super().__init__(
            inner, eval_steps=eval_steps, bn_test_stats=bn_test_stats, ways=ways,
            test_time_views=test_time_views, test_time_seed=test_time_seed, name=name, **kwargs,
        )
        self.order = int(order)
        self.multi_step_loss = bool(multi_step_loss)
        self.msl_anneal_steps = msl_anneal_steps

    def _msl_weights(self, steps: int):
        """MAML++'s multi-step loss weights: uniform at first, annealed towards the last step."""
        optimizer = getattr(self, "optimizer", None)
        it = tf.cast(optimizer.iterations, tf.float32) if optimizer is not None else tf.constant(0.0)
        n = float(steps)
        decay = 1.0 / n / self.msl_anneal_steps
        floor = 0.03 / n
        early = tf.maximum(1.0 / n - it * decay, floor)
        last = tf.minimum(1.0 / n + it * (n - 1) * decay, 1.0 - (n - 1) * floor)
        return [early] * (steps - 1) + [last]

    def _meta_loss(self, data, training: bool):
        """`(meta-loss, final per-task query losses, query outputs, BN stats, classification)`
        of a meta-batch, adapted as in training (`order`, `inner_steps`) or at test time."""
        (sx, sy, qx), qy = unpack_episodes(data)
        multi_step = training and self.multi_step_loss
        result = self.inner_loop(
            sx, sy, self.inner_steps if training else self.eval_steps, self.order if training else 0,
            query_x=qx, query_y=qy, use_running=(not training) and self._use_running,
            collect_stats=training and self.per_step_bn, query_every_step=multi_step,
            loss_scale=self.inner_loss_scale() if training else None,
        )
        losses = result.query_losses
        if multi_step and len(losses) > 1:
            per_task = tf.add_n([w * l for w, l in zip(self._msl_weights(len(losses)), losses)])
        else:
            per_task = losses[-1]
        classification = self._is_classification(sy)
        return tf.reduce_mean(per_task), losses[-1], result.query_outputs, result.stats, classification

    def train_step(self, data):
        """One meta-update on a meta-batch `((support_x, support_y, query_x), query_y)`."""
        with tf.GradientTape() as tape:
            loss, final, out, stats, classification = self._meta_loss(data, training=True)
        minimize(self.optimizer, tape, loss, self.trainable_variables)
        if stats:
            self.inner.update_running_stats(stats)
        return self._update_metrics(tf.reduce_mean(final), out, unpack_episodes(data)[1], classification)


__all__ = ["MAML", "EVAL_PIXEL_BUDGET"]
