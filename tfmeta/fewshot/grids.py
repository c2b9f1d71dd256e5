"""The papers' N-way K-shot tables: every setting scored with the query count it is known by.

`tfmeta.fewshot.evaluation.score_grid` scores a grid of settings with one query count. The
Omniglot tables (Vinyals et al. 2016; Snell et al. 2017; Finn et al. 2017) use two: a
character has 20 drawings, so 5-way test episodes ask 15 queries per class and 20-way
episodes 5. `score_settings` scores each setting with its own count (`queries_per_class`) on the
same seeded episodes for every model, so rows of one table compare learners on identical
tasks.

Example:

>>> split = tfmeta.data.omniglot_splits.load_omniglot_split()
>>> table = score_settings(learner, split.test_arrays())   # 600 episodes per setting
>>> print(format_grid(table))
characters: 5w1s 93.70 +- 0.55 | 5w5s ... | 20w1s ... | 20w5s ...
"""

from __future__ import annotations

from typing import Any, Sequence

from tfmeta.fewshot.evaluation import STANDARD_SETTINGS, format_grid, score_grid

__all__ = ["STANDARD_SETTINGS", "format_grid", "score_settings", "queries_per_class"]


def queries_per_class(ways: int, shots: int, examples_per_class: int = 20) -> int:
    """Queries per class of a test episode: 15 up to 5 ways, 5 above, within the class size.

    Raises:
        ValueError: If `shots` leaves no example of a class to query.
    """
    if shots >= examples_per_class:
        raise ValueError(
            f"`shots` must be below `examples_per_class` ({examples_per_class}) to leave "
            f"queries; received shots={shots}."
        )
    return min(15 if ways <= 5 else 5, examples_per_class - shots)


def score_settings(
    model: Any,
    test_sets: dict[str, tuple[Any, Any]],
    settings: Sequence[tuple[int, int]] = STANDARD_SETTINGS,
    episodes: int = 600,
    seed: int = 1234,
    queries: int | None = None,
    label: str | None = None,
) -> dict[str, dict[str, dict]]:
    """Scores `model` on every setting of every test set, each with its query count.

    Args:
        model: A learner, an ensemble or a probabilities function
            (`tfmeta.fewshot.evaluation.score_episodes`).
        test_sets: `{name: (x, y)}`, e.g. `OmniglotSplit.test_arrays()`.
        settings: `(ways, shots)` pairs, scored in this order.
        episodes: Test episodes per setting.
        seed: Seed of the test episodes (the same episodes for every model).
        queries: Queries per class for every setting; `None`: `queries_per_class(ways, shots)`.
        label: When given, each result is printed as it comes, prefixed with it.

    Returns:
        `{test set name: {"5w1s": result, ...}}` as `score_grid`, each result with its
        `"queries"`.
    """
    table: dict[str, dict[str, dict]] = {name: {} for name in test_sets}
    for ways, shots in settings:
        count = queries_per_class(ways, shots) if queries is None else queries
        part = score_grid(model, test_sets, [(ways, shots)], queries=count, episodes=episodes, seed=seed)
        for name, rows in part.items():
            for setting, result in rows.items():
                table[name][setting] = {**result, "queries": count}
                if label is not None:
                    print(f"{label}{format_grid({name: {setting: result}})}", flush=True)
    return table
