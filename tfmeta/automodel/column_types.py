"""What each column of a user's table is: inferred from its values, shown, and overridable.

`infer_column_types(sample)` looks at (a sample of) the rows and gives every column a
`ColumnSpec`: its kind (what the model does with it) and the raw dtype its serving input takes.

| kind | from | serving input | in the model |
| --- | --- | --- | --- |
| `numeric` | numbers, booleans, numbers written as text (blanks and "NA" are missing) | float (NaN = missing) | imputed + missing indicator, then an encoding |
| `categorical` | short strings, low-cardinality integers | string ("" = missing), or float for integers | vocabulary lookup with out-of-vocabulary buckets |
| `datetime` | ISO dates (`2019-03-23 20:21:09`), `MM/DD/YYYY`, `DD.MM.YYYY` | string | calendar features |
| `text` | long, mostly distinct strings | string | bag of words (TF-IDF) |
| `identifier` | short strings that never repeat (IDs) | string | ignored |

Example:

>>> specs = infer_column_types(pd.DataFrame({"age": [22, None, 38], "sex": ["m", "f", "f"]}))
>>> specs["age"].kind, specs["sex"].kind
('numeric', 'categorical')
>>> specs = infer_column_types(frame, column_types={"zip": "categorical"})
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import numpy as np
import pandas as pd

KINDS = ("numeric", "categorical", "datetime", "text", "identifier")

#: Strings read as a missing value in any column (besides empty or blank strings).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-", "--", "#n/a", "nat"})

#: Integer columns with at most this many distinct values (and at most a third of the rows)
#: are categorical.
MAX_INTEGER_CATEGORIES = 20

_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
DATE_PATTERNS = {
    # order of the date's numbers -> full-match regex (the time part is optional)
    "ymd": r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}" + _TIME + r"\s*(?:Z|[+-]\d{2}:?\d{2})?",
    "mdy": r"\d{1,2}/\d{1,2}/\d{4}" + _TIME + r"(?:\s*[AaPp][Mm])?",
    "dmy": r"\d{1,2}[.-]\d{1,2}[.-]\d{4}" + _TIME,
}


@dataclasses.dataclass
class ColumnSpec:
    """How one column is read and used.

    Attributes:
        name: The column's name in the user's table.
        kind: One of `KINDS`.
        input_dtype: `"float32"` or `"string"`: the serving input's dtype.
        source: What the values looked like (e.g. "numbers written as text").
        input_name: The serving signature's input name (the column name made a valid
            TensorFlow name).
        date_order: `"ymd"`, `"mdy"` or `"dmy"` for datetime columns.
        user_set: Whether the kind came from `column_types`.
    """

    name: str
    kind: str
    input_dtype: str
    source: str
    input_name: str = ""
    date_order: str | None = None
    user_set: bool = False

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping) -> "ColumnSpec":
        return cls(**dict(config))


def input_name(column: str, taken: set[str]) -> str:
    """`column` as a valid, unused TensorFlow input name (letters, digits, `_`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(column).strip()) or "column"
    if not re.match(r"[A-Za-z]", name):
        name = "c_" + name
    candidate, k = name, 1
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate)
    return candidate


def missing_mask(values: pd.Series) -> np.ndarray:
    """True where a value is missing: None, NaN/NaT, or a blank / missing-token string."""
    mask = np.array(pd.isna(values), dtype=bool)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        text = values.astype(str).str.strip().str.lower()
        mask |= text.isin(MISSING_TOKENS).to_numpy()
    return mask


def _date_order(text: pd.Series) -> str | None:
    """The date order of strings that (95%+ of them) look like dates, else None."""
    for order, pattern in DATE_PATTERNS.items():
        matched = text.str.fullmatch(pattern)
        if matched.mean() >= 0.95:
            if order == "mdy":  # 13/01/2020 is day-first even with slashes
                first = pd.to_numeric(text[matched].str.split("/").str[0], errors="coerce")
                if (first > 12).any():
                    return "dmy"
            return order
    return None


