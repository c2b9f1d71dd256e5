"""Meta-features: a data set described by a few numbers, to find similar past data sets.

Warm-started AutoML (Feurer et al. 2015, auto-sklearn) starts a search on a new data set from
the best configurations found on the most similar past data sets, "similar" being a distance
between meta-features: simple statistics of the data (rows, columns, classes, class entropy,
the fraction of categorical columns and of missing values) and *landmarkers*, the
cross-validated accuracy of cheap learners (a one-nearest-neighbour classifier and a decision
stump, from scikit-learn) on a small sample.

`describe(x, y, task)` takes the data as `AutoModel.fit` does: numeric arrays (images are
flattened), a pandas DataFrame or dict of columns, the path of a CSV file (only its first
`sample_size` rows are read) with `y` the name of its target column, a list of texts
(featurised for the landmarkers with scikit-learn's `HashingVectorizer`), or a folder of images
with one sub-folder per class (`y` None; a sample of `sample_size` images is read small).

Example:

>>> from sklearn.datasets import load_digits
>>> digits = load_digits()
>>> features = describe(digits.data, digits.target, "classification")
>>> features["classes"], round(features["landmark_1nn"], 2)
(10.0, 0.97)
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

#: The meta-features, in the order distances use them.
NAMES = ("log_rows", "log_columns", "classes", "class_entropy", "fraction_categorical",
         "fraction_missing", "landmark_1nn", "landmark_stump")


def _table_sample(x, y, sample_size: int, seed: int):
    """`(features [n, d] float, target [n], categorical fraction, missing fraction, rows, columns)`."""
    import pandas as pd

    rows = None
    if isinstance(x, (str, os.PathLike)):
        with open(x, "rb") as handle:
            rows = max(sum(1 for _ in handle) - 1, 0)
        frame = pd.read_csv(x, nrows=sample_size)
    else:
        frame = pd.DataFrame(x)
    if isinstance(y, str):
        if y not in frame.columns:
            raise ValueError(f"`y` must name a column of the table; received y={y!r}, columns {list(frame.columns)}.")
        target, frame = frame[y].to_numpy(), frame.drop(columns=[y])
    else:
        target = np.asarray(y)[: len(frame)]
    rows = len(frame) if rows is None else rows
    if len(frame) > sample_size:
        frame = frame.sample(sample_size, random_state=seed)
        target = target[frame.index.to_numpy()]
    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    missing = float(frame.isna().to_numpy().mean()) if frame.size else 0.0
    encoded = frame.copy()
    for column in frame.columns:  # codes for categories, medians for missing numbers: enough for a landmark
        if column in categorical:
            encoded[column] = pd.factorize(frame[column].astype(str))[0]
        else:
            encoded[column] = frame[column].fillna(frame[column].median())
    features = encoded.to_numpy(dtype="float64") if frame.shape[1] else np.zeros((len(frame), 1))
    columns = frame.shape[1]
    return np.nan_to_num(features), target, len(categorical) / max(columns, 1), missing, rows, columns


def _text_sample(x, y, sample_size: int, seed: int):
    from sklearn.feature_extraction.text import HashingVectorizer

    texts = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in x]
    rows, target = len(texts), np.asarray(y)
    missing = float(np.mean([t == "" for t in texts])) if texts else 0.0
    take = np.random.default_rng(seed).permutation(rows)[:sample_size]
    features = HashingVectorizer(n_features=2**12, alternate_sign=False).transform([texts[i] for i in take])
    return features, target[take], 0.0, missing, rows, 1


def _array_sample(x, y, sample_size: int, seed: int):
    x = np.asarray(x)
    rows = len(x)
    flat = x.reshape(rows, -1).astype("float64")
    missing = float(np.isnan(flat).mean()) if flat.size else 0.0
    take = np.random.default_rng(seed).permutation(rows)[:sample_size]
    return np.nan_to_num(flat[take]), np.asarray(y)[take], 0.0, missing, rows, flat.shape[1]


#: Side images of a folder are read at for the meta-features (landmarkers on their pixels).
FOLDER_SIDE = 16


def _folder_sample(path, sample_size: int, seed: int):
    """A seeded sample of an image folder's images (`FOLDER_SIDE` square, flattened) and labels;
    its columns are the pixels of the folder's typical image size."""
    from tfmeta.data.image_folders import ImageFolder

    folder = ImageFolder(path, load_size=(FOLDER_SIDE, FOLDER_SIDE))
    take = np.sort(np.random.default_rng(seed).permutation(len(folder))[:sample_size])
    images, labels = folder.read(take)
    columns = int(np.prod(folder.typical_size)) * folder.channels
    return images.reshape(len(images), -1).astype("float64"), labels, 0.0, 0.0, len(folder), columns


