"""Matching networks (Vinyals et al., 2016).

A query's class distribution is attention over the labelled support set,
`P(y = c | x) = sum_i a(x, x_i) [y_i = c]` with `a = softmax(cosine(f(x), g(x_i)) / T)`.
With `full_context=True` the support embeddings are re-encoded by a bidirectional LSTM over
the support set (`g`) and each query embedding by an attention LSTM that reads the support
set for `processing_steps` steps (`f`), the paper's full-context embeddings (FCE).
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfmeta.metric.base import EpisodicMetricLearner, class_logsumexp, pairwise_cosine


@keras.saving.register_keras_serializable(package="tfmeta")
class MatchingNetwork(EpisodicMetricLearner):
    """Matching network: cosine attention over the support set.

    The logits are `log P(y = c | x)`, so `few_shot_probabilities` returns the attention mass
    of each class and training minimises the paper's cross-entropy.

    Args:
        encoder: Embedding network (flat embeddings); defaults to `conv4(input_shape)`.
        input_shape: Shape of one image, used when `encoder` is None.
        full_context: Use full-context embeddings (bidirectional LSTM over the support set
            and an attention LSTM for the queries). FCE depends on the support order.
        processing_steps: Attention-LSTM steps of the query embedding (FCE only).
        temperature: Cosine similarities are divided by this before the softmax (1.0 is the
            paper's plain cosine; the default 0.1 lets the attention become sharp).

    Example:

    >>> model = tfmeta.MatchingNetwork(input_shape=(28, 28, 1), full_context=True)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(EpisodeSampler(x, y, ways=5, shots=1, queries=5).dataset(), steps_per_epoch=100)
    """

    learner_name = "matching_network"

    def __init__(
        self,
        encoder: keras.Model | None = None,
        input_shape: Sequence[int] = (28, 28, 1),
        full_context: bool = False,
        processing_steps: int = 3,
        temperature: float = 0.1,
        **kwargs,
    ):
        super().__init__(encoder=encoder, input_shape=input_shape, **kwargs)
        if len(self.embedding_shape) != 1:
            raise ValueError(
                "`encoder` must output flat embeddings [batch, dim] for a MatchingNetwork; "
                f"received output shape {self.encoder.output_shape}."
            )
        if not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0; received {temperature!r}.")
        if isinstance(processing_steps, bool) or int(processing_steps) != processing_steps or processing_steps < 1:
            raise ValueError(
                f"`processing_steps` must be an integer >= 1; received {processing_steps!r}."
            )
        self.full_context = bool(full_context)
        self.processing_steps = int(processing_steps)
        self.temperature = float(temperature)
        dim = self.embedding_shape[0]
        if self.full_context:
            # The LSTMs compute embeddings, which stay float32 under mixed precision policies.
            self.support_lstm = keras.layers.Bidirectional(
                keras.layers.LSTM(dim, return_sequences=True, dtype="float32"), merge_mode="sum",
                name="g_bilstm", dtype="float32",
            )
            self.support_lstm.build((None, None, dim))
            self.query_cell = keras.layers.LSTMCell(dim, name="f_attlstm", dtype="float32")
            self.query_cell.build((None, 2 * dim))

    def full_context_support(self, support):
        """`g(x_i) = f'(x_i) + forward_i + backward_i` (bidirectional LSTM over the set)."""
        return support + self.support_lstm(support[tf.newaxis])[0]

    def full_context_query(self, query, support):
        """Attention LSTM: K steps of reading the support set, `h_k = LSTM(...) + f'(x)`."""
        h = query
        c = tf.zeros_like(query)
        readout = tf.zeros_like(query)
        for _ in range(self.processing_steps):
            out, (_, c) = self.query_cell(tf.concat([query, readout], axis=-1), [h, c])
            h = out + query
            attention = tf.nn.softmax(tf.matmul(h, support, transpose_b=True), axis=-1)
            readout = tf.matmul(attention, support)
        return h

    def logits_from_embeddings(self, support, support_y, query, ways, training=False):
        if self.full_context:
            support = self.full_context_support(support)
            query = self.full_context_query(query, support)
        scores = pairwise_cosine(query, support) / self.temperature  # [Q, S]
        return class_logsumexp(scores, support_y, ways) - tf.reduce_logsumexp(
            scores, axis=-1, keepdims=True
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            full_context=self.full_context,
            processing_steps=self.processing_steps,
            temperature=self.temperature,
        )
        return config
