"""Balanced same/different pair sampling for Siamese training, as a seeded tf.data pipeline.

Elements are `((x1, x2), same)` where `same` is float32 **1.0 for a pair of the same class
and 0.0 for a pair of different classes**. Every batch holds exactly half same pairs (rounded
down) and half different pairs, in a shuffled order.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfmeta.data.augment import as_augmentation
from tfmeta.data.episodes import class_index_table, sample_without_replacement
from tfmeta.data.seeds import seed_stream
from tfmeta.data.validation import as_labelled_arrays, check_positive_int, class_counts


class PairSampler:
    """Samples balanced same/different pairs from a labelled array set.

    Args:
        x: Examples, shape `(num_examples, ...)`.
        y: Integer class ids, shape `(num_examples,)`.
        seed: Default seed.

    Raises:
        ValueError: If `y` has fewer than 2 classes, or no class has 2 examples.

    Example:

    >>> pairs = PairSampler(x, y, seed=0)
    >>> siamese.fit(pairs.dataset(batch_size=128), steps_per_epoch=200, epochs=5)
    """

    def __init__(self, x, y, seed: int | None = None):
        x, y = as_labelled_arrays(x, y)
        counts = class_counts(y)
        if len(counts) < 2:
            raise ValueError(
                f"`y` must hold at least 2 classes to form different-class pairs; received "
                f"{len(counts)}."
            )
        self.classes = np.array(sorted(counts), dtype=np.int64)
        if max(counts.values()) < 2:
            raise ValueError(
                "At least one class in `y` needs 2 or more examples to form same-class pairs; "
                "every class has 1 (smallest class size found: 1)."
            )
        self.x, self.y, self.seed = x, y, seed
        table, cnt = class_index_table(y, self.classes)
        self._table = tf.constant(table)
        self._counts = tf.constant(cnt)
        self._max_count = int(table.shape[1])
        self._pairable = tf.constant(np.flatnonzero(cnt >= 2).astype(np.int32))
        self._x_tensor = None
        self._rng = np.random.default_rng(seed)

    def _images(self):
        if self._x_tensor is None:
            # Created eagerly (not inside the first traced map function), so the
            # cached tensor can be captured by later `dataset()` and `sample()` calls.
            with tf.init_scope():
                self._x_tensor = tf.constant(self.x)
        return self._x_tensor

    def _pairs(self, seed, batch_size: int, augment=None):
        n_same = batch_size // 2
        n_diff = batch_size - n_same
        s = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
        n_classes = tf.shape(self._counts)[0]
        # Same pairs: a pairable class, then two distinct examples of it.
        same_cls = tf.gather(
            self._pairable,
            tf.random.stateless_uniform(
                [n_same], s[0], maxval=tf.shape(self._pairable)[0], dtype=tf.int32
            ),
        )
        cols = sample_without_replacement(
            s[1], tf.gather(self._counts, same_cls), 2, self._max_count
        )
        same_idx = tf.gather(tf.gather(self._table, same_cls), cols, batch_dims=1)
        # Different pairs: two distinct classes, one example each.
        c1 = tf.random.stateless_uniform([n_diff], s[2], maxval=n_classes, dtype=tf.int32)
        offset = tf.random.stateless_uniform(
            [n_diff], s[3], minval=1, maxval=n_classes, dtype=tf.int32
        )
        c2 = (c1 + offset) % n_classes
        cls = tf.stack([c1, c2], axis=1)
        u = tf.random.stateless_uniform([n_diff, 2], s[4])
        col = tf.cast(u * tf.cast(tf.gather(self._counts, cls), tf.float32), tf.int32)
        diff_idx = tf.gather_nd(self._table, tf.stack([cls, col], axis=-1))
        idx = tf.concat([same_idx, diff_idx], axis=0)
        same = tf.concat([tf.ones([n_same]), tf.zeros([n_diff])], axis=0)
        order = tf.argsort(tf.random.stateless_uniform([batch_size], seed))
        idx = tf.gather(idx, order)
        same = tf.gather(same, order)
        images = self._images()
        x1, x2 = tf.gather(images, idx[:, 0]), tf.gather(images, idx[:, 1])
        if augment is not None:
            s1, s2 = tf.unstack(
                tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, 1), 2)
            )
            x1, x2 = augment(x1, s1), augment(x2, s2)
        return (x1, x2), same

    def sample(self, batch_size: int, seed: int | None = None):
        """Draws one batch of pairs eagerly: `((x1, x2), same)` as numpy arrays."""
        batch_size = check_positive_int(batch_size, "batch_size", 2)
        if seed is None:
            seed = int(self._rng.integers(0, 2**31 - 1))
        (x1, x2), same = self._pairs(tf.constant([seed, 1], tf.int64), batch_size)
        return (x1.numpy(), x2.numpy()), same.numpy()

    def dataset(
        self, batch_size: int = 128, batches: int | None = None, seed: int | None = None, augment=None
    ) -> tf.data.Dataset:
        """Returns a tf.data pipeline of balanced pair batches `((x1, x2), same)`.

        Args:
            batch_size: Pairs per batch (half same, half different).
            batches: Number of batches; `None` repeats forever.
            seed: Pipeline seed; defaults to the sampler's seed (0 when that is None).
            augment: Optional augmentation of both sides of every pair, applied with a seed
                drawn from the batch's own seed: `augment(images, seed) -> images` (for example
                `tfmeta.data.augment.RandomAffine()`, Koch et al.'s affine distortions), or a
                Keras image preprocessing layer or `keras.Sequential` of them (see
                `tfmeta.data.augment.as_augmentation`).
        """
        batch_size = check_positive_int(batch_size, "batch_size", 2)
        augment = as_augmentation(augment)
        seed = self.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        ds = seed_stream(seed, stream=2)
        ds = ds.map(
            lambda s: self._pairs(s, batch_size, augment),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if batches is not None:
            ds = ds.take(check_positive_int(batches, "batches"))
        return ds.prefetch(tf.data.AUTOTUNE)
