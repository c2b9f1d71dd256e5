"""N-way K-shot episode sampling over any labelled set, as a seeded tf.data pipeline.

Every episodic learner in tfmeta consumes the same element structure:

    ((support_x, support_y, query_x), query_y)

with a leading task axis T (the meta-batch, 1 by default):

    support_x: float32[T, N*K, ...]    support_y: int32[T, N*K]
    query_x:   float32[T, N*Q, ...]    query_y:   int32[T, N*Q]

Labels are remapped to 0..N-1 in a random order for every episode. Examples are grouped by
class (class 0's K shots first), but learners must not rely on that order.

Sampling runs entirely in TensorFlow with stateless random ops, so it is deterministic for a
seed, runs in parallel in `tf.data`, and never holds the Python GIL.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfmeta.data.augment import as_augmentation
from tfmeta.data.seeds import seed_stream
from tfmeta.data.validation import as_labelled_arrays, check_episode_request, check_positive_int


class Episode(NamedTuple):
    """One N-way K-shot episode (numpy arrays, no task axis)."""

    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray


def class_index_table(y: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(table[C, max_count], counts[C])`: example indices of each class, padded -1."""
    members = [np.flatnonzero(y == c) for c in classes]
    counts = np.array([len(m) for m in members], dtype=np.int32)
    table = np.full((len(classes), int(counts.max())), -1, dtype=np.int32)
    for row, m in zip(table, members):
        row[: len(m)] = m
    return table, counts


def sample_without_replacement(seed, counts, n: int, max_count: int):
    """For each row i, `n` distinct column ids in [0, counts[i]), via stateless random keys."""
    keys = tf.random.stateless_uniform([tf.shape(counts)[0], max_count], seed)
    valid = tf.range(max_count)[tf.newaxis, :] < counts[:, tf.newaxis]
    keys = tf.where(valid, keys, 2.0)
    return tf.argsort(keys, axis=1)[:, :n]


