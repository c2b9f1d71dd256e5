"""From a replica's loss to a weight update, as Keras's own `train_step` does it.

tfmeta's learners write their own `train_step` (episodes, inner loops, a distiller's two
targets). Each one ends the same way, and this module is that ending, so that every learner
trains correctly under a `tf.distribute` strategy and under a `mixed_float16` policy:

* **Global-batch scaling.** Under a strategy, `train_step` runs once per replica on its share
  of the (meta-)batch and the optimizer *sums* the replicas' gradients. A replica's mean loss
  is therefore divided by `num_replicas_in_sync`, so the summed gradient is the gradient of
  the mean over the global batch, the same as one device with the whole batch. Keras's
  `train_step` does the same (`keras.src.losses.loss.scale_loss_for_distribution`, private).
* **Loss scaling.** Under `mixed_float16`, `compile` wraps the optimizer in a
  `keras.optimizers.LossScaleOptimizer`, which divides every gradient by its loss scale
  before applying it (and skips steps with non-finite gradients). The gradient must then be
  that of the *scaled* loss: `optimizer.scale_loss(loss)`, as in Keras's `train_step`. Here
  the scale enters as the tape's output gradient (`d(scale * loss) = scale * d(loss)`), so
  the loss itself stays the float32 number the metrics report.

Example:

>>> with tf.GradientTape() as tape:
...     loss = model.compute_my_loss(batch)                # the replica's mean loss
>>> minimize(model.optimizer, tape, loss, model.trainable_variables)
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def num_replicas() -> int:
    """Replicas training in sync under the current strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def loss_scale(optimizer) -> tf.Tensor:
    """The factor `optimizer` wants the loss multiplied by before differentiation (float32).

    A `LossScaleOptimizer`'s current dynamic scale, an optimizer's `loss_scale_factor`, or 1.
    """
    return tf.stop_gradient(tf.cast(optimizer.scale_loss(tf.constant(1.0)), tf.float32))


def gradient_factor(optimizer) -> tf.Tensor:
    """`loss_scale(optimizer) / num_replicas()`: what a replica's mean-loss gradient is
    multiplied by before the optimizer sums and unscales it."""
    return loss_scale(optimizer) / float(num_replicas())


def minimize(optimizer, tape: tf.GradientTape, loss, variables: Sequence) -> list:
    """Applies the gradient of a replica's mean `loss` over `variables` (global-batch scaled,
    loss scaled) and returns the gradients applied (`None` for unconnected variables).

    Args:
        optimizer: The model's (compiled) Keras optimizer.
        tape: The closed tape that recorded `loss`.
        loss: The replica's scalar mean loss (any float dtype).
        variables: The variables to update.
    """
    variables = list(variables)
    factor = tf.cast(gradient_factor(optimizer), loss.dtype)
    grads = tape.gradient(loss, variables, output_gradients=factor)
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    if pairs:
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
    return grads


def apply_directions(optimizer, directions: Sequence, variables: Sequence) -> None:
    """Applies update directions that are not loss gradients (Reptile's `theta - W`), each a
    replica's mean: scaled as `minimize` scales a gradient, so the optimizer's all-reduce and
    unscaling give back the mean over the global batch."""
    factor = gradient_factor(optimizer)
    optimizer.apply([d * tf.cast(factor, d.dtype) for d in directions], list(variables))


__all__ = ["num_replicas", "loss_scale", "gradient_factor", "minimize", "apply_directions"]