def _infer_numbers(name: str, numbers: pd.Series, rows: int, source: str) -> ColumnSpec:
    """Kind of a column of (non-missing) numbers: few integer levels are categories."""
    numbers = numbers.astype(float)
    integral = bool(np.all(np.equal(np.mod(numbers, 1), 0)))
    distinct = int(numbers.nunique())
    if integral and distinct <= min(MAX_INTEGER_CATEGORIES, max(2, rows // 3)):
        return ColumnSpec(name, "categorical", "float32", f"integers ({distinct} values)")
    return ColumnSpec(name, "numeric", "float32", source)


def _infer_strings(name: str, text: pd.Series, rows: int) -> ColumnSpec:
    """Kind of a column of (non-missing, stripped) strings."""
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() >= 0.99:
        source = "numbers" if len(text) == rows else "numbers written as text, with blanks"
        return _infer_numbers(name, numbers.dropna(), rows, source)
    order = _date_order(text)
    if order is not None:
        return ColumnSpec(name, "datetime", "string", f"dates ({order})", date_order=order)
    distinct = text.nunique() / max(1, len(text))
    words = text.str.split().str.len().mean()
    if (distinct >= 0.5 and words >= 3) or words >= 8:
        return ColumnSpec(name, "text", "string", "free text")
    if distinct > 0.95 and rows >= 50:
        return ColumnSpec(name, "identifier", "string", "distinct short strings (an identifier)")
    return ColumnSpec(name, "categorical", "string", "strings")


def infer_column(name: str, values: pd.Series) -> ColumnSpec:
    """The `ColumnSpec` of one column from its values.

    Raises:
        ValueError: Every value of the column is missing.
    """
    missing = missing_mask(values)
    present = values[~missing]
    if len(present) == 0:
        raise ValueError(
            f"Column {name!r} is entirely missing ({len(values)} rows, no value): drop it or "
            "fill it before fitting."
        )
    if pd.api.types.is_bool_dtype(values):
        return ColumnSpec(name, "numeric", "float32", "booleans (as 0/1)")
    if pd.api.types.is_datetime64_any_dtype(values):
        return ColumnSpec(name, "datetime", "string", "datetimes", date_order="ymd")
    if pd.api.types.is_numeric_dtype(values):
        return _infer_numbers(name, present, len(values), "numbers")
    text = present.astype(str).str.strip()
    if text.map(lambda v: v.lower() in {"true", "false"}).all():
        return ColumnSpec(name, "categorical", "string", "true/false strings")
    return _infer_strings(name, text, len(values))


def infer_column_types(
    sample: pd.DataFrame, column_types: Mapping[str, str] | None = None
) -> dict[str, ColumnSpec]:
    """Infers every column's `ColumnSpec` from a sample of rows; `column_types` overrides kinds.

    Args:
        sample: Rows of the table (all of them for an in-memory table, the first rows of a
            CSV read as text).
        column_types: Optional `{column: kind}`, kind in `KINDS` (`"ignore"` is accepted for
            `"identifier"`).

    Returns:
        `{column: ColumnSpec}` in column order.

    Raises:
        ValueError: `column_types` names an unknown column or kind, or a column is entirely
            missing (and not set to `"identifier"`/`"ignore"`).
    """
    overrides = dict(column_types or {})
    unknown = sorted(set(overrides) - {str(c) for c in sample.columns})
    if unknown:
        raise ValueError(
            f"`column_types` names columns not in the table: {unknown}; the columns are "
            f"{[str(c) for c in sample.columns]}."
        )
    specs: dict[str, ColumnSpec] = {}
    taken: set[str] = set()
    for column in sample.columns:
        name = str(column)
        kind = overrides.get(name)
        if kind == "ignore":
            kind = "identifier"
        if kind is not None and kind not in KINDS:
            raise ValueError(
                f"`column_types[{name!r}]` must be one of {KINDS + ('ignore',)}; received {kind!r}."
            )
        if kind == "identifier":
            raw = "float32" if pd.api.types.is_numeric_dtype(sample[column]) else "string"
            spec = ColumnSpec(name, "identifier", raw, "set by column_types")
        else:
            spec = infer_column(name, sample[column])
            if kind is not None and kind != spec.kind:
                spec = _override(spec, kind, sample[column])
        spec.user_set = kind is not None
        spec.input_name = input_name(name, taken)
        specs[name] = spec
    return specs


def _override(spec: ColumnSpec, kind: str, values: pd.Series) -> ColumnSpec:
    """The spec of a column whose kind the user set."""
    numeric_input = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if kind == "numeric":
        return ColumnSpec(spec.name, kind, "float32", spec.source + ", set numeric")
    if kind == "categorical":
        return ColumnSpec(spec.name, kind, "float32" if numeric_input else "string",
                          spec.source + ", set categorical")
    if kind == "datetime":
        text = values[~missing_mask(values)].astype(str).str.strip()
        order = "ymd" if pd.api.types.is_datetime64_any_dtype(values) else _date_order(text)
        if order is None:
            raise ValueError(
                f"`column_types[{spec.name!r}]` is 'datetime' but its values are not dates tfmeta "
                f"can read in the model ({', '.join(DATE_PATTERNS)} orders); e.g. {text.iloc[0]!r}."
            )
        return ColumnSpec(spec.name, kind, "string", spec.source + ", set datetime", date_order=order)
    return ColumnSpec(spec.name, kind, "string", spec.source + f", set {kind}")


def describe(specs: Mapping[str, ColumnSpec]) -> str:
    """A table of the columns' kinds, raw inputs and what they looked like, for `summary()`."""
    width = max([len("column")] + [len(n) for n in specs])
    lines = [f"{'column':<{width}}  {'kind':<11}  {'input':<7}  seen as"]
    for name, spec in specs.items():
        mark = " (set)" if spec.user_set else ""
        dtype = "float" if spec.input_dtype == "float32" else "string"
        lines.append(f"{name:<{width}}  {spec.kind:<11}  {dtype:<7}  {spec.source}{mark}")
    return "\n".join(lines)
