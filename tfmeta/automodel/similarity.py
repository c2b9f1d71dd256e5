"""AutoModel's similarity task: a Siamese model that scores whether two examples share a class.

`fit` trains the Siamese candidate of `few_shot` on pairs of the training split and scores its
pair accuracy on pairs of the validation split; `predict((x1, x2))` gives same-class
probabilities. Functions here take the `AutoModel` being fitted (`am`).

Example:

>>> am = tfmeta.AutoModel(task="similarity", epochs=2, steps_per_epoch=100).fit(x, y)
>>> am.predict((x[:10], x[10:20]))          # same-class probabilities   # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np

from tfmeta.automodel.few_shot import train_siamese
from tfmeta.automodel.progress import progress_line


def _pair_accuracy(model, x, y, pairs: int) -> float:
    from tfmeta.data import PairSampler

    (a, b), same = PairSampler(x, y, seed=1).sample(pairs)
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.mean((model.similarity(a, b) > 0.5) == (same > 0.5)))


def fit(am, x, y, validation_split, validation_data=None) -> None:
    """Trains the Siamese model on one split and scores pairs of the other."""
    from sklearn.model_selection import train_test_split

    stratify = y if np.bincount(y).min() >= 2 else None
    xt, xv, yt, yv = train_test_split(x, y, test_size=validation_split, random_state=am.seed or 0, stratify=stratify)
    t0 = time.time()
    steps = am.epochs * am.steps_per_epoch
    am.model_ = train_siamese(am.preprocessing_, xt, yt, am.ways, am.shots, steps, am.seed or 0)
    am.members_ = [am.model_]
    score = _pair_accuracy(am.model_, xv, yv, 512)
    am.trials_ = [{"trial": 0, "learner": "siamese", "architecture": "siamese", "score": score,
                   "seconds": time.time() - t0}]
    am.best_learner_ = am.best_architecture_ = "siamese"
    am.best_score_ = score
    am._log(progress_line(1, 1, "siamese", score, score, time.time() - am._start))


def predict(am, x, support=None) -> np.ndarray:
    """Same-class probabilities of the pairs `x = (x1, x2)`."""
    if not (isinstance(x, (tuple, list)) and len(x) == 2):
        raise ValueError("`x` must be a pair `(x1, x2)` of example arrays for task='similarity'.")
    x1, x2 = am._check_x(x[0], "x[0]"), am._check_x(x[1], "x[1]")
    if len(x1) != len(x2):
        raise ValueError(f"`x[0]` and `x[1]` must have the same length; received {len(x1)} and {len(x2)}.")
    return am.model_.similarity(x1.astype(np.float32), x2.astype(np.float32))


def evaluate(am, x, y, episodes: int | None = None) -> dict:
    """Pair accuracy on 1,024 seeded pairs of `(x, y)`."""
    y_index = np.unique(y, return_inverse=True)[1]
    return {"pair_accuracy": _pair_accuracy(am.model_, x, y_index, 1024)}


def export(am, path: str, meta: dict, version: int | None) -> str:
    """The Siamese model's export: `serving_default` (pair similarity) and `few_shot`."""
    return am.model_.export(path, metadata=meta, version=version)
