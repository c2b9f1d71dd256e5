"""Stateless seeds for the samplers' tf.data pipelines and the Keras layers they apply.

`tf.data.Dataset.random(seed)` also depends on TensorFlow's global seed, so the same sampler
seed used to give different episodes after `keras.utils.set_random_seed(0)` or `(1)`.
`seed_stream` depends on its `seed` argument alone.

Keras's random layers draw from a stateful `keras.random.SeedGenerator`, so what they draw
depends on how often they ran before. `StatelessSeedGenerator` hands them seeds derived from
one stateless seed instead, so an episode's augmentation depends on the episode's seed alone.

Example:

>>> ds = seed_stream(1234)            # int64[2] stateless seeds: element i folds i into 1234
>>> ds.map(lambda s: tf.random.stateless_uniform([], s))
"""

from __future__ import annotations

import keras
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


class StatelessSeedGenerator(keras.random.SeedGenerator):
    """A `keras.random.SeedGenerator` whose seeds all derive from one stateless seed.

    Its k-th `next()` returns `stateless_fold_in(seed, k)`: distinct seeds for the several
    draws of one call (a translation draws x and y), and the same ones for the same `seed`,
    whatever ran before and in parallel. Keras's image preprocessing layers take it as the
    `seed` of `get_random_transformation`. Make a new one per call.

    Args:
        seed: A stateless seed, an integer tensor of shape `[2]`.

    Example:

    >>> layer = keras.layers.RandomRotation(0.05, fill_mode="constant")
    >>> images = tf.random.uniform([4, 28, 28, 1])
    >>> seed = StatelessSeedGenerator(tf.constant([3, 4]))
    >>> t = layer.get_random_transformation(images, training=True, seed=seed)
    >>> rotated = layer.transform_images(images, t, training=True)
    """

    def __init__(self, seed):
        # No SeedGenerator.__init__: it creates a state variable, which this generator does
        # not use and which a tf.data map function must not create.
        seed = tf.convert_to_tensor(seed)
        if seed.shape.rank != 1 or seed.shape[0] != 2 or not seed.dtype.is_integer:
            raise ValueError(
                "`seed` must be an integer tensor of shape [2], received "
                f"{seed.dtype.name} of shape {seed.shape}."
            )
        self.name = "stateless_seed_generator"
        self._initial_seed = None
        self._seed = tf.cast(seed, tf.int64)
        self._draws = 0

    def next(self, ordered: bool = True) -> tf.Tensor:
        """The next stateless seed: `seed` folded with the number of seeds drawn so far."""
        self._draws += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._draws)
