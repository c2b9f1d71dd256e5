"""Keras callbacks for training on a wall-clock budget.

On a CPU the number of steps that fit in an afternoon is rarely known in advance, but the
time is. `TimeBudget` stops `fit()` once the budget is spent and can anneal the learning rate
along a cosine over that *time*, so a run ends on a small learning rate whatever its speed.

Example:

>>> budget = tfmeta.callbacks.TimeBudget(25 * 60, cosine_lr=1e-3)
>>> model.fit(episodes, steps_per_epoch=500, epochs=1000, callbacks=[budget])
>>> budget.steps  # batches actually run
"""

from __future__ import annotations

import math
import time

import keras

# Elapsed time is measured on the monotonic clock (immune to system clock changes).
_now = time.monotonic


class TimeBudget(keras.callbacks.Callback):
    """Stops training after `seconds` of wall time; optionally a cosine learning rate over it.

    The clock starts at `on_train_begin`; the check runs after every batch, so training stops
    at most one batch past the budget.

    Args:
        seconds: Wall-time budget in seconds (> 0; `float("inf")` never stops).
        cosine_lr: If set, the optimizer's learning rate is set before every batch to
            `min_lr + (cosine_lr - min_lr) * (1 + cos(pi * elapsed / seconds)) / 2`. The
            optimizer must have been compiled with a plain (not scheduled) learning rate.
        min_lr: Learning rate at the end of the budget when `cosine_lr` is set.

    Attributes:
        steps: Batches run in the last `fit()` call.
        elapsed: Seconds spent in the last `fit()` call, as of its last batch.
    """

    def __init__(self, seconds: float, cosine_lr: float | None = None, min_lr: float = 0.0):
        super().__init__()
        if not float(seconds) > 0:
            raise ValueError(f"`seconds` must be > 0; received seconds={seconds!r}.")
        if cosine_lr is not None and not float(cosine_lr) > 0:
            raise ValueError(f"`cosine_lr` must be > 0 or None; received cosine_lr={cosine_lr!r}.")
        if cosine_lr is not None and not 0 <= float(min_lr) <= float(cosine_lr):
            raise ValueError(
                f"`min_lr` must be in [0, cosine_lr={cosine_lr!r}]; received min_lr={min_lr!r}."
            )
        self.seconds = float(seconds)
        self.cosine_lr = None if cosine_lr is None else float(cosine_lr)
        self.min_lr = float(min_lr)
        self.steps = 0
        self.elapsed = 0.0
        self._start = None

    def learning_rate_at(self, elapsed: float) -> float:
        """The cosine learning rate after `elapsed` seconds (requires `cosine_lr`)."""
        frac = min(1.0, max(0.0, elapsed / self.seconds)) if math.isfinite(self.seconds) else 0.0
        return self.min_lr + (self.cosine_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def on_train_begin(self, logs=None):
        if self.cosine_lr is not None:
            # A scheduled learning rate reads back as a computed tensor, not a variable.
            current = self.model.optimizer.learning_rate
            if not hasattr(current, "assign"):
                raise ValueError(
                    "`TimeBudget(cosine_lr=...)` sets the learning rate itself; compile the model "
                    f"with a plain float learning rate, not a schedule (received {current!r})."
                )
        self._start = _now()
        self.steps = 0
        self.elapsed = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        if self.cosine_lr is not None:
            self.model.optimizer.learning_rate.assign(self.learning_rate_at(_now() - self._start))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.elapsed = _now() - self._start
        if self.elapsed > self.seconds:
            self.model.stop_training = True
