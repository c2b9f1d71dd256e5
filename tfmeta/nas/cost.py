"""Cost-aware rewards (MnasNet): trade accuracy against parameters, FLOPs or latency.

MnasNet (Tan et al. 2019) rewards an architecture with `acc * (cost / target) ** w`: with
`w < 0` a cheaper model earns more for the same accuracy (the *soft* form, `w = -0.07` in the
paper). The *hard* constraint form uses `w = 0` within the budget (`cost <= target`) and a
steep `w` (`-1` here) beyond it, so any architecture over budget loses to good ones within.

Every strategy maximises a reward, so a cost-aware search is any strategy fed these rewards:

- tabular: `run_tabular_search(..., cost_reward={"cost": "flops", "target": "median", "hard": True})`;
- with an `evaluate` function: return `reward(accuracy, cost)`;
- training children: add `CostAwareMetric(reward, cost="params")` to the fit callbacks and
  search with `objective=keras_tuner.Objective("cost_aware_val_accuracy", "max")`.

Example:

>>> reward = CostAwareReward(target=1e6, weight=-0.07)
>>> round(reward(0.9, 2e6), 4)            # twice the target: 0.9 * 2 ** -0.07
0.8574
>>> CostAwareReward(target=1e6, hard=True)(0.9, 5e5)
0.9
"""

from __future__ import annotations

import time
from typing import Callable

import keras
import numpy as np


def mnas_reward(accuracy: float, cost: float, target: float, weight: float = -0.07) -> float:
    """MnasNet's reward `accuracy * (cost / target) ** weight`."""
    if not target > 0:
        raise ValueError(f"`target` must be a positive cost; received {target!r}.")
    if not cost > 0:
        raise ValueError(f"`cost` must be positive; received {cost!r}.")
    return float(accuracy) * (float(cost) / float(target)) ** float(weight)


class CostAwareReward:
    """`reward(accuracy, cost)`: MnasNet's soft trade-off or its hard budget.

    Args:
        target: The cost target T (or the budget, with `hard=True`).
        weight: w of the soft reward (negative: cheaper is better). Ignored with `hard=True`.
        hard: Hard constraint: the accuracy itself within the budget, `accuracy * (cost /
            target) ** over_budget_weight` beyond it.
        over_budget_weight: The exponent beyond the budget in the hard form.

    Example:

    >>> r = CostAwareReward(target=100, hard=True)
    >>> r(0.9, 100), r(0.9, 200)
    (0.9, 0.45)
    """

    def __init__(self, target: float, weight: float = -0.07, hard: bool = False, over_budget_weight: float = -1.0):
        if not isinstance(target, (int, float, np.number)) or not target > 0:
            raise ValueError(f"`target` must be a positive number; received {target!r}.")
        if weight > 0 or over_budget_weight > 0:
            raise ValueError(f"`weight` and `over_budget_weight` must be <= 0; received {weight!r}, "
                             f"{over_budget_weight!r}.")
        self.target = float(target)
        self.weight = float(weight)
        self.hard = bool(hard)
        self.over_budget_weight = float(over_budget_weight)

    def within_budget(self, cost: float) -> bool:
        return float(cost) <= self.target

    def __call__(self, accuracy: float, cost: float) -> float:
        if self.hard:
            weight = 0.0 if self.within_budget(cost) else self.over_budget_weight
        else:
            weight = self.weight
        return mnas_reward(accuracy, cost, self.target, weight)

    def get_config(self) -> dict:
        return {"target": self.target, "weight": self.weight, "hard": self.hard,
                "over_budget_weight": self.over_budget_weight}


def count_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass on a single example (TF's profiler).

    A multiply-add counts as 2 operations, as TensorFlow's profiler counts them.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    shape = model.inputs[0].shape if getattr(model, "inputs", None) else None
    if shape is None:
        raise ValueError("`model` must be built with a known input shape to count its FLOPs.")
    spec = tf.TensorSpec([1, *shape[1:]], model.inputs[0].dtype)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen, _ = convert_variables_to_constants_v2_as_graph(function)
    options = tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=options)
    return int(info.total_float_ops)


def measure_latency(model: keras.Model, batch_size: int = 1, repeats: int = 10) -> float:
    """Median seconds of one forward pass on a batch of zeros (after one warm-up call)."""
    shape = model.inputs[0].shape
    x = np.zeros((batch_size, *shape[1:]), dtype="float32")
    model(x, training=False)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x, training=False)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


COSTS: dict[str, Callable[[keras.Model], float]] = {
    "params": lambda model: float(model.count_params()),
    "flops": lambda model: float(count_flops(model)),
    "latency": measure_latency,
}


class CostAwareMetric(keras.callbacks.Callback):
    """Adds `cost_aware_<monitor>` (and `cost`) to the epoch logs of a trained child.

    The cost is measured once, when training begins; the metric is `reward(logs[monitor],
    cost)`. Search with `objective=keras_tuner.Objective("cost_aware_val_accuracy", "max")`
    so every strategy optimises the trade-off.

    Args:
        reward: A `CostAwareReward` (or any `f(accuracy, cost) -> reward`).
        cost: `"params"`, `"flops"`, `"latency"` or a function `model -> cost`.
        monitor: The accuracy entry of the logs.

    Example:

    >>> callback = CostAwareMetric(CostAwareReward(target=5e4), cost="params")
    >>> search.search(x, y, validation_data=(xv, yv), callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(self, reward: Callable[[float, float], float], cost: str | Callable = "params",
                 monitor: str = "val_accuracy"):
        super().__init__()
        if isinstance(cost, str) and cost not in COSTS:
            raise ValueError(f"`cost` must be one of {sorted(COSTS)} or a function; received {cost!r}.")
        self.reward = reward
        self.cost_fn = COSTS[cost] if isinstance(cost, str) else cost
        self.monitor = monitor
        self.cost: float | None = None

    def on_train_begin(self, logs=None):
        self.cost = float(self.cost_fn(self.model))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self.monitor not in logs:
            return
        logs["cost"] = self.cost
        logs[f"cost_aware_{self.monitor}"] = float(self.reward(float(logs[self.monitor]), self.cost))
