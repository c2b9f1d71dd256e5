"""The one episode evaluator: every learner, ensemble and exported model is scored here.

A *scorer* turns one batch of episodes `((support_x, support_y, query_x), query_y)`, each
with a leading task axis `T`, into `T` per-episode scores. `score_episodes` draws episodes
from any sampler (an `EpisodeSampler`, `SinusoidTasks`, the fixed `EpisodeList` of Lake's
one-shot runs: anything with `dataset(meta_batch, episodes, seed)`), scores them and reports
the mean with a 95% confidence interval. The same sampler and seed give the same episodes
whatever the batch size, so learners, their ensembles and their SavedModels are compared on
identical tasks.

What can be scored:

* a learner with `score_episode_batch(support_x, support_y, query_x, query_y) -> [T]` and a
  `score_name` (MAML scores a whole meta-batch at once, accuracy or MSE);
* any object with `few_shot_probabilities(support_x, support_y, query_x)` (one episode, no
  task axis), such as every `FewShotMixin` learner and `FewShotEnsemble`;
* a plain function `(support_x, support_y, query_x) -> [Q, N] probabilities`, such as a
  loaded SavedModel's `few_shot` signature wrapped by `tfmeta.export.few_shot_function`.

Example:

>>> sampler = EpisodeSampler(x_test, y_test, ways=5, shots=1, queries=15, seed=1234)
>>> score_episodes(learner, sampler, episodes=600, seed=1234)
{'accuracy': 0.95, 'ci95': 0.005, 'episodes': 600, 'ways': 5, 'shots': 1}
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

#: The settings of the papers' Omniglot tables: (ways, shots).
STANDARD_SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (20, 1), (20, 5))


def mean_confidence_interval(values) -> tuple[float, float]:
    """Returns `(mean, half-width of the 95% confidence interval)` (1.96 standard errors)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def iterate_episodes(sampler, episodes: int, seed: int, meta_batch: int = 1) -> Iterator[tuple]:
    """Yields `episodes` episodes of `sampler` as batches of up to `meta_batch` tasks.

    Yields `(support_x, support_y, query_x, query_y)` tensors with a leading task axis. The
    episodes are the first `episodes` of the sampler's seeded stream, whatever `meta_batch`.
    """
    batches = -(-episodes // meta_batch)
    left = episodes
    for (sx, sy, qx), qy in sampler.dataset(meta_batch=meta_batch, episodes=batches, seed=seed):
        if left < meta_batch:  # the last batch: keep only the episodes asked for
            sx, sy, qx, qy = sx[:left], sy[:left], qx[:left], qy[:left]
        left -= meta_batch
        yield sx, sy, qx, qy


def probabilities_scorer(probabilities_fn: Callable) -> Callable:
    """A scorer of per-episode accuracies from a one-episode probabilities function."""

    def score(support_x, support_y, query_x, query_y) -> np.ndarray:
        scores = []
        for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
            probs = np.asarray(probabilities_fn(sx, tf.cast(sy, tf.int32), qx))
            scores.append(float(np.mean(probs.argmax(-1) == np.asarray(qy))))
        return np.asarray(scores)

    return score


def compiled_probabilities(model: Any) -> Callable:
    """`model.few_shot_probabilities` as a `tf.function`, traced once and kept on the model.

    Stored with `object.__setattr__`, so Keras and `tf.Module` do not track it (it must not
    become part of a saved model).
    """
    fn = getattr(model, "_compiled_probabilities", None)
    if fn is None:
        fn = tf.function(model.few_shot_probabilities, reduce_retracing=True)
        object.__setattr__(model, "_compiled_probabilities", fn)
    return fn


def as_scorer(model: Any) -> tuple[Callable, str]:
    """`(scorer, score name)` for a learner, an ensemble or a probabilities function."""
    if hasattr(model, "score_episode_batch"):
        return model.score_episode_batch, getattr(model, "score_name", "accuracy")
    if hasattr(model, "few_shot_probabilities"):
        return probabilities_scorer(compiled_probabilities(model)), "accuracy"
    if callable(model):
        return probabilities_scorer(model), "accuracy"
    raise TypeError(
        "`model` must be a few-shot learner, an ensemble or a function (support_x, support_y, "
        f"query_x) -> probabilities; received {type(model).__name__}."
    )


def score_episodes(
    model: Any,
    sampler,
    episodes: int = 600,
    seed: int = 1234,
    meta_batch: int | None = None,
) -> dict:
    """Scores `model` on `episodes` episodes drawn from `sampler`: the one evaluation loop.

    Args:
        model: A learner, an ensemble or a probabilities function (see the module docstring).
        sampler: Anything with `dataset(meta_batch, episodes, seed)` yielding
            `((support_x, support_y, query_x), query_y)` with a task axis.
        episodes: Number of test episodes (600 as in the papers).
        seed: Seed of the test episodes, so models are compared on the same episodes.
        meta_batch: Episodes scored together (does not change the result). `None`: the
            model's `eval_meta_batch(sampler)` when it has one, else 1.

    Returns:
        `{score name: mean, "ci95", "episodes"}` plus `"ways"` and `"shots"` when the sampler
        has them. The score is `"accuracy"`, or `"mse"` for regression tasks.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"`episodes` must be an integer >= 1; received {episodes!r}.")
    scorer, name = as_scorer(model)
    if meta_batch is None:
        meta_batch = model.eval_meta_batch(sampler) if hasattr(model, "eval_meta_batch") else 1
    meta_batch = max(1, min(int(meta_batch), int(episodes)))
    values: list[float] = []
    for sx, sy, qx, qy in iterate_episodes(sampler, int(episodes), seed, meta_batch):
        values.extend(np.asarray(scorer(sx, sy, qx, qy), dtype=np.float64).reshape(-1).tolist())
    mean, ci = mean_confidence_interval(values)
    result = {name: mean, "ci95": ci, "episodes": len(values)}
    for key in ("ways", "shots"):
        if getattr(sampler, key, None) is not None:
            result[key] = int(getattr(sampler, key))
    return result


def episode_sampler(x, y, ways: int, shots: int, queries: int = 15, seed: int = 1234):
    """The `EpisodeSampler` every `evaluate_episodes(x, y, ways, shots, ...)` scores on."""
    from tfmeta.data.episodes import EpisodeSampler

    return EpisodeSampler(x, y, ways=ways, shots=shots, queries=queries, seed=seed)


def evaluate_on_arrays(
    model: Any,
    x,
    y,
    ways: int,
    shots: int,
    queries: int = 15,
    episodes: int = 600,
    seed: int = 1234,
) -> dict:
    """Scores `model` on seeded N-way K-shot episodes drawn from the labelled arrays `(x, y)`.

    The same `(x, y, ways, shots, queries, seed)` give the same episodes to every model.

    Returns:
        As `score_episodes`, with `"ways"` and `"shots"`.
    """
    sampler = episode_sampler(x, y, ways, shots, queries, seed)
    return score_episodes(model, sampler, episodes=episodes, seed=seed)


def score_grid(
    model: Any,
    test_sets: dict[str, tuple[Any, Any]],
    settings: Sequence[tuple[int, int]] = STANDARD_SETTINGS,
    queries: int = 15,
    episodes: int = 600,
    seed: int = 1234,
) -> dict[str, dict[str, dict]]:
    """Scores `model` on every `(ways, shots)` setting of every test set: the papers' table.

    Args:
        model: As `score_episodes`.
        test_sets: `{name: (x, y)}`, e.g. one entry per Omniglot test protocol.
        settings: `(ways, shots)` pairs; settings a test set cannot supply are skipped.
        queries, episodes, seed: As `evaluate_on_arrays` (the same episodes for every model).

    Returns:
        `{test set name: {"5w1s": result, ...}}`, each result as `score_episodes`.
    """
    table: dict[str, dict[str, dict]] = {}
    for name, (x, y) in test_sets.items():
        rows = table.setdefault(name, {})
        for ways, shots in settings:
            try:
                sampler = episode_sampler(x, y, ways, shots, queries, seed)
            except ValueError:  # too few classes or examples for this setting
                continue
            rows[f"{ways}w{shots}s"] = score_episodes(model, sampler, episodes=episodes, seed=seed)
    return table


def format_grid(table: dict[str, dict[str, dict]], key: str = "accuracy") -> str:
    """A plain-text table of `score_grid` results: one line per test set, percentages."""
    lines = []
    for name, rows in table.items():
        cells = [f"{setting} {100 * r[key]:.2f} +- {100 * r['ci95']:.2f}" for setting, r in rows.items()]
        lines.append(f"{name}: " + " | ".join(cells))
    return "\n".join(lines)


class EpisodeList:
    """A fixed list of episodes (such as Lake's one-shot runs) with a sampler's `dataset`.

    Args:
        episodes: `tfmeta.data.Episode`s (numpy arrays, no task axis), all of one shape when
            batched together (`meta_batch` > 1).
    """

    def __init__(self, episodes: Iterable):
        self.episodes = list(episodes)
        if not self.episodes:
            raise ValueError("`episodes` must hold at least one episode; received none.")
        first = self.episodes[0]
        self.ways = int(len(np.unique(first.support_y)))
        self.shots = int(len(first.support_y) // max(1, self.ways))

    def __len__(self) -> int:
        return len(self.episodes)

    def dataset(self, meta_batch: int = 1, episodes: int | None = None, seed: int | None = None):
        """A `tf.data.Dataset` of the episodes in order, `meta_batch` at a time.

        `episodes` counts batches, as in `EpisodeSampler.dataset`; `seed` is unused (the list
        is fixed). Episodes batched together must share their shapes.
        """
        del seed
        chosen = self.episodes if episodes is None else self.episodes[: episodes * meta_batch]
        first = chosen[0]

        def batches():
            for start in range(0, len(chosen), meta_batch):
                group = chosen[start : start + meta_batch]
                yield (
                    (
                        np.stack([np.asarray(e.support_x, np.float32) for e in group]),
                        np.stack([np.asarray(e.support_y, np.int32) for e in group]),
                        np.stack([np.asarray(e.query_x, np.float32) for e in group]),
                    ),
                    np.stack([np.asarray(e.query_y, np.int32) for e in group]),
                )

        def spec(example_shape, dtype):
            return tf.TensorSpec((None, None, *example_shape), dtype)

        shape = tuple(np.shape(first.support_x)[1:])
        signature = (
            (spec(shape, tf.float32), spec((), tf.int32), spec(shape, tf.float32)),
            spec((), tf.int32),
        )
        return tf.data.Dataset.from_generator(batches, output_signature=signature)


# Deprecated spellings (before tfmeta.fewshot): kept working for now.
def evaluate_few_shot(probabilities_fn: Callable, sampler, episodes: int = 600, seed: int = 1234) -> dict:
    """Deprecated: use `score_episodes(probabilities_fn, sampler, episodes, seed)`."""
    return score_episodes(probabilities_fn, sampler, episodes=episodes, seed=seed, meta_batch=1)


def evaluate_episodes(
    probabilities_fn: Callable, x, y, ways: int, shots: int, queries: int = 15,
    episodes: int = 600, seed: int = 1234,
) -> dict:
    """Deprecated: use `evaluate_on_arrays(model, x, y, ways, shots, ...)`."""
    return evaluate_on_arrays(probabilities_fn, x, y, ways, shots, queries, episodes, seed)
