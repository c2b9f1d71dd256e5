"""`ArchitecturePredictor`: a surrogate that predicts an architecture's score from its decisions.

PNAS (Liu et al. 2018) ranks candidate architectures with a predictor trained on every
architecture evaluated so far, and spends real evaluations only on the candidates it ranks
highest. This predictor is an ensemble of small MLPs over the one-hot encoding of the
decisions; the ensemble's spread is its uncertainty (used for exploration by
`PredictorStrategy`).

The MLPs are scikit-learn's `MLPRegressor` (L-BFGS, a few hundred iterations): the
training sets are tiny (tens to hundreds of architectures) and the predictor is refitted
after every new result, where a Keras `fit` would spend more time in graph and callback
overhead than in training. Each fit is seeded from `(seed, number of observations)`, so a
predictor is a pure function of the seed and the history, and a resumed search refits exactly
the predictor it had before it was interrupted (no weights need to be stored).

Example:

>>> from tfmeta.nas.space import MacroSpace
>>> space = MacroSpace(num_layers=3)
>>> archs = list(space.enumerate())
>>> scores = [sum(space.encode(a)) for a in archs]           # deeper = better, say
>>> p = ArchitecturePredictor(space, seed=0).fit(archs[:20], scores[:20])
>>> mean, std = p.predict(archs[20:])
>>> mean.shape
(7,)
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from tfmeta.nas.space import Architecture, SearchSpace


def one_hot(space: SearchSpace, indices: Sequence[Sequence[int]]) -> np.ndarray:
    """`[N, sum(num_choices)]` one-hot encoding of choice indices (one block per decision)."""
    indices = np.asarray(indices, dtype=np.int64).reshape(-1, len(space))
    offsets = np.concatenate([[0], np.cumsum(space.num_choices)[:-1]])
    out = np.zeros((len(indices), int(sum(space.num_choices))), dtype=np.float32)
    rows = np.repeat(np.arange(len(indices)), len(space))
    out[rows, (indices + offsets).ravel()] = 1.0
    return out


class ArchitecturePredictor:
    """An ensemble of small MLPs: architecture encoding -> predicted score (mean and spread).

    Args:
        space: The search space whose architectures are predicted.
        ensemble_size: Number of MLPs (each on its own bootstrap of the data and its own
            initialisation).
        hidden_units: Width of the MLPs' one hidden layer... or a tuple of widths.
        l2: L2 weight penalty (`MLPRegressor(alpha=...)`).
        max_iter: L-BFGS iterations per fit.
        seed: Seed of the initialisations and bootstraps.

    Example:

    >>> from tfmeta.nas.space import MacroSpace
    >>> ArchitecturePredictor(MacroSpace(), ensemble_size=3).ensemble_size
    3
    """

    def __init__(self, space: SearchSpace, ensemble_size: int = 5, hidden_units: int | tuple = 32,
                 l2: float = 1e-3, max_iter: int = 200, seed: int = 0):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"`space` must be a SearchSpace; received {type(space).__name__}.")
        if not isinstance(ensemble_size, int) or ensemble_size < 1:
            raise ValueError(f"`ensemble_size` must be a positive int; received {ensemble_size!r}.")
        self.space = space
        self.ensemble_size = ensemble_size
        self.hidden_units = (hidden_units,) if isinstance(hidden_units, int) else tuple(hidden_units)
        self.l2 = float(l2)
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        self.models: list = []
        self._y_mean, self._y_std = 0.0, 1.0

    def _encode(self, archs) -> np.ndarray:
        rows = [self.space.encode(a) if isinstance(a, Architecture) else list(a) for a in archs]
        return one_hot(self.space, rows)

    def fit(self, archs: Sequence, scores: Sequence[float]) -> "ArchitecturePredictor":
        """Fits the ensemble on architectures (or their choice indices) and their scores."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor
        from threadpoolctl import threadpool_limits

        x = self._encode(archs)
        y = np.asarray(scores, dtype=np.float64)
        if len(x) != len(y) or len(y) < 2:
            raise ValueError(f"`archs` and `scores` must have the same length >= 2; received {len(x)} and {len(y)}.")
        self._y_mean, self._y_std = float(y.mean()), float(y.std()) or 1.0
        z = (y - self._y_mean) / self._y_std
        rng = np.random.default_rng([self.seed, len(y)])
        self.models = []
        for m in range(self.ensemble_size):
            rows = rng.integers(len(y), size=len(y)) if self.ensemble_size > 1 else np.arange(len(y))
            model = MLPRegressor(hidden_layer_sizes=self.hidden_units, alpha=self.l2, solver="lbfgs",
                                 max_iter=self.max_iter, random_state=int(rng.integers(2**31)))
            # One BLAS thread: matrices this small only lose time to thread hand-offs.
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[rows], z[rows])
            self.models.append(model)
        return self

    def predict(self, archs: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """`(mean, std)` of the ensemble's predictions, in the units of the fitted scores."""
        from threadpoolctl import threadpool_limits

        if not self.models:
            raise ValueError("The predictor is not fitted; call `fit(archs, scores)` first.")
        x = self._encode(archs)
        with threadpool_limits(1):
            preds = np.stack([m.predict(x) for m in self.models]) * self._y_std + self._y_mean
        return preds.mean(axis=0), preds.std(axis=0)
