"""Keras layers for raw table columns that Keras's preprocessing layers do not cover.

Keras ships the lookups (`StringLookup`, `IntegerLookup`, `Hashing`), `Normalization`,
`Discretization` and `TextVectorization`, and `keras.utils.FeatureSpace` to combine them;
none of them reads a missing number, a date string or turns quantile bins into a
piecewise-linear code. These small layers do, in TensorFlow ops, so they run inside the
exported SavedModel:

- `MissingNumber`: imputes NaN with the training median, standardises, and adds a
  missing indicator.
- `PiecewiseLinearEncoding`: the piecewise-linear code of a number over quantile bins, and
  `PeriodicEncoding`: learned sin/cos features of a number (both Gorishniy et al. 2022,
  "On Embeddings for Numerical Features in Tabular Deep Learning").
- `IntegerTokens`: integers (given as floats) as vocabulary tokens ("3"), NaN as "".
- `DatetimeFeatures`: a date string parsed in the graph into calendar features.

Example:

>>> x = tf.constant([1.0, float("nan"), 3.0])
>>> MissingNumber(fill_value=2.0, mean=2.0, std=1.0)(x).numpy()
array([[-1.,  0.], [ 0.,  1.], [ 1.,  0.]], dtype=float32)
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfmeta.automodel.column_types import DATE_PATTERNS

#: Calendar features of `DatetimeFeatures`, in order.
DATETIME_FEATURES = (
    "year", "time", "month_sin", "month_cos", "weekday_sin", "weekday_cos",
    "hour_sin", "hour_cos", "day_sin", "day_cos", "missing",
)


def _as_column(x):
    """`[batch]` from a `[batch]` or `[batch, 1]` input."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 2:
        x = tf.squeeze(x, -1)
    return x


@keras.saving.register_keras_serializable(package="tfmeta")
class MissingNumber(keras.layers.Layer):
    """A number with NaN for missing: `[(x - mean) / std, missing]` per row.

    Args:
        fill_value: Value a missing number is replaced by (the training median).
        mean, std: Standardisation statistics of the training values.
        clip: Optional bound of the standardised values (`[-clip, clip]`); None keeps them
            (an outlier can matter: a fare is the total minus the tip, however large).
        indicator: Whether to output the missing indicator column.
        filled_only: Output only the imputed raw value `[batch]` (for encodings that work on
            the original scale, such as `PiecewiseLinearEncoding`).
    """

    def __init__(self, fill_value: float, mean: float, std: float, clip: float | None = None,
                 indicator: bool = True, filled_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.fill_value, self.mean, self.std = float(fill_value), float(mean), float(std) or 1.0
        self.clip = None if clip is None else float(clip)
        self.indicator, self.filled_only = bool(indicator), bool(filled_only)

    def filled(self, x):
        """`(x with NaN replaced by the fill value, missing mask)`."""
        x = tf.cast(_as_column(x), tf.float32)
        missing = tf.math.is_nan(x)
        return tf.where(missing, tf.cast(self.fill_value, tf.float32), x), missing

    def call(self, x):
        filled, missing = self.filled(x)
        if self.filled_only:
            return filled
        z = (filled - self.mean) / self.std
        if self.clip is not None:
            z = tf.clip_by_value(z, -self.clip, self.clip)
        columns = [z, tf.cast(missing, tf.float32)] if self.indicator else [z]
        return tf.stack(columns, axis=-1)

    def compute_output_shape(self, input_shape):
        if self.filled_only:
            return (input_shape[0],)
        return (input_shape[0], 2 if self.indicator else 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "fill_value": self.fill_value, "mean": self.mean,
                "std": self.std, "clip": self.clip, "indicator": self.indicator,
                "filled_only": self.filled_only}


@keras.saving.register_keras_serializable(package="tfmeta")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """Piecewise-linear code of a number over bins `[b_0, b_1, ..., b_T]`.

    Component `t` is 0 below bin `t`, 1 above it, and rises linearly across it, so a value is
    coded by which bins it has passed and how far into the current one it is (the first and
    last components extend beyond the outer edges). NaN inputs must be imputed first.

    Args:
        boundaries: Increasing bin edges (e.g. training quantiles), at least 2.
    """

    def __init__(self, boundaries: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        edges = np.unique(np.asarray(boundaries, dtype=np.float64))
        if len(edges) < 2:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5]) if len(edges) else np.array([0.0, 1.0])
        self.boundaries = [float(b) for b in edges]

    def call(self, x):
        x = tf.cast(_as_column(x), tf.float32)[:, None]
        edges = tf.constant(self.boundaries, tf.float32)
        left, width = edges[:-1], edges[1:] - edges[:-1]
        code = (x - left) / width
        bins = len(self.boundaries) - 1
        low = tf.concat([tf.fill([1], -np.inf), tf.zeros([bins - 1])], 0)
        high = tf.concat([tf.ones([bins - 1]), tf.fill([1], np.inf)], 0)
        return tf.clip_by_value(code, tf.cast(low, tf.float32), tf.cast(high, tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.boundaries) - 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "boundaries": self.boundaries}


