"""Corrupted training sets for robustness experiments: label noise, class imbalance, a clean subset.

Learning to reweight examples (`tfmeta.ReweightedModel`) is measured on a training set whose
labels are partly wrong or whose classes are unequally represented, with a small trusted,
balanced subset set aside. These make such sets, seeded.

Example:

>>> clean, rest = clean_subset(y, per_class=10, seed=0)     # indices
>>> noisy_y, flipped = symmetric_label_noise(y[rest], rate=0.4, seed=0)
>>> keep = imbalanced_indices(y[rest], minority=(5, 6, 7, 8, 9), ratio=10, seed=0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def clean_subset(y: np.ndarray, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(clean indices, remaining indices)`: `per_class` examples of every class, drawn at random."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    if per_class < 1 or counts.min() <= per_class:
        raise ValueError(f"`per_class` must be >= 1 and below the smallest class ({counts.min()} examples); "
                         f"received per_class={per_class!r}.")
    clean = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes])
    return np.sort(clean), np.setdiff1d(np.arange(len(y)), clean)


def symmetric_label_noise(y: np.ndarray, rate: float, seed: int = 0,
                          num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`(noisy labels, flipped mask)`: each label replaced with probability `rate` by one of the
    *other* classes, uniformly (symmetric noise)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`rate` must be in [0, 1); received {rate!r}.")
    y = np.asarray(y).astype(np.int64)
    num_classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(y)) < rate
    shift = rng.integers(1, num_classes, len(y))  # never 0: a flipped label is always wrong
    return np.where(flipped, (y + shift) % num_classes, y), flipped


def imbalanced_indices(y: np.ndarray, minority: Sequence[int], ratio: float, seed: int = 0) -> np.ndarray:
    """Indices keeping every example of the other classes and `1/ratio` of each `minority` class."""
    if not ratio >= 1:
        raise ValueError(f"`ratio` must be >= 1; received {ratio!r}.")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if c in minority:
            members = rng.choice(members, max(1, int(round(len(members) / ratio))), replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))
