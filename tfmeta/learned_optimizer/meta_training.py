"""Meta-training a learned optimizer: truncated back-propagation through unrolled optimisation.

Each trajectory draws a fresh problem from the family and optimises it with the rule for
`horizon` steps, in truncations of `unroll` steps. In a truncation the meta-loss is the sum of
the problem's losses after each of the `unroll` updates; its gradient with respect to the rule's
weights flows through the parameter updates, but not through the problem's gradients (the
paper drops those second derivatives), and Adam applies it. Parameters and LSTM states are then
carried over to the next truncation without their history.

`meta_train` shows a `keras.utils.Progbar` and, given `checkpoint_dir`, saves the rule, Adam's
state and the step count at the end of every trajectory with `tf.train.CheckpointManager`, and
resumes from the latest checkpoint when called again. The problem of trajectory `i` is
`family.sample(seed * 1_000_003 + i)`, so a resumed run sees the problems an uninterrupted one
would have.

Example:

>>> from tfmeta.learned_optimizer import CoordinatewiseLSTM, QuadraticFamily
>>> rule = CoordinatewiseLSTM()
>>> history = meta_train(rule, QuadraticFamily(), steps=4, unroll=5, horizon=10, verbose=0)
>>> len(history["meta_loss"])
4
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfmeta.learned_optimizer.update_rule import CoordinatewiseLSTM


def _problem_seed(seed: int, trajectory: int) -> int:
    return seed * 1_000_003 + trajectory


def unrolled_losses(rule: CoordinatewiseLSTM, loss_fn: Callable, theta, states, data: dict, steps: int):
    """Applies the rule `steps` times from `theta`; returns (losses `[steps]`, theta, states).

    `losses[t]` is the loss after update t + 1, on step t + 1's data; `data` holds `steps + 1`
    steps (the first one gives the first gradient). Differentiable with respect to the rule's
    weights through the parameters, not through the problem's gradients.
    """

    def loss_and_gradient(theta, t):
        step_data = {k: v[t] for k, v in data.items()}
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = loss_fn(theta, step_data)
        return loss, tf.stop_gradient(tape.gradient(loss, theta))

    _, gradient = loss_and_gradient(theta, 0)
    losses = []
    for t in range(steps):
        update, states = rule(gradient, states)
        theta = theta + update
        loss, gradient = loss_and_gradient(theta, t + 1)
        losses.append(loss)
    return tf.stack(losses), theta, states


class MetaTrainer:
    """The compiled truncation step of one rule on one family, with its Adam optimizer."""

    def __init__(self, rule: CoordinatewiseLSTM, family, unroll: int, learning_rate: float,
                 clipnorm: float | None = 1.0):
        self.rule, self.family, self.unroll = rule, family, unroll
        self.optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
        self.optimizer.build(rule.trainable_variables)

        @tf.function(reduce_retracing=True)
        def truncation(theta, states, data):
            with tf.GradientTape() as tape:
                losses, theta, states = unrolled_losses(rule, family.loss, theta, states, data, unroll)
                meta_loss = tf.reduce_sum(losses)
            gradients = tape.gradient(meta_loss, rule.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, rule.trainable_variables))
            return meta_loss, tf.stop_gradient(theta), tuple(tf.stop_gradient(s) for s in states)

        self.truncation = truncation


def meta_train(rule: CoordinatewiseLSTM, family, steps: int, unroll: int = 20, horizon: int = 100,
               learning_rate: float = 1e-3, seed: int = 0, checkpoint_dir: str | None = None,
               max_to_keep: int = 2, verbose: int = 1) -> dict:
    """Meta-trains `rule` in place on problems of `family`; returns `{"meta_loss": [...]}`.

    Args:
        rule: The `CoordinatewiseLSTM` to train (for example `LearnedOptimizer().rule`).
        family: A problem family (`QuadraticFamily`, `DigitsMLPFamily` or one with their
            `sample(seed)`, `loss(theta, data)` interface).
        steps: Total meta-training steps (Adam updates of the rule, one per truncation),
            counting those of the checkpoint resumed from; a multiple of `horizon // unroll`.
        unroll: Optimisation steps per truncation (the paper: 20).
        horizon: Optimisation steps per problem (the paper: 100); a multiple of `unroll`.
        learning_rate: Adam's learning rate on the rule's weights (its gradients are clipped
            to norm 1: the first truncations of a problem can have very large losses).
        seed: Seed of the problems and their minibatches.
        checkpoint_dir: Where to save the rule, Adam's state and the step count after every
            trajectory, and to resume from; None: no checkpoints.
        max_to_keep: Checkpoints kept.
        verbose: 1 shows a progress bar, 0 nothing.

    Returns:
        `{"meta_loss": [per-truncation mean loss], "step": total steps done, "resumed_from":
        the step of the checkpoint resumed from (0 without one)}`; the losses are of this call
        only (not of the run resumed from).
    """
    for name, value in (("steps", steps), ("unroll", unroll), ("horizon", horizon)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    if horizon % unroll:
        raise ValueError(f"`horizon` must be a multiple of `unroll` ({unroll}); received {horizon!r}.")
    per_trajectory = horizon // unroll
    if steps % per_trajectory:
        raise ValueError(f"`steps` must be a multiple of horizon // unroll = {per_trajectory}; received {steps!r}.")
    trainer = MetaTrainer(rule, family, unroll, learning_rate)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="meta_step")
    manager = None
    if checkpoint_dir is not None:
        checkpoint = tf.train.Checkpoint(rule=rule, optimizer=trainer.optimizer, step=step)
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=max_to_keep)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start = int(step.numpy())
    progress = keras.utils.Progbar(steps, stateful_metrics=["meta_loss"], verbose=verbose) if verbose else None
    if progress is not None:
        progress.update(start)
    losses = []
    while int(step.numpy()) < steps:
        trajectory = int(step.numpy()) // per_trajectory
        problem = family.sample(_problem_seed(seed, trajectory))
        rng = np.random.default_rng(_problem_seed(seed, trajectory))
        theta = tf.constant(problem.theta0)
        states = rule.initial_states(int(theta.shape[0]))
        for _ in range(per_trajectory):
            data = {k: tf.constant(v) for k, v in problem.step_data(unroll + 1, rng).items()}
            meta_loss, theta, states = trainer.truncation(theta, states, data)
            mean_loss = float(meta_loss) / unroll
            losses.append(mean_loss)
            step.assign_add(1)
            if progress is not None:
                progress.update(int(step.numpy()), [("meta_loss", mean_loss)])
        if manager is not None:
            manager.save(checkpoint_number=int(step.numpy()))
    return {"meta_loss": losses, "step": int(step.numpy()), "resumed_from": start}