@keras.saving.register_keras_serializable(package="tfmeta")
class PeriodicEncoding(keras.layers.Layer):
    """`[sin(2 pi c_k x), cos(2 pi c_k x)]` of a standardised number, frequencies `c_k` learned.

    Args:
        frequencies: Number of frequencies `k` (output `2k` features).
        sigma: Standard deviation of the frequencies' initial normal draw.
    """

    def __init__(self, frequencies: int = 8, sigma: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.frequencies, self.sigma = int(frequencies), float(sigma)

    def build(self, input_shape):
        self.c = self.add_weight(
            shape=(self.frequencies,),
            initializer=keras.initializers.RandomNormal(stddev=self.sigma),
            name="frequencies",
        )

    def call(self, x):
        angle = 2.0 * math.pi * tf.cast(_as_column(x), self.compute_dtype)[:, None] * self.c
        return tf.concat([tf.sin(angle), tf.cos(angle)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * self.frequencies)

    def get_config(self) -> dict:
        return {**super().get_config(), "frequencies": self.frequencies, "sigma": self.sigma}


def integer_tokens(values: np.ndarray) -> np.ndarray:
    """The tokens `IntegerTokens` makes, in numpy: "3" for 3.0, "" for NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, "", dtype=object)
    present = ~np.isnan(values)
    out[present] = [str(int(v)) for v in np.round(values[present])]
    return out


@keras.saving.register_keras_serializable(package="tfmeta")
class IntegerTokens(keras.layers.Layer):
    """Integer-valued floats as string tokens for a `StringLookup`: 3.0 -> "3", NaN -> ""."""

    def call(self, x):
        x = tf.cast(_as_column(x), tf.float64)
        missing = tf.math.is_nan(x)
        tokens = tf.strings.as_string(tf.cast(tf.round(tf.where(missing, tf.zeros_like(x), x)), tf.int64))
        return tf.where(missing, tf.fill(tf.shape(tokens), ""), tokens)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), float ops."""
    year = year - tf.cast(month <= 2, year.dtype)
    era = tf.math.floordiv(year, 400.0)
    year_of_era = year - era * 400.0
    shifted_month = tf.where(month > 2, month - 3.0, month + 9.0)
    day_of_year = tf.math.floordiv(153.0 * shifted_month + 2.0, 5.0) + day - 1.0
    day_of_era = (year_of_era * 365.0 + tf.math.floordiv(year_of_era, 4.0)
                  - tf.math.floordiv(year_of_era, 100.0) + day_of_year)
    return era * 146097.0 + day_of_era - 719468.0


def parse_dates(text, order: str):
    """`(year, month, day, hours since midnight, days since 1970, valid)` of date strings."""
    text = tf.strings.strip(_as_column(text))
    valid = tf.strings.regex_full_match(text, DATE_PATTERNS[order])
    digits = tf.strings.strip(tf.strings.regex_replace(text, "[^0-9]+", " "))
    tokens = tf.strings.split(digits).to_tensor(default_value="0", shape=[None, 6])
    numbers = tf.strings.to_number(tf.where(tokens == "", "0", tokens), tf.float64)
    position = {"ymd": (0, 1, 2), "mdy": (2, 0, 1), "dmy": (2, 1, 0)}[order]
    year, month, day = (numbers[:, i] for i in position)
    hour, minute, second = numbers[:, 3], numbers[:, 4], numbers[:, 5]
    if order == "mdy":  # 12-hour clock
        pm = tf.strings.regex_full_match(tf.strings.upper(text), ".*PM")
        am = tf.strings.regex_full_match(tf.strings.upper(text), ".*AM")
        hour = tf.where(pm & (hour < 12), hour + 12, tf.where(am & (hour == 12), 0.0, hour))
    valid &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31) & (hour < 24)
    hours = hour + minute / 60.0 + second / 3600.0
    days = days_from_civil(year, month, day)
    return year, month, day, hours, days, valid


@keras.saving.register_keras_serializable(package="tfmeta")
class DatetimeFeatures(keras.layers.Layer):
    """Calendar features of date strings, parsed in the graph (`DATETIME_FEATURES`).

    Year and absolute time (days since 1970 plus the time of day) are standardised with the
    training statistics; month, weekday, hour and day of month are cyclic (sin, cos); a date
    that is missing ("") or does not parse gives zeros and `missing = 1`.

    Args:
        order: `"ymd"`, `"mdy"` or `"dmy"` (see `tfmeta.automodel.column_types.DATE_PATTERNS`).
        year_mean, year_std, time_mean, time_std: Training statistics of year and days.
    """

    def __init__(self, order: str, year_mean: float = 2000.0, year_std: float = 10.0,
                 time_mean: float = 10000.0, time_std: float = 3650.0, **kwargs):
        super().__init__(**kwargs)
        if order not in DATE_PATTERNS:
            raise ValueError(f"`order` must be one of {sorted(DATE_PATTERNS)}; received {order!r}.")
        self.order = order
        self.year_mean, self.year_std = float(year_mean), float(year_std) or 1.0
        self.time_mean, self.time_std = float(time_mean), float(time_std) or 1.0

    def call(self, text):
        year, month, day, hours, days, valid = parse_dates(text, self.order)
        weekday = tf.math.floormod(days + 3.0, 7.0)  # Monday = 0
        turn = 2.0 * math.pi
        features = [
            tf.clip_by_value((year - self.year_mean) / self.year_std, -5.0, 5.0),
            tf.clip_by_value((days + hours / 24.0 - self.time_mean) / self.time_std, -5.0, 5.0),
            tf.sin(turn * (month - 1.0) / 12.0), tf.cos(turn * (month - 1.0) / 12.0),
            tf.sin(turn * weekday / 7.0), tf.cos(turn * weekday / 7.0),
            tf.sin(turn * hours / 24.0), tf.cos(turn * hours / 24.0),
            tf.sin(turn * (day - 1.0) / 31.0), tf.cos(turn * (day - 1.0) / 31.0),
        ]
        stacked = tf.where(valid[:, None], tf.stack(features, -1), tf.zeros_like(tf.stack(features, -1)))
        missing = tf.cast(~valid, tf.float64)[:, None]
        return tf.cast(tf.concat([stacked, missing], -1), tf.float32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(DATETIME_FEATURES))

    def get_config(self) -> dict:
        return {**super().get_config(), "order": self.order, "year_mean": self.year_mean,
                "year_std": self.year_std, "time_mean": self.time_mean, "time_std": self.time_std}
