"""Shared input checks for tfmeta.data, with error messages that name the argument.

Every check raises `ValueError` (or `TypeError`) whose message names the argument, what was
expected and what was received, so a user can fix the call without reading the source.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_labelled_arrays(x: Any, y: Any, *, x_name: str = "x", y_name: str = "y"):
    """Validates a labelled array set and returns `(x float32, y int64)` numpy arrays.

    Args:
        x: Array-like of examples, first axis indexes examples.
        y: Array-like of integer labels (one per example), or 1-D array of any hashable labels.
        x_name: Name of the `x` argument, used in error messages.
        y_name: Name of the `y` argument, used in error messages.

    Returns:
        `(x, y)` with `x` as float32 and `y` as a 1-D int64 array.

    Raises:
        ValueError: On mismatched lengths, empty input, non-finite values or non-integer labels.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"`{x_name}` must hold at least one example; received shape {x.shape}.")
    if y.ndim != 1:
        raise ValueError(
            f"`{y_name}` must be a 1-D array of labels; received shape {y.shape}."
        )
    if len(x) != len(y):
        raise ValueError(
            f"`{x_name}` and `{y_name}` must have the same length; received "
            f"len({x_name})={len(x)} and len({y_name})={len(y)}."
        )
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise TypeError(f"`{x_name}` must be numeric; received dtype {x.dtype}.")
    check_float32_range(x, x_name)
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"`{x_name}` must be finite; found {bad} NaN or infinite values.")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"`{y_name}` must hold integer class ids; received dtype {y.dtype}. "
            "Encode string labels first (for example with sklearn.preprocessing.LabelEncoder)."
        )
    return x, y.astype(np.int64, copy=False)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(values: Any, name: str) -> None:
    """Raises a `ValueError` when finite values of `values` overflow float32.

    Models compute in float32: a float64 value past 3.4e38 (1e300, say) passes a finiteness
    check, becomes infinite when cast, and turns every statistic and weight it touches into
    NaN. Non-float arrays pass (no integer type reaches float32's limit).

    Args:
        values: Array-like of numbers.
        name: The argument's name, used in the message (e.g. `"x"` or `"x['amount']"`).
    """
    values = np.asarray(values)
    if values.dtype.kind != "f" or values.dtype.itemsize <= 4 or values.size == 0:
        return
    with np.errstate(invalid="ignore"):
        magnitude = np.where(np.isfinite(values), np.abs(values), 0.0)
    if magnitude.max() > FLOAT32_MAX:
        count = int(np.count_nonzero(magnitude > FLOAT32_MAX))
        raise ValueError(
            f"`{name}` holds {count} values whose magnitude overflows float32 (largest |value| "
            f"{float(magnitude.max()):.3g}; float32 holds at most {FLOAT32_MAX:.3g}): rescale them "
            "(divide by a constant, or take a logarithm)."
        )


def class_counts(y: np.ndarray) -> dict[int, int]:
    """Returns `{label: number of examples}` for a 1-D label array."""
    labels, counts = np.unique(y, return_counts=True)
    return {int(k): int(v) for k, v in zip(labels, counts)}


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Checks that `value` is an integer >= `minimum` and returns it as `int`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {value!r}.")
    return int(value)


def check_episode_request(
    y: np.ndarray, ways: int, shots: int, queries: int, *, y_name: str = "y"
) -> np.ndarray:
    """Checks that an N-way K-shot episode with Q queries per class can be drawn from `y`.

    Only classes with at least `shots + queries` examples are eligible; the request fails if
    fewer than `ways` classes are eligible.

    Args:
        y: 1-D integer labels.
        ways: Classes per episode (N).
        shots: Support examples per class (K).
        queries: Query examples per class (Q).
        y_name: Name of the label argument, used in error messages.

    Returns:
        The sorted array of eligible class labels.

    Raises:
        ValueError: Naming the argument at fault, what the data holds and what was asked.
    """
    ways = check_positive_int(ways, "ways", 1)
    shots = check_positive_int(shots, "shots", 1)
    queries = check_positive_int(queries, "queries", 0)
    counts = class_counts(y)
    if len(counts) < ways:
        raise ValueError(
            f"`ways`={ways} asks for more classes than the data holds: `{y_name}` has "
            f"{len(counts)} classes."
        )
    need = shots + queries
    eligible = np.array(sorted(k for k, v in counts.items() if v >= need), dtype=np.int64)
    if len(eligible) < ways:
        smallest = min(counts.values())
        raise ValueError(
            f"Too few examples per class for a {ways}-way {shots}-shot episode with "
            f"{queries} queries per class: each class needs `shots` + `queries` = {need} "
            f"examples, but only {len(eligible)} of the {len(counts)} classes in `{y_name}` "
            f"have that many (smallest class size found: {smallest}). Lower `shots` or "
            "`queries`, or `ways`."
        )
    return eligible


def check_support_set(support_x: Any, support_y: Any, query_x: Any | None = None):
    """Validates a few-shot support set (and optional queries) and returns numpy arrays.

    Support labels must be the integers 0..N-1 with every class present, as in the `few_shot`
    SavedModel signature.

    Returns:
        `(support_x float32, support_y int32, query_x float32 or None, ways)`.
    """
    support_x, support_y = as_labelled_arrays(
        support_x, support_y, x_name="support_x", y_name="support_y"
    )
    labels = np.unique(support_y)
    ways = int(labels.max()) + 1 if len(labels) else 0
    if labels.min() < 0 or len(labels) != ways:
        missing = sorted(set(range(max(ways, 0))) - set(labels.tolist()))
        raise ValueError(
            "`support_y` must hold every class id 0..N-1 (N = number of classes); received "
            f"labels {labels.tolist()}" + (f", missing {missing}" if missing else "") + "."
        )
    if ways < 2:
        raise ValueError(f"`support_y` must hold at least 2 classes; received {ways}.")
    if query_x is not None:
        check_float32_range(query_x, "query_x")
        query_x = np.asarray(query_x, dtype=np.float32)
        if query_x.shape[1:] != support_x.shape[1:]:
            raise ValueError(
                "`query_x` examples must have the shape of `support_x` examples; received "
                f"{query_x.shape[1:]} and {support_x.shape[1:]}."
            )
        if not np.all(np.isfinite(query_x)):
            raise ValueError("`query_x` must be finite; found NaN or infinite values.")
    return support_x, support_y.astype(np.int32), query_x, ways
