"""Finite float64 values past float32's range (1e300) are refused with the argument's name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tfmeta.data.validation import as_labelled_arrays, check_float32_range, check_support_set

OVERFLOW = "overflows float32"


def test_float64_values_past_float32_are_refused_and_named():
    x = np.ones((4, 3))
    x[1, 2] = -1e300
    with pytest.raises(ValueError, match=f"`support_x` holds 1 values whose magnitude {OVERFLOW}.*1e\\+300"):
        as_labelled_arrays(x, [0, 1, 0, 1], x_name="support_x")
    with pytest.raises(ValueError, match=f"`query_x` holds 1 values whose magnitude {OVERFLOW}"):
        check_support_set(np.ones((4, 3)), [0, 1, 0, 1], x)
    check_float32_range(np.array([3e38, np.nan, np.inf, -1.0]), "x")  # within range; inf and NaN are other checks
    check_float32_range(np.array([np.iinfo(np.int64).max]), "x")      # integers never reach the limit


def test_automodel_refuses_overflowing_arrays_tables_and_targets(tmp_path):
    import tfmeta

    def automodel(task="classification"):
        return tfmeta.AutoModel(task=task, max_trials=1, epochs=1, directory=str(tmp_path), verbose=0)

    x = np.random.default_rng(0).random((20, 3))
    y = np.arange(20) % 2
    big = x.copy()
    big[3, 0] = 1e300
    with pytest.raises(ValueError, match=f"`x` holds 1 values whose magnitude {OVERFLOW}"):
        automodel().fit(big, y)
    with pytest.raises(ValueError, match=f"`y` holds 10 values whose magnitude {OVERFLOW}"):
        automodel("regression").fit(x, np.where(y == 1, 1e300, 0.0))
    table = pd.DataFrame({"amount": big[:, 0], "size": x[:, 1], "label": y})
    with pytest.raises(ValueError, match=f"`x\\['amount'\\]` holds 1 values whose magnitude {OVERFLOW}"):
        automodel().fit(table, y="label")
    written = table.assign(amount=[f"{v:g}" for v in big[:, 0]])  # numbers written as text, as in a CSV
    with pytest.raises(ValueError, match=f"`x\\['amount'\\]` holds 1 values whose magnitude {OVERFLOW}"):
        automodel().fit(written, y="label")
