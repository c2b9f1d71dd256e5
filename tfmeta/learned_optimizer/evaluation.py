"""Loss curves of any Keras optimizer on a problem, and a learning-rate grid for baselines.

Learned and hand-designed optimizers are compared by the same code: a Keras optimizer (a
`LearnedOptimizer` or `keras.optimizers.Adam(...)`, ...) minimises a problem's loss over a
`keras.Variable` holding its flat parameters, on the same minibatches, and the curve records
the loss on the problem's `eval_data` before the first and after every step.

Example:

>>> import keras
>>> from tfmeta.learned_optimizer import QuadraticFamily
>>> family = QuadraticFamily()
>>> curve = optimization_curve(keras.optimizers.Adam(0.1), family, family.sample(0), steps=50)
>>> curve.shape, bool(curve[-1] < curve[0])
((51,), True)
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf


def optimization_curve(optimizer: keras.optimizers.Optimizer, family, problem, steps: int,
                       seed: int = 0) -> np.ndarray:
    """Losses `[steps + 1]` of `problem` optimised by a fresh `optimizer` for `steps` steps.

    Args:
        optimizer: An unused Keras optimizer (it is built on the problem's parameters).
        family: The problem's family (its `loss(theta, data)`).
        problem: An `Optimizee` from `family.sample(...)`.
        steps: Optimisation steps.
        seed: Seed of the minibatches (the same seed gives every optimizer the same batches).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int; received {steps!r}.")
    theta = keras.Variable(problem.theta0, name="theta")
    data = problem.step_data(steps, np.random.default_rng(seed))
    eval_data = {k: tf.constant(v) for k, v in problem.eval_data.items()}

    @tf.function
    def step(step_data):
        with tf.GradientTape() as tape:
            loss = family.loss(theta.value, step_data)
        optimizer.apply_gradients([(tape.gradient(loss, theta.value), theta)])
        return family.loss(theta.value, eval_data)

    losses = [float(family.loss(theta.value, eval_data))]
    for t in range(steps):
        losses.append(float(step({k: tf.constant(v[t]) for k, v in data.items()})))
    return np.asarray(losses)


def mean_curve(make_optimizer: Callable[[], keras.optimizers.Optimizer], family, problems: Sequence,
               steps: int, seed: int = 0) -> np.ndarray:
    """The mean over `problems` of `optimization_curve`, a fresh optimizer for each."""
    return np.mean([optimization_curve(make_optimizer(), family, p, steps, seed + i)
                    for i, p in enumerate(problems)], axis=0)


def best_learning_rate(optimizer_class: type, family, problems: Sequence, steps: int,
                       grid: Sequence[float] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0),
                       seed: int = 0) -> tuple[float, dict]:
    """The learning rate of `grid` with the lowest mean final loss on `problems` after `steps`.

    Returns `(best, {learning_rate: mean final loss})`; a diverging rate scores infinity.
    """
    scores = {}
    for lr in grid:
        final = mean_curve(lambda: optimizer_class(learning_rate=lr), family, problems, steps, seed)[-1]
        scores[lr] = float(final) if np.isfinite(final) else float("inf")
    return min(scores, key=scores.get), scores
