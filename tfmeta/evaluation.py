"""Few-shot evaluation shared by every learner: mean accuracy with a 95% confidence interval."""

from __future__ import annotations

from typing import Callable

import numpy as np


def mean_confidence_interval(values) -> tuple[float, float]:
    """Returns `(mean, half-width of the 95% confidence interval)` (1.96 standard errors)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def evaluate_few_shot(
    probabilities_fn: Callable,
    sampler,
    episodes: int = 600,
    seed: int = 1234,
) -> dict:
    """Scores a few-shot classifier on `episodes` episodes drawn from `sampler`.

    Args:
        probabilities_fn: `(support_x, support_y, query_x) -> [Q, N]` class probabilities for
            one episode (no task axis), e.g. a learner's `few_shot_probabilities`.
        sampler: A `tfmeta.data.EpisodeSampler` over the test classes.
        episodes: Number of test episodes (600 as in the papers).
        seed: Seed of the test episodes, so learners are compared on the same episodes.

    Returns:
        `{"accuracy", "ci95", "episodes", "ways", "shots"}`.
    """
    accs = []
    for (sx, sy, qx), qy in sampler.dataset(meta_batch=1, episodes=episodes, seed=seed):
        probs = np.asarray(probabilities_fn(sx[0], sy[0], qx[0]))
        accs.append(float(np.mean(probs.argmax(-1) == qy[0].numpy())))
    acc, ci = mean_confidence_interval(accs)
    return {
        "accuracy": acc,
        "ci95": ci,
        "episodes": len(accs),
        "ways": sampler.ways,
        "shots": sampler.shots,
    }


def evaluate_episodes(
    probabilities_fn: Callable,
    x,
    y,
    ways: int,
    shots: int,
    queries: int = 15,
    episodes: int = 600,
    seed: int = 1234,
) -> dict:
    """Scores `probabilities_fn` on seeded N-way K-shot episodes drawn from `(x, y)`.

    The same `(x, y, ways, shots, queries, seed)` give the same episodes to every learner, so
    learners (and ensembles of them) are compared on identical tasks.

    Returns:
        As `evaluate_few_shot`.
    """
    from tfmeta.data.episodes import EpisodeSampler

    sampler = EpisodeSampler(x, y, ways=ways, shots=shots, queries=queries, seed=seed)
    return evaluate_few_shot(probabilities_fn, sampler, episodes=episodes, seed=seed)
