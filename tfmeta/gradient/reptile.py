"""Reptile (Nichol et al., 2018): first-order meta-learning by moving towards adapted weights.

For every task of the meta-batch, Reptile runs `inner_steps` steps of gradient descent on
all of the task's labelled data (support and query sets together) starting from the
meta-parameters theta, giving W_t; the meta-update moves theta towards the mean adapted
weights. `train_step` hands the optimizer the "gradient" `theta - mean_t(W_t)`, so with
`keras.optimizers.SGD(learning_rate=epsilon)` it is exactly Reptile's
`theta <- theta + epsilon (mean_t W_t - theta)` (Adam also works).

The inner loop, batching (vectorised over tasks), BatchNorm handling, `adapt`, evaluation and
export are those of `tfmeta.MAML`.

Example:

>>> reptile = tfmeta.Reptile(tfmeta.backbones.mlp((1,), (40, 40), 1), inner_lr=0.02, inner_steps=5)
>>> reptile.compile(optimizer=keras.optimizers.SGD(1.0))
>>> reptile.fit(tfmeta.data.sinusoid.SinusoidTasks(10, 10).dataset(meta_batch=5), steps_per_epoch=100)
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfmeta.gradient.maml import MAML, _unpack


class Reptile(MAML):
    """Reptile meta-learner around any Keras model.

    Args:
        model: A built Keras model (logits for classification, predictions for regression).
        inner_lr: Inner SGD learning rate.
        inner_steps: Inner SGD steps per task during meta-training.
        eval_steps: Inner steps at test time (default: `inner_steps`).
        **kwargs: `inner_layers`, `task`, `fast_path`, `conv_mode`, `name` as in `tfmeta.MAML`.
    """

    learner_name = "reptile"

    def __init__(
        self,
        model: keras.Model,
        inner_lr: float = 0.02,
        inner_steps: int = 5,
        *,
        eval_steps: int | None = None,
        name: str = "reptile",
        **kwargs: Any,
    ):
        for key in ("order", "meta_sgd", "learn_step_lrs", "multi_step_loss", "per_step_bn", "zero_head",
                    "proto_head"):
            if kwargs.get(key):
                raise ValueError(f"`{key}` is a MAML option; Reptile does not take it (received {kwargs[key]!r}).")
            kwargs.pop(key, None)
        super().__init__(
            model, inner_lr=inner_lr, inner_steps=inner_steps, order=1,
            eval_steps=eval_steps, name=name, **kwargs,
        )

    def train_step(self, data):
        """Adapts every task on support + query, moves theta towards the mean adapted weights."""
        (sx, sy, qx), qy = _unpack(data)
        classification = self._is_classification(sy)
        x = tf.concat([sx, qx], axis=1)
        y = tf.concat([sy, tf.cast(qy, sy.dtype)], axis=1)
        params, losses, out, _ = self.inner_loop(x, y, self.inner_steps, 0, query_x=x, query_y=y)
        variables = self.runner.variables
        grads = [v.value - tf.reduce_mean(p, axis=0) for v, p in zip(variables, params)]
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._update_metrics(tf.reduce_mean(losses[-1]), out, y, classification)


__all__ = ["Reptile"]
