"""The target of a raw-data task: class labels or numbers, with missing targets left out.

`Targets` learns the classes (classification) or the scale (regression) from `fit`'s targets
and encodes any later targets the same way: class indices (-1 for a missing or unknown label)
or float32 values (NaN for a missing one). `split_rows` holds out a stratified validation split
of the labelled rows.

Example:

>>> targets = Targets("classification")
>>> encoded, labelled = targets.fit(["cash", None, "card", "cash"])
>>> targets.classes, encoded, labelled
(array(['card', 'cash'], ...), array([ 1, -1,  0,  1]), array([ True, False,  True,  True]))
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfmeta.automodel.column_types import missing_mask
from tfmeta.data.validation import check_float32_range


class Targets:
    """Encodes targets for `task` (`"classification"` or `"regression"`).

    Attributes (after `fit`): `classes` (classification, sorted label values), `mean` and
    `std` (regression).
    """

    def __init__(self, task: str, name: str = "y"):
        self.classification = task == "classification"
        self.name = name

    def fit(self, raw) -> tuple[np.ndarray, np.ndarray]:
        """Learns the classes or scale of `raw` and returns `encode(raw)`.

        Raises:
            ValueError: Every target is missing, or fewer than two classes.
            TypeError: A regression target that is not a number.
        """
        series = pd.Series(np.asarray(raw, dtype=object))
        present = series[~missing_mask(series)]
        if len(present) == 0:
            raise ValueError(f"`{self.name}` has no target value: every target is missing.")
        if self.classification:
            values = np.asarray(present.tolist())
            self.classes = np.unique(values.astype(str) if values.dtype.kind in "OU" else values)
            if len(self.classes) < 2:
                raise ValueError(f"`{self.name}` must hold at least 2 classes; received one class only "
                                 f"({self.classes[0]!r}).")
            return self.encode(raw)
        encoded, labelled = self.encode(raw)
        values = encoded[labelled]
        self.mean, self.std = float(values.mean()), float(values.std()) or 1.0
        return encoded, labelled

    def encode(self, raw) -> tuple[np.ndarray, np.ndarray]:
        """`(encoded targets, labelled mask)` of `raw`."""
        series = pd.Series(np.asarray(raw, dtype=object))
        missing = missing_mask(series)
        if self.classification:
            if self.classes.dtype.kind in "biuf":  # labels given (or read) as text
                series = pd.to_numeric(series, errors="coerce")
            else:
                series = series.astype(str)
            index = pd.Index(self.classes).get_indexer(series.where(~missing))
            index = np.where(missing, -1, index).astype(np.int64)
            return index, index >= 0
        numbers = pd.to_numeric(series.where(~missing, None), errors="coerce")
        bad = numbers.isna().to_numpy() & ~missing
        if bad.any():
            raise TypeError(f"`{self.name}` must be numbers for task='regression'; received "
                            f"{series[bad].iloc[0]!r}.")
        wide = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        check_float32_range(wide, self.name)
        if np.isinf(wide).any():
            raise ValueError(f"`{self.name}` must hold finite numbers for task='regression'; found "
                             f"{int(np.isinf(wide).sum())} infinite values.")
        values = wide.astype(np.float32)
        return values, ~np.isnan(values)

    def get_config(self) -> dict:
        if self.classification:
            return {"classes": self.classes.tolist()}
        return {"mean": self.mean, "std": self.std}


def split_rows(targets: np.ndarray, labelled: np.ndarray, fraction: float, classification: bool,
               seed: int = 0) -> dict[str, np.ndarray]:
    """`{"search", "validation", "all"}` row indices: a seeded, stratified split of the labelled rows."""
    from sklearn.model_selection import train_test_split

    rows = np.flatnonzero(labelled)
    stratify = None
    if classification and np.bincount(targets[rows]).min() >= 2:
        stratify = targets[rows]
    search, validation = train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    return {"search": np.sort(search), "validation": np.sort(validation), "all": rows}
