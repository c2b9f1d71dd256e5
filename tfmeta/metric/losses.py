"""Pair losses for Siamese networks: contrastive margin loss and Koch's binary cross-entropy.

Label convention (the same as `tfmeta.data.PairSampler`): **`y = 1` means "same class",
`y = 0` means "different classes"**. Note that Hadsell, Chopra & LeCun (2006) use the
opposite convention (their `Y = 0` is "similar"); tfmeta follows the sampler's convention
everywhere.

Both losses return one value per pair (shape `[B]`); the Keras `Loss` classes reduce that with
the usual `reduction` (mean over the batch by default).

Example:

>>> import numpy as np
>>> contrastive_loss([1.0, 0.0], [0.5, 0.25], margin=1.0).numpy()
array([0.25  , 0.5625], dtype=float32)
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _as_float_pair(y_true, y_pred):
    y_pred = tf.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = tf.cast(y_pred, tf.float32)
    y_true = tf.cast(y_true, y_pred.dtype)
    # Accept [B] or [B, 1] for either argument.
    if y_pred.shape.rank == 2 and y_pred.shape[-1] == 1:
        y_pred = tf.squeeze(y_pred, -1)
    if y_true.shape.rank == 2 and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, -1)
    return y_true, y_pred


def contrastive_loss(y_true, distance, margin: float = 1.0) -> tf.Tensor:
    """Contrastive margin loss of Hadsell, Chopra & LeCun (2006), one value per pair.

    `loss = y * d**2 + (1 - y) * max(margin - d, 0)**2` with **`y = 1` for a same-class pair**
    and `y = 0` for a different-class pair. Same pairs are pulled together; different pairs
    are pushed apart until they are at least `margin` apart, then ignored.

    Factor convention: Hadsell et al. write both terms with a factor 1/2; tfmeta drops it
    (the loss here is exactly twice theirs; this only rescales the gradient).

    Args:
        y_true: `[B]` (or `[B, 1]`) labels, 1.0 = same, 0.0 = different.
        distance: `[B]` non-negative pair distances.
        margin: Margin for different pairs, > 0.

    Returns:
        `[B]` per-pair losses.

    Example:

    >>> contrastive_loss([0.0], [0.25], margin=1.0).numpy()   # (1 - 0.25)**2
    array([0.5625], dtype=float32)
    """
    y, d = _as_float_pair(y_true, distance)
    same = y * tf.square(d)
    different = (1.0 - y) * tf.square(tf.nn.relu(margin - d))
    return same + different


def koch_binary_crossentropy(y_true, logits, from_logits: bool = True) -> tf.Tensor:
    """Binary cross-entropy of Koch et al. (2015), one value per pair.

    The Siamese network outputs `p = sigmoid(logit)`, the probability that the pair is of the
    same class (`logit = Dense(1)(|e1 - e2|)` for Koch's weighted L1 distance). The loss is
    `-(y log p + (1 - y) log(1 - p))` with **`y = 1` for a same-class pair**.

    Args:
        y_true: `[B]` (or `[B, 1]`) labels, 1.0 = same, 0.0 = different.
        logits: `[B]` log-odds of "same" (or probabilities when `from_logits=False`).
        from_logits: Whether `logits` are log-odds (numerically stable path) or probabilities.

    Returns:
        `[B]` per-pair losses.

    Example:

    >>> koch_binary_crossentropy([1.0], [0.0]).numpy()   # -log(0.5)
    array([0.6931472], dtype=float32)
    """
    y, z = _as_float_pair(y_true, logits)
    if from_logits:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)
    eps = keras.config.epsilon()
    p = tf.clip_by_value(z, eps, 1.0 - eps)
    return -(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))


@keras.saving.register_keras_serializable(package="tfmeta")
class ContrastiveLoss(keras.losses.Loss):
    """Keras loss wrapper of `contrastive_loss` (`y_pred` = pair distances, y = 1 same).

    Args:
        margin: Margin for different-class pairs, > 0.
        reduction: Keras reduction over the batch.
        name: Loss name.

    Example:

    >>> loss = ContrastiveLoss(margin=1.0)
    >>> float(loss([1.0, 0.0], [0.5, 0.25]))   # mean of 0.25 and 0.5625
    0.40625
    """

    def __init__(self, margin: float = 1.0, reduction="sum_over_batch_size", name="contrastive_loss"):
        margin = float(margin)
        if not margin > 0:
            raise ValueError(f"`margin` must be > 0; received {margin}.")
        super().__init__(name=name, reduction=reduction)
        self.margin = margin

    def call(self, y_true, y_pred):
        return contrastive_loss(y_true, y_pred, self.margin)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"margin": self.margin})
        return config


@keras.saving.register_keras_serializable(package="tfmeta")
class KochBinaryCrossentropy(keras.losses.Loss):
    """Keras loss wrapper of `koch_binary_crossentropy` (`y_pred` = log-odds, y = 1 same).

    Args:
        from_logits: Whether `y_pred` holds log-odds (default) or probabilities.
        reduction: Keras reduction over the batch.
        name: Loss name.

    Example:

    >>> float(KochBinaryCrossentropy()([1.0, 0.0], [0.0, 0.0]))   # log 2
    0.6931471824645996
    """

    def __init__(self, from_logits: bool = True, reduction="sum_over_batch_size", name="koch_bce"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return koch_binary_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"from_logits": self.from_logits})
        return config
