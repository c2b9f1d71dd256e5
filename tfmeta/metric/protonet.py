"""Prototypical networks (Snell, Swersky and Zemel, 2017).

Each class is represented by its prototype, the mean embedding of its support examples; a
query is classified by a softmax over negative squared Euclidean distances to the prototypes
(or over scaled cosine similarities with `distance="cosine"`).

`refine_steps > 0` makes inference transductive: the prototypes are refined with the
unlabelled queries of the episode by soft k-means (Ren et al. 2018, "Meta-Learning for
Semi-Supervised Few-Shot Classification"), each query counting towards every class in
proportion to its current class probability.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import keras
import tensorflow as tf

from tfmeta.metric.base import (
    EpisodicMetricLearner,
    check_choice,
    class_means,
    class_sums,
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
        refine_steps: Soft k-means refinements of the prototypes with the episode's queries
            at inference (transductive: a query's prediction then depends on the other
            queries sent with it; 0, the default, is the original inductive model). Training
            is unchanged. Its accuracy figures are not comparable with inductive ones, and it
            needs a batch of queries: sent one at a time, they barely move the prototypes.

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
        refine_steps: int = 0,
        **kwargs,
    ):
        super().__init__(encoder=encoder, input_shape=input_shape, **kwargs)
        self.distance = check_choice(distance, "distance", ("euclidean", "cosine"))
        if temperature is None:
            temperature = 1.0 if distance == "euclidean" else 0.1
        if not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0; received {temperature!r}.")
        self.temperature = float(temperature)
        if isinstance(refine_steps, bool) or not isinstance(refine_steps, numbers.Integral) or refine_steps < 0:
            raise ValueError(
                f"`refine_steps` must be an integer >= 0; received {refine_steps!r}."
            )
        refine_steps = int(refine_steps)
        self.refine_steps = refine_steps

    def _scores(self, query, prototypes):
        if self.distance == "euclidean":
            scores = -pairwise_squared_distances(query, prototypes)
        else:
            scores = pairwise_cosine(query, prototypes)
        return scores / self.temperature

    def logits_from_embeddings(self, support, support_y, query, ways, training=False):
        support = tf.reshape(support, [tf.shape(support)[0], -1])
        query = tf.reshape(query, [tf.shape(query)[0], -1])
        if not self.refine_steps or training:
            return self._scores(query, class_means(support, support_y, ways))
        sums = class_sums(support, support_y, ways)  # [N, D]
        counts = class_sums(tf.ones_like(support[:, 0]), support_y, ways)  # [N]
        prototypes = sums / tf.maximum(counts, 1.0)[:, tf.newaxis]
        for _ in range(self.refine_steps):
            assign = tf.nn.softmax(self._scores(query, prototypes), axis=-1)  # [Q, N]
            weight = counts + tf.reduce_sum(assign, axis=0)
            prototypes = (sums + tf.matmul(assign, query, transpose_a=True)) / tf.maximum(
                weight, 1e-8
            )[:, tf.newaxis]
        return self._scores(query, prototypes)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            distance=self.distance, temperature=self.temperature, refine_steps=self.refine_steps
        )
        return config