def _landmarks(features, target, classification: bool, seed: int) -> tuple[float, float]:
    """3-fold cross-validated accuracy (classification) or R^2 (regression) of 1-NN and a stump."""
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if classification:
        _, counts = np.unique(target, return_counts=True)
        if len(counts) < 2 or counts.min() < 3:
            return 0.0, 0.0
        folds = StratifiedKFold(3, shuffle=True, random_state=seed)
        learners = (KNeighborsClassifier(1), DecisionTreeClassifier(max_depth=1, random_state=seed))
    else:
        if len(target) < 6:
            return 0.0, 0.0
        folds = KFold(3, shuffle=True, random_state=seed)
        learners = (KNeighborsRegressor(1), DecisionTreeRegressor(max_depth=1, random_state=seed))
    return tuple(float(np.mean(cross_val_score(m, features, target, cv=folds))) for m in learners)


def describe(x: Any, y: Any, task: str = "classification", sample_size: int = 500, seed: int = 0) -> dict:
    """The meta-features of a data set, `{name: float}` for every name in `NAMES`.

    Args:
        x: Numeric arrays `[N, ...]`, a DataFrame / dict of columns / CSV path, 1-D texts, or
            an image folder.
        y: The targets, or (a table) the name of its target column, or None (an image folder).
        task: `"classification"` or `"regression"` (no classes; landmarkers score R^2).
        sample_size: Rows the landmarkers (and a CSV read) use at most.
        seed: Seed of the sample and of the landmarkers' folds.
    """
    import pandas as pd

    if task not in ("classification", "regression"):
        raise ValueError(f"`task` must be 'classification' or 'regression'; received {task!r}.")
    if isinstance(x, (str, os.PathLike)) and os.path.isdir(x):
        if y is not None:
            raise ValueError(f"`y` must be None when `x` is an image folder (labels come from sub-folder names); "
                             f"received y={y!r}.")
        sample = _folder_sample(x, sample_size, seed)
    elif isinstance(x, (str, os.PathLike, pd.DataFrame, dict)):
        sample = _table_sample(x, y, sample_size, seed)
    elif np.ndim(x) == 1 and len(x) and any(isinstance(v, str) for v in x):
        sample = _text_sample(x, y, sample_size, seed)
    else:
        sample = _array_sample(x, y, sample_size, seed)
    features, target, categorical, missing, rows, columns = sample
    classification = task == "classification"
    known = np.array([not (v is None or (isinstance(v, float) and math.isnan(v))) for v in target])
    features, target = features[known], target[known]
    if classification:
        _, counts = np.unique(target.astype(str), return_counts=True)
        target = target.astype(str)
        share = counts / counts.sum()
        classes, entropy = float(len(counts)), float(-(share * np.log2(share)).sum())
    else:
        target = target.astype("float64")
        classes, entropy = 0.0, 0.0
    one_nn, stump = _landmarks(features, target, classification, seed)
    values = (math.log1p(rows), math.log1p(columns), classes, entropy, categorical, missing, one_nn, stump)
    return dict(zip(NAMES, (float(v) for v in values)))