class EpisodeSampler:
    """Samples N-way K-shot episodes with Q queries per class from a labelled array set.

    Args:
        x: Examples, shape `(num_examples, ...)`.
        y: Integer class ids, shape `(num_examples,)`.
        ways: Classes per episode (N).
        shots: Support examples per class (K).
        queries: Query examples per class (Q).
        seed: Seed for `sample()` and the default seed of `dataset()`.
        class_groups: Optional mapping `{class id: group}` (for Omniglot, the class's
            alphabet). Each episode then draws all its classes from one group, chosen
            uniformly among the groups with at least `ways` eligible classes: harder episodes
            whose negatives look alike, like Lake's one-shot runs (one alphabet per run).

    Raises:
        ValueError: If the data cannot supply such an episode (too few classes, or too few
            examples per class, or no group with `ways` classes); the message names the
            argument and what the data holds.

    Example:

    >>> sampler = EpisodeSampler(x, y, ways=5, shots=1, queries=15, seed=0)
    >>> ds = sampler.dataset(meta_batch=32)          # ((sx, sy, qx), qy) with T=32
    >>> model.fit(ds, steps_per_epoch=100, epochs=10)
    """

    def __init__(
        self,
        x,
        y,
        ways: int,
        shots: int,
        queries: int = 1,
        seed: int | None = None,
        class_groups: dict | None = None,
    ):
        x, y = as_labelled_arrays(x, y)
        self.classes = check_episode_request(y, ways, shots, queries)
        self._group_of_class = None
        if class_groups is not None:
            self._group_of_class = self._group_table(class_groups, ways)
        self.ways, self.shots, self.queries = int(ways), int(shots), int(queries)
        self.seed = seed
        self.x = x
        self.y = y
        table, counts = class_index_table(y, self.classes)
        self._table = tf.constant(table)
        self._counts = tf.constant(counts)
        self._max_count = int(table.shape[1])
        self._x_tensor = None
        self._rng = np.random.default_rng(seed)

    def _group_table(self, class_groups: dict, ways: int) -> tf.Tensor:
        """Group index of every eligible class, groups with fewer than `ways` classes = -1."""
        missing = [int(c) for c in self.classes if int(c) not in class_groups]
        if missing:
            raise ValueError(f"`class_groups` has no group for classes {missing[:5]} (of {len(missing)}).")
        names = [class_groups[int(c)] for c in self.classes]
        unique, index = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
        sizes = np.bincount(index, minlength=len(unique))
        if sizes.max() < ways:
            raise ValueError(
                f"`ways`={ways} asks for more classes than any group of `class_groups` holds: the "
                f"largest of its {len(unique)} groups has {int(sizes.max())} eligible classes."
            )
        usable = sizes >= ways
        self.groups = [str(g) for g in unique[usable]]
        remap = np.where(usable, np.cumsum(usable) - 1, -1)
        return tf.constant(remap[index].astype(np.int32))

    @property
    def example_shape(self) -> tuple[int, ...]:
        """Shape of one example."""
        return tuple(self.x.shape[1:])

    def _images(self) -> tf.Tensor:
        if self._x_tensor is None:
            # Created eagerly (not inside the first traced map function), so the
            # cached tensor can be captured by later `dataset()` and `sample()` calls.
            with tf.init_scope():
                self._x_tensor = tf.constant(self.x)
        return self._x_tensor

    def _sample_indices(self, seed):
        """Returns (support_idx[N*K], query_idx[N*Q]) for a stateless seed of shape [2]."""
        n_classes = tf.shape(self._counts)[0]
        class_seed, example_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        keys = tf.random.stateless_uniform([n_classes], class_seed)
        if self._group_of_class is not None:  # one group per episode: other classes sort last
            group_seed = tf.random.experimental.stateless_fold_in(class_seed, 7)
            group = tf.random.stateless_uniform([], group_seed, 0, len(self.groups), tf.int32)
            keys = tf.where(tf.equal(self._group_of_class, group), keys, 2.0)
        chosen = tf.argsort(keys)[: self.ways]
        counts = tf.gather(self._counts, chosen)
        cols = sample_without_replacement(
            example_seed, counts, self.shots + self.queries, self._max_count
        )
        idx = tf.gather(tf.gather(self._table, chosen), cols, batch_dims=1)
        support_idx = tf.reshape(idx[:, : self.shots], [-1])
        query_idx = tf.reshape(idx[:, self.shots :], [-1])
        return support_idx, query_idx

    def _episode(self, seed, augment=None):
        support_idx, query_idx = self._sample_indices(seed)
        images = self._images()
        support_y = tf.repeat(tf.range(self.ways, dtype=tf.int32), self.shots)
        query_y = tf.repeat(tf.range(self.ways, dtype=tf.int32), self.queries)
        support_x, query_x = tf.gather(images, support_idx), tf.gather(images, query_idx)
        if augment is not None:
            support_seed, query_seed = tf.unstack(
                tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, 1), 2)
            )
            support_x, query_x = augment(support_x, support_seed), augment(query_x, query_seed)
        return (support_x, support_y, query_x), query_y

    def sample(self, seed: int | None = None) -> Episode:
        """Draws one episode eagerly and returns it as numpy arrays (no task axis)."""
        if seed is None:
            seed = int(self._rng.integers(0, 2**31 - 1))
        (sx, sy, qx), qy = self._episode(tf.constant([seed, 0], dtype=tf.int64))
        return Episode(sx.numpy(), sy.numpy(), qx.numpy(), qy.numpy())

    def dataset(
        self,
        meta_batch: int = 1,
        episodes: int | None = None,
        seed: int | None = None,
        map_fn=None,
        augment=None,
    ) -> tf.data.Dataset:
        """Returns a tf.data pipeline of episodes with a leading task axis of `meta_batch`.

        Args:
            meta_batch: Episodes (tasks) per element (T).
            episodes: Number of elements to yield; `None` repeats forever (use
                `steps_per_epoch` in `fit`).
            seed: Pipeline seed; defaults to the sampler's seed (0 when that is None).
            map_fn: Optional function applied to each episode `((sx, sy, qx), qy)` before
                batching.
            augment: Optional augmentation of the support and the query images, applied with
                a stateless seed drawn from the episode's own seed, so the pipeline stays
                repeatable: `augment(images, seed) -> images` (for example
                `tfmeta.data.augment.RandomAffine()`), or a Keras image preprocessing layer
                or `keras.Sequential` of them (for example
                `keras.layers.RandomRotation(0.03, fill_mode="constant")`; see
                `tfmeta.data.augment.as_augmentation`).

        Returns:
            A `tf.data.Dataset` of `((support_x, support_y, query_x), query_y)`.
        """
        meta_batch = check_positive_int(meta_batch, "meta_batch")
        augment = as_augmentation(augment)
        seed = self.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        ds = seed_stream(seed, stream=0)
        ds = ds.map(lambda s: self._episode(s, augment), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if map_fn is not None:
            ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(meta_batch, drop_remainder=True)
        if episodes is not None:
            ds = ds.take(check_positive_int(episodes, "episodes"))
        return ds.prefetch(tf.data.AUTOTUNE)
