"""The sinusoid regression task family of the MAML paper (Finn et al., 2017, section 5.1).

Each task is `y = A sin(x - phase)` with amplitude `A ~ U[0.1, 5]`, phase `~ U[0, pi]` and
inputs `x ~ U[-5, 5]`. A task's support set holds K points, its query set `queries` points.
`SinusoidTasks.dataset(meta_batch=T)` yields exactly the element structure of
`tfmeta.data.EpisodeSampler.dataset`, with float targets:

    ((support_x float32[T, K, 1], support_y float32[T, K, 1], query_x float32[T, Q, 1]),
     query_y float32[T, Q, 1])

so `tfmeta.MAML` trains on it with `fit` unchanged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfmeta.data.seeds import seed_stream
from tfmeta.data.validation import check_positive_int


class SinusoidTask(NamedTuple):
    """One sinusoid task: its parameters and sampled support/query points (numpy)."""

    amplitude: float
    phase: float
    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray

    def __call__(self, x) -> np.ndarray:
        """Evaluates the task's true function at `x`."""
        return self.amplitude * np.sin(np.asarray(x, np.float32) - self.phase)


def _check_range(value, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a (low, high) pair of numbers; received {value!r}.")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"`{name}` must be a finite (low, high) pair with low <= high; received {value!r}.")
    return low, high


class SinusoidTasks:
    """Samples sinusoid regression tasks as seeded, stateless tf.data episodes.

    Args:
        shots: Support points per task (K; 5 or 10 in the paper).
        queries: Query points per task.
        amplitude: Range of the amplitude (uniform).
        phase: Range of the phase (uniform).
        x_range: Range of the inputs (uniform).
        seed: Default seed of `sample()` and `dataset()`.

    Example:

    >>> tasks = SinusoidTasks(shots=10, queries=10, seed=0)
    >>> ds = tasks.dataset(meta_batch=25)
    >>> (sx, sy, qx), qy = next(iter(ds))
    >>> sx.shape, sy.dtype
    (TensorShape([25, 10, 1]), tf.float32)
    """

    def __init__(
        self,
        shots: int = 10,
        queries: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        seed: int | None = None,
    ):
        self.shots = check_positive_int(shots, "shots")
        self.queries = check_positive_int(queries, "queries")
        self.amplitude = _check_range(amplitude, "amplitude")
        self.phase = _check_range(phase, "phase")
        self.x_range = _check_range(x_range, "x_range")
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def _task(self, seed):
        """Returns (params [2], ((sx, sy, qx), qy)) for a stateless seed of shape [2]."""
        p_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        u = tf.random.stateless_uniform([2], p_seed)
        amp = self.amplitude[0] + (self.amplitude[1] - self.amplitude[0]) * u[0]
        phase = self.phase[0] + (self.phase[1] - self.phase[0]) * u[1]
        n = self.shots + self.queries
        x = tf.random.stateless_uniform(
            [n, 1], x_seed, minval=self.x_range[0], maxval=self.x_range[1]
        )
        y = amp * tf.sin(x - phase)
        return tf.stack([amp, phase]), ((x[: self.shots], y[: self.shots], x[self.shots :]), y[self.shots :])

    def sample(self, seed: int | None = None) -> SinusoidTask:
        """Draws one task eagerly (numpy arrays, no task axis)."""
        if seed is None:
            seed = int(self._rng.integers(0, 2**31 - 1))
        params, ((sx, sy, qx), qy) = self._task(tf.constant([seed, 1], tf.int64))
        amp, phase = params.numpy().tolist()
        return SinusoidTask(amp, phase, sx.numpy(), sy.numpy(), qx.numpy(), qy.numpy())

    def dataset(
        self, meta_batch: int = 1, episodes: int | None = None, seed: int | None = None
    ) -> tf.data.Dataset:
        """Returns a tf.data pipeline of task batches `((sx, sy, qx), qy)`, leading axis T.

        Args:
            meta_batch: Tasks per element (T).
            episodes: Number of elements; `None` repeats forever.
            seed: Pipeline seed; defaults to the sampler's seed (0 when None).
        """
        meta_batch = check_positive_int(meta_batch, "meta_batch")
        seed = self.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        ds = seed_stream(seed, stream=1)
        ds = ds.map(lambda s: self._task(s)[1], num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(meta_batch, drop_remainder=True)
        if episodes is not None:
            ds = ds.take(check_positive_int(episodes, "episodes"))
        return ds.prefetch(tf.data.AUTOTUNE)
