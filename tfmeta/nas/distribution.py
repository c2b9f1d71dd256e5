"""Where a search's models are built and trained: a `tf.distribute` strategy, and which
process of a chief/worker search this is.

- `check_strategy(value)`: `None` or a `tf.distribute.Strategy`, else a clear error.
- `strategy_scope(strategy)`: `strategy.scope()`, or a no-op for `None` (KerasTuner's own
  `maybe_distribute` is private, so this two-line helper is ours).
- `search_role()`: `"local"`, `"chief"` or `"worker"`, read from KerasTuner's environment
  variables (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`).

A search given `distribution_strategy` passes it to KerasTuner's `Tuner`, which builds every
trial's model in its scope; Keras's `fit` then splits each batch across the replicas. The
final refit of `AutoModel` is tfmeta's own code and builds, compiles and fits inside the same
scope.

Example:

>>> strategy = tf.distribute.MirroredStrategy()
>>> with strategy_scope(strategy):
...     model = build_model(...)                                   # doctest: +SKIP
>>> search_role()                                                  # no KerasTuner variables set
'local'
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf

ROLES = ("local", "chief", "worker")


def check_strategy(value, name: str = "distribution_strategy"):
    """Returns `value` if it is None or a `tf.distribute.Strategy`; raises ValueError otherwise."""
    if value is None or isinstance(value, tf.distribute.Strategy):
        return value
    raise ValueError(f"`{name}` must be None or a tf.distribute.Strategy (e.g. "
                     f"tf.distribute.MirroredStrategy()); received {type(value).__name__}.")


def strategy_scope(strategy):
    """`strategy.scope()`, or a context that does nothing when `strategy` is None."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def search_role() -> str:
    """`"chief"` (serves the oracle), `"worker"` (runs trials) or `"local"` (does both)."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"
