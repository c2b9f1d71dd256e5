"""The episodic training loop shared by the metric-based few-shot learners.

`EpisodicMetricLearner` is a `keras.Model` that trains with `fit(episodes)` on the episode
structure of `tfmeta.data.EpisodeSampler.dataset`:

    ((support_x [T, N*K, ...], support_y int32 [T, N*K], query_x [T, N*Q, ...]), query_y [T, N*Q])

For every batch it embeds all support and query images of all T episodes with one encoder
call, then scores each episode's queries with `logits_from_embeddings` (the only method a
learner must write) and minimises the mean `episode_loss` (sparse cross-entropy by default).
Evaluation, probabilities and the `few_shot` SavedModel signature come from
`tfmeta.fewshot.FewShotMixin`, so every learner is scored by the same routine.

A new metric learner is a small subclass:

>>> class NearestNeighbour(EpisodicMetricLearner):
...     learner_name = "nearest_neighbour"
...     def logits_from_embeddings(self, support, support_y, query, ways, training=False):
...         d = pairwise_squared_distances(query, support)          # [Q, S]
...         return class_logsumexp(-d, support_y, ways)            # [Q, ways]
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from tfmeta import backbones
from tfmeta.fewshot import FewShotMixin
from tfmeta.optimizer_step import minimize
from tfmeta.training_state import PrebuiltOptimizerMixin

# ---------------------------------------------------------------------------------- helpers


def class_means(embeddings, labels, ways):
    """Mean embedding of each class: `[ways, ...]` from `[S, ...]` and labels in 0..ways-1.

    Uses a one-hot matmul, so the support set may be in any order and classes may have
    different numbers of examples (a class without examples gets a zero vector).
    """
    labels = tf.cast(labels, tf.int32)
    flat = tf.reshape(embeddings, [tf.shape(embeddings)[0], -1])
    onehot = tf.one_hot(labels, ways, dtype=flat.dtype)  # [S, N]
    sums = tf.matmul(onehot, flat, transpose_a=True)  # [N, D]
    counts = tf.maximum(tf.reduce_sum(onehot, axis=0), 1.0)[:, tf.newaxis]
    means = sums / counts
    return tf.reshape(means, tf.concat([[ways], tf.shape(embeddings)[1:]], axis=0))


def class_sums(embeddings, labels, ways):
    """Sum of the embeddings of each class, `[ways, ...]` (Sung et al.'s K-shot pooling)."""
    labels = tf.cast(labels, tf.int32)
    return tf.math.unsorted_segment_sum(embeddings, labels, ways)


def pairwise_squared_distances(a, b):
    """`[A, B]` squared Euclidean distances between rows of `a [A, D]` and `b [B, D]`."""
    diff = a[:, tf.newaxis, :] - b[tf.newaxis, :, :]
    return tf.reduce_sum(tf.square(diff), axis=-1)


def pairwise_cosine(a, b, eps: float = 1e-8):
    """`[A, B]` cosine similarities between rows of `a [A, D]` and `b [B, D]`."""
    a = a * tf.math.rsqrt(tf.reduce_sum(tf.square(a), axis=-1, keepdims=True) + eps)
    b = b * tf.math.rsqrt(tf.reduce_sum(tf.square(b), axis=-1, keepdims=True) + eps)
    return tf.matmul(a, b, transpose_b=True)


def class_logsumexp(scores, labels, ways):
    """`[Q, ways]`: log-sum-exp of `scores [Q, S]` over the support items of each class.

    `softmax` of the result is the attention mass each class receives, i.e. the matching
    network's `P(y = c | x) = sum_i a(x, x_i) [y_i = c]`.
    """
    mask = tf.one_hot(tf.cast(labels, tf.int32), ways, on_value=True, off_value=False)  # [S, N]
    masked = tf.where(
        mask[tf.newaxis, :, :], scores[:, :, tf.newaxis], tf.constant(-1e9, scores.dtype)
    )  # [Q, S, N]
    return tf.reduce_logsumexp(masked, axis=1)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Raises ValueError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; received {value!r}.")
    return value


# ------------------------------------------------------------------------------ the model


class EpisodicMetricLearner(PrebuiltOptimizerMixin, FewShotMixin, backbones.EncoderConfigMixin, keras.Model):
    """Base class of metric learners trained on N-way K-shot episodes.

    Subclasses implement `logits_from_embeddings(support, support_y, query, ways, training)`
    for one episode of embeddings and may override `episode_loss`. Everything else (encoder,
    `train_step`/`test_step` over meta-batches of episodes, `call`, metrics, probabilities,
    episodic evaluation and export) is shared.

    Args:
        encoder: A `keras.Model` mapping images to embeddings (flat vectors or feature maps);
            defaults to `tfmeta.backbones.conv4(input_shape)`.
        input_shape: Shape of one image; used only when `encoder` is None.
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Training data is `tfmeta.data.EpisodeSampler(...).dataset(meta_batch)`; the number of
    ways and shots may change between training and evaluation, since nothing in the model
    depends on them.

    Example:

    >>> model = tfmeta.PrototypicalNetwork(input_shape=(28, 28, 1))
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(EpisodeSampler(x, y, ways=20, shots=1, queries=5).dataset(), steps_per_epoch=100)
    >>> model.evaluate_episodes(x_test, y_test, ways=5, shots=1)["accuracy"]
    """

    learner_name = "metric"

    def __init__(
        self,
        encoder: keras.Model | None = None,
        input_shape: Sequence[int] = (28, 28, 1),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if encoder is None:
            encoder = backbones.conv4(tuple(input_shape))
        if not isinstance(encoder, keras.Model):
            raise ValueError(
                f"`encoder` must be a keras.Model mapping images to embeddings; received "
                f"{type(encoder).__name__}."
            )
        self.encoder = encoder
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        # The encoder is built; subclasses build any other sub-network in their __init__.
        self.built = True

    # ----------------------------------------------------------------- to implement
    def logits_from_embeddings(self, support, support_y, query, ways, training=False):
        """Returns `[Q, ways]` logits of one episode from support/query embeddings."""
        raise NotImplementedError

    def episode_loss(self, logits, query_y, ways):
        """Loss of one episode's `[Q, ways]` logits (mean sparse cross-entropy)."""
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(query_y, tf.int32), logits=logits
            )
        )

    # --------------------------------------------------------------------- shared
    @property
    def embedding_shape(self) -> tuple:
        """Shape of one embedding (without the batch axis)."""
        return tuple(self.encoder.output_shape[1:])

    def embed(self, x, training=False):
        """Encodes a batch of examples, in float32 under any dtype policy (distances and
        prototypes stay float32 when the encoder computes in `mixed_bfloat16`)."""
        return tf.cast(self.encoder(x, training=training), tf.float32)

    def few_shot_logits(self, support_x, support_y, query_x, ways):
        """`[Q, ways]` logits for one episode (no task axis); support order does not matter."""
        support_y = tf.cast(support_y, tf.int32)
        n_support = tf.shape(support_x)[0]
        emb = self.embed(tf.concat([support_x, query_x], axis=0), training=False)
        return self.logits_from_embeddings(
            emb[:n_support], support_y, emb[n_support:], ways, training=False
        )

    def episode_batch_logits(self, support_x, support_y, query_x, training=False):
        """Logits `[T, N*Q, N]` for a meta-batch of episodes, plus the number of ways.

        All images of all episodes go through the encoder in one call (as in Snell et al.,
        support and query share the batch-norm statistics in training).
        """
        support_y = tf.cast(support_y, tf.int32)
        t = tf.shape(support_x)[0]
        s = tf.shape(support_x)[1]
        q = tf.shape(query_x)[1]
        example = tf.shape(support_x)[2:]
        images = tf.concat(
            [
                tf.reshape(support_x, tf.concat([[-1], example], 0)),
                tf.reshape(query_x, tf.concat([[-1], example], 0)),
            ],
            axis=0,
        )
        emb = self.embed(images, training=training)
        emb_shape = tf.shape(emb)[1:]
        support = tf.reshape(emb[: t * s], tf.concat([[t, s], emb_shape], 0))
        query = tf.reshape(emb[t * s :], tf.concat([[t, q], emb_shape], 0))
        ways = tf.reduce_max(support_y) + 1
        static_t = support_x.shape[0]
        if static_t is not None:
            logits = tf.stack(
                [
                    self.logits_from_embeddings(
                        support[i], support_y[i], query[i], ways, training=training
                    )
                    for i in range(static_t)
                ]
            )
        else:
            logits = tf.map_fn(
                lambda e: self.logits_from_embeddings(e[0], e[1], e[2], ways, training=training),
                (support, support_y, query),
                fn_output_signature=tf.TensorSpec([None, None], emb.dtype),
            )
        return logits, ways

    def call(self, inputs, training=None):
        """`inputs = (support_x [T,S,...], support_y [T,S], query_x [T,Q,...])` -> `[T,Q,N]`."""
        support_x, support_y, query_x = inputs
        logits, _ = self.episode_batch_logits(
            support_x, support_y, query_x, training=bool(training)
        )
        return logits

    def _loss_and_accuracy(self, data, training):
        (support_x, support_y, query_x), query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits, ways = self.episode_batch_logits(support_x, support_y, query_x, training)
        return self.loss_and_accuracy_from_logits(logits, query_y, ways)

    def loss_and_accuracy_from_logits(self, logits, query_y, ways):
        """Mean `episode_loss` and query accuracy of a meta-batch's `[T, Q, N]` logits."""
        query_y = tf.cast(query_y, tf.int32)
        loss = tf.reduce_mean(
            tf.stack(
                [self.episode_loss(logits[i], query_y[i], ways) for i in range(logits.shape[0])]
            )
            if logits.shape[0] is not None
            else tf.map_fn(
                lambda e: self.episode_loss(e[0], e[1], ways),
                (logits, query_y),
                fn_output_signature=tf.TensorSpec([], logits.dtype),
            )
        )
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), query_y), tf.float32)
        return loss, tf.reduce_mean(correct)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss, accuracy = self._loss_and_accuracy(data, training=True)
            total = loss + tf.add_n(self.losses) if self.losses else loss
        minimize(self.optimizer, tape, total, self.trainable_variables)
        return self._update_metrics(loss, accuracy)

    def test_step(self, data):
        loss, accuracy = self._loss_and_accuracy(data, training=False)
        return self._update_metrics(loss, accuracy)

    def _update_metrics(self, loss, accuracy):
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(accuracy)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]
