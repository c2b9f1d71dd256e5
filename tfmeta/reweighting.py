"""Learned example weights: Ren et al. (2018), "Learning to Reweight Examples for Robust Deep Learning".

Noisy labels and class imbalance both make some training examples harmful. Given a small set
of examples known to be clean and balanced, `ReweightedModel` weighs every example of every
training batch by how much a step on it would lower the loss on the clean set, online, with no
extra hyperparameter. Each train step:

1. a *virtual* SGD step on the training batch's loss, each example weighted by `eps_i = 0`:
   `theta'(eps) = theta - lr * sum_i eps_i * grad l_i(theta)`;
2. the clean loss at `theta'(eps)`;
3. its gradient with respect to `eps` (at `eps = 0` it is `-lr * grad L_clean . grad l_i`,
   computed by a nested `tf.GradientTape` through the virtual step); an example whose
   gradient points with the clean set's descent direction gets a positive weight:
   `w_i = max(-d L_clean / d eps_i, 0)`, normalised to sum to one over the batch;
4. the real step of the optimizer on the loss weighted by `w` (treated as constants).

The virtual step runs the wrapped model through `stateless_call` with substituted weights
(as `tfmeta.gradient.functional.KerasRunner` does), so any Keras classifier works. Batch
normalisation's moving statistics are updated by the real step only.

Under a `tf.distribute` strategy each replica computes its examples' meta-gradients (exact:
at `eps = 0` an example's meta-gradient involves no other example) and the weights are
normalised over the *global* batch (the replicas' sums all-reduced), so the replicas' summed
gradients are one device's; under `mixed_float16` the loss is scaled as `compile()`'s
`LossScaleOptimizer` expects (`tfmeta.optimizer_step`).

Example:

>>> base = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
>>> model = tfmeta.ReweightedModel(base, clean_x, clean_y, from_logits=True)
>>> model.compile(optimizer="sgd", metrics=["accuracy"])
>>> model.fit(noisy_x, noisy_y, epochs=5)
>>> model.example_weights(noisy_x[:32], noisy_y[:32])   # the weights a step would use
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfmeta import optimizer_step
from tfmeta.data.validation import check_positive_int
from tfmeta.multi_worker_fit import MultiWorkerFitMixin


def _check_clean_set(clean_x, clean_y) -> tuple[np.ndarray, np.ndarray]:
    clean_x, clean_y = np.asarray(clean_x), np.asarray(clean_y)
    if clean_x.ndim < 2 or len(clean_x) == 0:
        raise ValueError(f"`clean_x` must be a non-empty batch of examples [N, ...]; received shape {clean_x.shape}.")
    if clean_y.shape[:1] != clean_x.shape[:1]:
        raise ValueError(f"`clean_y` must have one label per row of `clean_x` ({len(clean_x)}); "
                         f"received shape {clean_y.shape}.")
    return clean_x.astype(keras.config.floatx()), clean_y


class ReweightedModel(MultiWorkerFitMixin, keras.Model):
    """Trains a Keras classifier with per-example weights learned from a clean set (Ren et al. 2018).

    Args:
        model: The classifier: a built Keras model mapping inputs to class scores.
        clean_x: The small clean validation set's inputs (for example 10 per class).
        clean_y: Its integer labels (or one-hot rows with a categorical `loss`).
        from_logits: Whether `model` outputs logits (True) or probabilities (False).
        loss: The per-example loss: None (sparse categorical cross-entropy) or a Keras loss
            class or name; it is applied with `reduction=None`.
        clean_batch_size: Clean examples per step, drawn at random; None: the whole set.
        virtual_learning_rate: The step size of the virtual step. The normalised weights do
            not depend on it (the meta-gradient at `eps = 0` is linear in it); it only sets
            the scale of the raw meta-gradient.
        seed: Seed of the clean batches.

    `compile(optimizer=..., metrics=[...])` takes no `loss`: the loss is `loss` here, weighted.
    Save `model.model` (the wrapped classifier) to keep what was learned.
    """

    def __init__(self, model: keras.Model, clean_x, clean_y, from_logits: bool = False, loss: Any = None,
                 clean_batch_size: int | None = None, virtual_learning_rate: float = 1.0,
                 seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}.")
        if clean_batch_size is not None:
            check_positive_int(clean_batch_size, "clean_batch_size")
        if not virtual_learning_rate > 0:
            raise ValueError(f"`virtual_learning_rate` must be > 0; received {virtual_learning_rate!r}.")
        self.model = model
        self.clean_x, self.clean_y = _check_clean_set(clean_x, clean_y)
        self.clean_batch_size = clean_batch_size
        self.virtual_learning_rate = float(virtual_learning_rate)
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=None)
        else:
            loss = keras.losses.get(loss)
            if isinstance(loss, keras.losses.Loss):
                config = loss.get_config() | {"reduction": None}
                if "from_logits" in config:
                    config["from_logits"] = from_logits
                loss = type(loss).from_config(config)
        self.per_example_loss = loss
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._seed = seed
        self._clean_seed = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    # -- the meta-gradient ---------------------------------------------------------------------
    def _clean_batch(self):
        x, y = tf.constant(self.clean_x), tf.constant(self.clean_y)
        if self.clean_batch_size is None or self.clean_batch_size >= len(self.clean_x):
            return x, y
        order = keras.random.shuffle(tf.range(len(self.clean_x)), seed=self._clean_seed)
        take = order[: self.clean_batch_size]
        return tf.gather(x, take), tf.gather(y, take)

    def _example_losses(self, y, outputs):
        return tf.reshape(self.per_example_loss(y, outputs), [-1])

    def example_weight_gradient(self, x, y, clean_x=None, clean_y=None) -> tf.Tensor:
        """`d L_clean(theta'(eps)) / d eps` at `eps = 0`, one value `[B]` per example of `(x, y)`.

        `clean_x`/`clean_y` default to the model's clean set (or a batch of it)."""
        if clean_x is None:
            clean_x, clean_y = self._clean_batch()
        x = tf.convert_to_tensor(x)
        variables = self.model.trainable_variables
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        params = [tf.convert_to_tensor(v.value) for v in variables]
        eps = tf.zeros([tf.shape(x)[0]], dtype=keras.config.floatx())
        with tf.GradientTape() as outer:
            outer.watch(eps)
            with tf.GradientTape() as inner:
                inner.watch(params)
                outputs, _ = self.model.stateless_call(params, non_trainable, x, training=True)
                weighted = tf.reduce_sum(eps * tf.cast(self._example_losses(y, outputs), eps.dtype))
            grads = inner.gradient(weighted, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            virtual = [p - self.virtual_learning_rate * g for p, g in zip(params, grads)]
            clean_outputs, _ = self.model.stateless_call(virtual, non_trainable, clean_x, training=False)
            clean_loss = tf.reduce_mean(self._example_losses(clean_y, clean_outputs))
        return outer.gradient(clean_loss, eps)

    def example_weights(self, x, y, clean_x=None, clean_y=None) -> tf.Tensor:
        """The normalised weights `[B]` of a batch: `max(-meta-gradient, 0)`, summing to 1 (or all 0).

        In a replica of a strategy, the weights of the replica's share of the batch, normalised
        over the global batch (they sum to 1 over all replicas)."""
        raw = tf.nn.relu(-self.example_weight_gradient(x, y, clean_x, clean_y))
        total = tf.reduce_sum(raw)
        if optimizer_step.num_replicas() > 1:
            total = tf.distribute.get_replica_context().all_reduce("SUM", total)
        return tf.math.divide_no_nan(raw, total)

    # -- Keras training ------------------------------------------------------------------------
    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        weights = tf.stop_gradient(self.example_weights(x, y))
        with tf.GradientTape() as tape:
            outputs = self.model(x, training=True)
            losses = self._example_losses(y, outputs)
            loss = tf.reduce_sum(weights * tf.cast(losses, weights.dtype))
        # The replica's share of the global weighted loss: the replicas' gradients sum to one
        # device's, so only the loss scale applies (no division by the replicas).
        variables = self.model.trainable_variables
        scale = tf.cast(optimizer_step.loss_scale(self.optimizer), loss.dtype)
        grads = tape.gradient(loss, variables, output_gradients=scale)
        self.optimizer.apply(grads, variables)
        self.loss_tracker.update_state(tf.reduce_mean(losses))  # the unweighted loss, comparable to validation
        return self._results(y, outputs)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self.model(x, training=False)
        self.loss_tracker.update_state(tf.reduce_mean(self._example_losses(y, outputs)))
        return self._results(y, outputs)

    def _results(self, y, outputs) -> dict:
        results = {"loss": self.loss_tracker.result()}
        compiled = getattr(self, "_compile_metrics", None)  # Keras 3's metrics of compile()
        if compiled is not None:
            compiled.update_state(y, outputs)
            results.update(compiled.result())
        return results

    @property
    def metrics(self):
        tracked = [self.loss_tracker]
        if getattr(self, "_compile_metrics", None) is not None:
            tracked.append(self._compile_metrics)
        return tracked

    def compile(self, optimizer="sgd", loss=None, metrics=None, **kwargs):
        if loss is not None:
            raise ValueError("ReweightedModel weighs its own per-example loss: pass it as "
                             f"`ReweightedModel(..., loss=...)`, not to compile(); received loss={loss!r}.")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
