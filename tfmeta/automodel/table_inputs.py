"""Rows of a user's table turned into the model's raw inputs: one array per column.

The model (and its SavedModel) takes one input per used column with the column's raw dtype:
float32 for numbers (NaN = missing), strings for everything else ("" = missing). This module
makes those arrays from a DataFrame chunk, with the checks a predict-time frame needs: a
training column that is missing is named, a column whose values no longer fit its type is
named, and extra columns are ignored with a warning.

Example:

>>> arrays = to_model_inputs(frame, specs)
>>> arrays["age"].dtype, arrays["sex"].dtype
(dtype('float32'), dtype('O'))
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import pandas as pd

from tfmeta.automodel.column_types import ColumnSpec, missing_mask
from tfmeta.data.validation import check_float32_range


def used_columns(specs: Mapping[str, ColumnSpec]) -> dict[str, ColumnSpec]:
    """The columns the model takes as inputs (identifiers are left out)."""
    return {name: spec for name, spec in specs.items() if spec.kind != "identifier"}


def _float32(name: str, numbers: pd.Series) -> np.ndarray:
    """float32 values (NaN missing); values that overflow float32, or are infinite, are refused."""
    wide = numbers.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    check_float32_range(wide, f"x[{name!r}]")
    if np.isinf(wide).any():
        raise ValueError(f"`x[{name!r}]` must hold finite numbers (or missing values); found "
                         f"{int(np.isinf(wide).sum())} infinite values.")
    return wide.astype(np.float32)


def _numbers(name: str, values: pd.Series, strict: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return _float32(name, values)
    missing = missing_mask(values)
    text = values.astype(str).str.strip().where(~missing, None)
    numbers = pd.to_numeric(text, errors="coerce")
    bad = int((numbers.isna() & ~missing).sum())
    present = int((~missing).sum())
    if strict and present and bad > present // 2:
        example = text[numbers.isna() & ~missing].iloc[0]
        raise ValueError(
            f"Column {name!r} was numeric in `fit`, but {bad} of its {present} values are not "
            f"numbers (e.g. {example!r}): its type changed."
        )
    return _float32(name, numbers)


def _strings(values: pd.Series, spec: ColumnSpec) -> np.ndarray:
    if spec.kind == "datetime" and pd.api.types.is_datetime64_any_dtype(values):
        text = values.dt.strftime("%Y-%m-%d %H:%M:%S")
    elif pd.api.types.is_bool_dtype(values):
        text = values.map({True: "True", False: "False"})
    else:
        text = values.astype(str).str.strip()
    missing = missing_mask(values)
    return np.asarray(text.where(~missing, "").to_numpy(dtype=object), dtype=object)


def column_array(name: str, values: pd.Series, spec: ColumnSpec, strict: bool = True) -> np.ndarray:
    """One column's raw model input: float32 (NaN missing) or object strings ("" missing)."""
    if spec.input_dtype == "float32":
        return _numbers(name, values, strict and spec.kind == "numeric")
    return _strings(values, spec)


def to_model_inputs(
    frame: pd.DataFrame,
    specs: Mapping[str, ColumnSpec],
    name: str = "x",
    strict: bool = True,
) -> dict[str, np.ndarray]:
    """`{input_name: array}` for every used column of `specs`, read from `frame`.

    Args:
        frame: Rows with (at least) the training columns, raw values of any dtype.
        specs: The columns' specs from `fit`.
        name: The argument's name, for errors.
        strict: Raise when a numeric column's values are mostly not numbers (predict time).

    Raises:
        ValueError: A used training column is missing from `frame`, or its type changed.
    """
    columns = used_columns(specs)
    present = {str(c) for c in frame.columns}
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(
            f"`{name}` is missing the training column(s) {missing}; it has {sorted(present)}."
        )
    extra = sorted(present - set(specs))
    if extra:
        warnings.warn(f"`{name}` has columns not seen in `fit`, ignored: {extra}.", stacklevel=3)
    return {
        spec.input_name: column_array(column, frame[column], spec, strict)
        for column, spec in columns.items()
    }
