"""Relation networks (Sung et al., 2018).

A learned relation module scores the concatenation of a query embedding with each class's
pooled support embedding; the highest relation score wins. As in the paper the default loss
regresses `sigmoid(score)` onto the one-hot target with a mean squared error.

Flat embeddings (the default conv4 encoder) get an MLP relation module; feature-map encoders
(e.g. `relation_encoder`, the paper's Omniglot encoder) get the paper's convolutional one.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf
from keras import layers

from tfmeta.metric.base import EpisodicMetricLearner, check_choice, class_means, class_sums


def relation_encoder(input_shape: Sequence[int] = (28, 28, 1), filters: int = 64) -> keras.Model:
    """Sung et al.'s Omniglot encoder: 4 conv blocks, pooling in the first two; feature maps.

    Example:

    >>> relation_encoder((28, 28, 1)).output_shape
    (None, 7, 7, 64)
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    h = inputs
    for i in range(4):
        h = layers.Conv2D(filters, 3, padding="same", name=f"conv{i + 1}")(h)
        h = layers.BatchNormalization(name=f"bn{i + 1}")(h)
        h = layers.ReLU(name=f"relu{i + 1}")(h)
        if i < 2:
            h = layers.MaxPooling2D(2, name=f"pool{i + 1}")(h)
    return keras.Model(inputs, h, name="relation_encoder")


def relation_module(
    pair_shape: Sequence[int], hidden: Sequence[int] = (64, 8), filters: int = 64
) -> keras.Model:
    """Builds the relation module for concatenated pairs of shape `pair_shape`.

    Flat pairs `[2D]` get `Dense(hidden...) -> Dense(1)`; feature-map pairs `[H, W, 2C]` get
    the paper's two conv blocks (3x3 conv, BN, ReLU, 2x2 max-pool), then `Dense(8) ->
    Dense(1)`. The output is the unbounded relation score (the logit of the sigmoid).
    """
    inputs = keras.Input(tuple(pair_shape), name="pair")
    h = inputs
    if len(pair_shape) == 3:
        for i in range(2):
            h = layers.Conv2D(filters, 3, padding="same", name=f"rconv{i + 1}")(h)
            h = layers.BatchNormalization(name=f"rbn{i + 1}")(h)
            h = layers.ReLU(name=f"rrelu{i + 1}")(h)
            if h.shape[1] >= 2 and h.shape[2] >= 2:
                h = layers.MaxPooling2D(2, name=f"rpool{i + 1}")(h)
        h = layers.Flatten()(h)
        hidden = hidden[-1:]
    elif len(pair_shape) != 1:
        raise ValueError(
            f"`encoder` must output flat embeddings or [H, W, C] feature maps; received pair "
            f"shape {tuple(pair_shape)}."
        )
    for i, units in enumerate(hidden):
        h = layers.Dense(units, activation="relu", name=f"rdense{i + 1}")(h)
    outputs = layers.Dense(1, dtype="float32", name="relation")(h)  # float32 scores under mixed_bfloat16
    return keras.Model(inputs, outputs, name="relation_module")


@keras.saving.register_keras_serializable(package="tfmeta")
class RelationNetwork(EpisodicMetricLearner):
    """Relation network: a learned similarity between a query and each class.

    Args:
        encoder: Embedding network (flat vectors or feature maps); defaults to
            `tfmeta.backbones.conv4(input_shape)`.
        input_shape: Shape of one image, used when `encoder` is None.
        relation: Relation module taking `concat([class embedding, query embedding], -1)`
            and returning one score; defaults to `relation_module(...)` for the encoder.
        hidden: Hidden units of the default MLP relation module.
        pooling: How a class's K support embeddings are pooled: `"mean"` (default; keeps the
            relation module's input scale independent of K, so test shots may differ from
            training shots) or `"sum"` (the paper).
        loss: `"mse"` (paper: sigmoid scores regressed onto one-hot) or `"cross_entropy"`
            (softmax over the scores).

    Example:

    >>> model = tfmeta.RelationNetwork(input_shape=(28, 28, 1))
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(EpisodeSampler(x, y, ways=5, shots=1, queries=5).dataset(), steps_per_epoch=100)
    """

    learner_name = "relation_network"

    def __init__(
        self,
        encoder: keras.Model | None = None,
        input_shape: Sequence[int] = (28, 28, 1),
        relation: keras.Model | None = None,
        hidden: Sequence[int] = (64, 8),
        pooling: str = "mean",
        loss: str = "mse",
        **kwargs,
    ):
        super().__init__(encoder=encoder, input_shape=input_shape, **kwargs)
        self.pooling = check_choice(pooling, "pooling", ("mean", "sum"))
        self.loss_name = check_choice(loss, "loss", ("mse", "cross_entropy"))
        self.hidden = tuple(int(h) for h in hidden)
        shape = self.embedding_shape
        pair_shape = (*shape[:-1], 2 * shape[-1])
        if relation is None:
            relation = relation_module(pair_shape, self.hidden)
        elif not isinstance(relation, keras.Model):
            raise ValueError(
                f"`relation` must be a keras.Model scoring pairs of shape {pair_shape}; "
                f"received {type(relation).__name__}."
            )
        self.relation = relation

    def logits_from_embeddings(self, support, support_y, query, ways, training=False):
        pool = class_means if self.pooling == "mean" else class_sums
        classes = pool(support, support_y, ways)  # [N, ...]
        n_query = tf.shape(query)[0]
        tiled_classes = tf.repeat(classes[tf.newaxis], n_query, axis=0)  # [Q, N, ...]
        tiled_query = tf.repeat(query[:, tf.newaxis], ways, axis=1)  # [Q, N, ...]
        pairs = tf.concat([tiled_classes, tiled_query], axis=-1)
        pair_shape = tf.shape(pairs)[2:]
        flat = tf.reshape(pairs, tf.concat([[-1], pair_shape], 0))
        scores = self.relation(flat, training=training)
        return tf.reshape(scores, [n_query, ways])

    def episode_loss(self, logits, query_y, ways):
        if self.loss_name == "cross_entropy":
            return super().episode_loss(logits, query_y, ways)
        target = tf.one_hot(tf.cast(query_y, tf.int32), ways, dtype=logits.dtype)
        return tf.reduce_mean(tf.square(tf.sigmoid(logits) - target))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            relation=keras.saving.serialize_keras_object(self.relation),
            hidden=list(self.hidden),
            pooling=self.pooling,
            loss=self.loss_name,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["relation"] = keras.saving.deserialize_keras_object(config["relation"])
        return super().from_config(config)
