"""Prototypical networks (Snell, Swersky and Zemel, 2017).

Each class is represented by its prototype, the mean embedding of its support examples; a
query is classified by a softmax over negative squared Euclidean distances to the prototypes
(or over scaled cosine similarities with `distance="cosine"`).
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfmeta.metric.base import (
    EpisodicMetricLearner,
    check_choice,
    class_means,
    pairwise_cosine,
    pairwise_squared_distances,
)


@keras.saving.register_keras_serializable(package="tfmeta")
class PrototypicalNetwork(EpisodicMetricLearner):
    """Prototypical network: nearest class mean in a learned embedding space.

    Args:
        encoder: Embedding network; defaults to `tfmeta.backbones.conv4(input_shape)`.
        input_shape: Shape of one image, used when `encoder` is None.
        distance: `"euclidean"` (squared Euclidean, the paper's choice) or `"cosine"`.
        temperature: Logits are divided by this (cosine similarities lie in [-1, 1], so the
            cosine variant needs a small temperature, e.g. 0.1). Defaults to 1 for
            `"euclidean"` and 0.1 for `"cosine"`.

    Example:

    >>> import keras, tfmeta
    >>> from tfmeta.data import EpisodeSampler
    >>> model = tfmeta.PrototypicalNetwork(input_shape=(28, 28, 1))
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(EpisodeSampler(x_train, y_train, 20, 1, 5).dataset(), steps_per_epoch=200)
    >>> model.evaluate_episodes(x_test, y_test, ways=5, shots=1)["accuracy"]
    """

    learner_name = "prototypical_network"

    def __init__(
        self,
        encoder: keras.Model | None = None,
        input_shape: Sequence[int] = (28, 28, 1),
        distance: str = "euclidean",
        temperature: float | None = None,
        **kwargs,
    ):
        super().__init__(encoder=encoder, input_shape=input_shape, **kwargs)
        self.distance = check_choice(distance, "distance", ("euclidean", "cosine"))
        if temperature is None:
            temperature = 1.0 if distance == "euclidean" else 0.1
        if not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0; received {temperature!r}.")
        self.temperature = float(temperature)

    def logits_from_embeddings(self, support, support_y, query, ways, training=False):
        support = tf.reshape(support, [tf.shape(support)[0], -1])
        query = tf.reshape(query, [tf.shape(query)[0], -1])
        prototypes = class_means(support, support_y, ways)  # [N, D]
        if self.distance == "euclidean":
            scores = -pairwise_squared_distances(query, prototypes)
        else:
            scores = pairwise_cosine(query, prototypes)
        return scores / self.temperature

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(distance=self.distance, temperature=self.temperature)
        return config
