"""Reptile (Nichol et al., 2018): first-order meta-learning by moving towards adapted weights.

For every task of the meta-batch, Reptile runs `inner_steps` steps of gradient descent on
all of the task's labelled data (support and query sets together) starting from the
meta-parameters theta, giving W_t; the meta-update moves theta towards the mean adapted
weights. `train_step` hands the optimizer the "gradient" `theta - mean_t(W_t)`, so with
`keras.optimizers.SGD(learning_rate=epsilon)` it is exactly Reptile's
`theta <- theta + epsilon (mean_t W_t - theta)` (Adam also works).

Reptile holds the inner loop of `tfmeta.gradient.inner_loop` with the options it has (which
layers adapt, the task, the runner) and shares batching (vectorised over tasks), BatchNorm
handling, `adapt`, the few-shot protocol, evaluation and export with `tfmeta.MAML` through
`tfmeta.gradient.learner.GradientLearner`. MAML's variants (second order, learned rates,
MAML++, zero/prototype heads) are not Reptile options and are refused by name.

Example:

>>> reptile = tfmeta.Reptile(tfmeta.backbones.mlp((1,), (40, 40), 1), inner_lr=0.02, inner_steps=5)
>>> reptile.compile(optimizer=keras.optimizers.SGD(1.0))
>>> reptile.fit(tfmeta.data.sinusoid.SinusoidTasks(10, 10).dataset(meta_batch=5), steps_per_epoch=100)
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from tfmeta.gradient.inner_loop import InnerLoop
from tfmeta.gradient.learner import GradientLearner, unpack_episodes
from tfmeta.optimizer_step import apply_directions

#: `tfmeta.MAML` options Reptile does not have, with the value that leaves each off: Reptile
#: ignores an option given that value (or a false one) and refuses any other by name.
MAML_ONLY_OPTIONS = {
    "order": 0, "meta_sgd": False, "learn_step_lrs": False, "multi_step_loss": False,
    "per_step_bn": False, "zero_head": False, "proto_head": False,
    "bn_test_stats": "batch", "bn_momentum": 0.9, "msl_anneal_steps": 10000,
}


class Reptile(GradientLearner):
    """Reptile meta-learner around any Keras model.

    Args:
        model: A built Keras model (logits for classification, predictions for regression).
        inner_lr: Inner SGD learning rate.
        inner_steps: Inner SGD steps per task during meta-training.
        eval_steps: Inner steps at test time (default: `inner_steps`).
        inner_layers, task, ways, fast_path, conv_mode, test_time_views, test_time_seed:
            As in `tfmeta.MAML`.
        name: Model name.
        **kwargs: Passed to `keras.Model`.

    Raises:
        ValueError: On invalid arguments, and on a `tfmeta.MAML` option Reptile does not have
            (`MAML_ONLY_OPTIONS`: `order`, `meta_sgd`, `per_step_bn`, ...) given a value
            that turns it on.
    """

    learner_name = "reptile"

    def __init__(
        self,
        model: keras.Model,
        inner_lr: float = 0.02,
        inner_steps: int = 5,
        *,
        eval_steps: int | None = None,
        inner_layers: Sequence[str] | None = None,
        task: str = "auto",
        ways: int | None = None,
        fast_path: bool | str = "auto",
        conv_mode: str = "auto",
        test_time_views: int = 1,
        test_time_seed: int = 0,
        name: str = "reptile",
        **kwargs: Any,
    ):
        for key, off in MAML_ONLY_OPTIONS.items():
            value = kwargs.pop(key, off)
            if value and value != off:
                raise ValueError(f"`{key}` is a MAML option; Reptile does not take it (received {value!r}).")
        inner = InnerLoop(
            model, inner_lr, inner_steps, inner_layers=inner_layers, task=task,
            fast_path=fast_path, conv_mode=conv_mode,
        )
        super().__init__(
            inner, eval_steps=eval_steps, ways=ways, test_time_views=test_time_views,
            test_time_seed=test_time_seed, name=name, **kwargs,
        )

    def train_step(self, data):
        """Adapts every task on support + query, moves theta towards the mean adapted weights."""
        (sx, sy, qx), qy = unpack_episodes(data, "Reptile")
        x = tf.concat([sx, qx], axis=1)
        y = tf.concat([sy, tf.cast(qy, sy.dtype)], axis=1)
        params, losses, out, _ = self.inner_loop(
            x, y, self.inner_steps, 0, query_x=x, query_y=y, loss_scale=self.inner_loss_scale()
        )
        variables = self.runner.variables
        directions = [v.value - tf.reduce_mean(p, axis=0) for v, p in zip(variables, params)]
        apply_directions(self.optimizer, directions, variables)
        return self._update_metrics(tf.reduce_mean(losses[-1]), out, y, self._is_classification(sy))


__all__ = ["Reptile"]
