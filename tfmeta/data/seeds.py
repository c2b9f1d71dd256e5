"""Per-element stateless seeds for the samplers' tf.data pipelines.

`tf.data.Dataset.random(seed)` also depends on TensorFlow's global seed, so the same sampler
seed used to give different episodes after `keras.utils.set_random_seed(0)` or `(1)` (ch03
scored its seed-0 and seed-1 runs on different test episodes). `seed_stream` depends on its
`seed` argument alone.

Example:

>>> ds = seed_stream(1234)            # int64[2] stateless seeds: element i folds i into 1234
>>> ds.map(lambda s: tf.random.stateless_uniform([], s))
"""

from __future__ import annotations

import tensorflow as tf


def seed_stream(seed: int, stream: int = 0) -> tf.data.Dataset:
    """An endless dataset of `int64[2]` stateless seeds, a function of `(seed, stream)` only.

    Args:
        seed: The pipeline seed.
        stream: Separates pipelines that share a seed (episodes, pairs, sinusoid tasks).
    """
    base = tf.constant([int(seed), int(stream)], tf.int64)
    return tf.data.Dataset.counter().map(
        lambda i: tf.random.experimental.stateless_fold_in(base, i)
    )
