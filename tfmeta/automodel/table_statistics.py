"""One streamed pass over a table: what the in-graph preprocessing needs, in bounded memory.

Keras preprocessing layers `adapt()` one layer at a time, which for a table of a dozen
columns means a dozen passes over a file that may not fit in memory. `summarize_table`
reads the rows once, chunk by chunk, and keeps per column only what the layers are then
built from: counts, sums and a bounded reservoir sample of numbers (median, standardisation,
quantile bins), category counts (vocabularies), and bounded samples of date and text strings
(calendar statistics, a `TextVectorization` vocabulary). Memory stays bounded whatever the
number of rows.

Example:

>>> stats = summarize_table(TableSource.from_input("train.csv"), specs, target="price")
>>> stats.rows, stats.columns["distance"].median
(1000000, 1.6)
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Mapping

import numpy as np

from tfmeta.automodel.column_types import ColumnSpec
from tfmeta.automodel.table_inputs import column_array, used_columns
from tfmeta.automodel.table_layers import integer_tokens

#: Values kept per column for quantiles and medians (a uniform reservoir sample).
RESERVOIR_SIZE = 50_000
#: Distinct categories counted per column before the rarest are pruned.
MAX_COUNTED_CATEGORIES = 200_000


class Reservoir:
    """A uniform random sample of at most `size` values of a stream (Vitter's algorithm R)."""

    def __init__(self, size: int = RESERVOIR_SIZE, seed: int = 0, dtype=np.float64):
        self.size, self.seen = int(size), 0
        self.values = np.empty(self.size, dtype=dtype)
        self._rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values)
        room = min(len(values), self.size - self.seen) if self.seen < self.size else 0
        if room:
            self.values[self.seen : self.seen + room] = values[:room]
        rest = values[room:]
        if len(rest):
            positions = self.seen + room + np.arange(len(rest))
            slots = (self._rng.random(len(rest)) * (positions + 1)).astype(np.int64)
            keep = slots < self.size
            self.values[slots[keep]] = rest[keep]
        self.seen += len(values)

    def sample(self) -> np.ndarray:
        return self.values[: min(self.seen, self.size)]


@dataclasses.dataclass
class ColumnStatistics:
    """What one column's preprocessing is built from."""

    count: int = 0
    missing: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    sample: Reservoir | None = None
    categories: collections.Counter | None = None

    @property
    def mean(self) -> float:
        present = self.count - self.missing
        return self.total / present if present else 0.0

    @property
    def std(self) -> float:
        present = self.count - self.missing
        if present < 2:
            return 1.0
        var = max(self.total_squares / present - self.mean**2, 0.0)
        return float(np.sqrt(var)) or 1.0

    @property
    def median(self) -> float:
        values = self.sample.sample() if self.sample is not None else np.empty(0)
        return float(np.median(values)) if len(values) else 0.0

    def quantiles(self, bins: int) -> list[float]:
        """`bins + 1` bin edges at the sample's quantiles (duplicates removed)."""
        values = self.sample.sample()
        if not len(values):
            return [0.0, 1.0]
        return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1))).tolist()

    def vocabulary(self, max_size: int, min_count: int = 2) -> list[str]:
        """The most frequent categories seen at least `min_count` times (at most `max_size`)."""
        common = [(k, n) for k, n in self.categories.most_common(max_size) if n >= min_count]
        return [k for k, _ in common]


@dataclasses.dataclass
class TableStatistics:
    """Statistics of every used column and of the target, from one pass over the rows."""

    rows: int
    columns: dict[str, ColumnStatistics]
    target: ColumnStatistics | None = None


def _add_numbers(stats: ColumnStatistics, values: np.ndarray) -> None:
    present = values[~np.isnan(values)].astype(np.float64)
    stats.missing += len(values) - len(present)
    stats.total += float(present.sum())
    stats.total_squares += float(np.square(present).sum())
    stats.sample.add(present)


def _add_categories(stats: ColumnStatistics, tokens: np.ndarray) -> None:
    stats.categories.update(tokens.tolist())
    stats.missing += int(np.sum(tokens == ""))
    if len(stats.categories) > MAX_COUNTED_CATEGORIES:  # keep the most frequent half
        stats.categories = collections.Counter(dict(stats.categories.most_common(MAX_COUNTED_CATEGORIES // 2)))


def _new_statistics(spec: ColumnSpec, seed: int) -> ColumnStatistics:
    if spec.kind == "numeric":
        return ColumnStatistics(sample=Reservoir(seed=seed))
    if spec.kind == "categorical":
        return ColumnStatistics(categories=collections.Counter())
    return ColumnStatistics(sample=Reservoir(seed=seed, dtype=object))  # datetime, text


def summarize_table(
    source,
    specs: Mapping[str, ColumnSpec],
    target: str | None = None,
    target_kind: str = "classification",
    chunk_rows: int = 65_536,
    seed: int = 0,
) -> TableStatistics:
    """Reads `source` (a `tfmeta.data.tables.TableSource`) once and summarises every column.

    Args:
        source: The table.
        specs: Column specs (`infer_column_types`); identifier columns are skipped.
        target: Name of the target column in `source`, if it is there.
        target_kind: `"classification"` (class counts) or `"regression"` (mean and spread).
        chunk_rows: Rows read at a time.
        seed: Seed of the reservoir samples.
    """
    columns = used_columns(specs)
    stats = {name: _new_statistics(spec, seed + i) for i, (name, spec) in enumerate(columns.items())}
    target_stats = None
    if target is not None:
        target_stats = ColumnStatistics(categories=collections.Counter()) if target_kind == "classification" \
            else ColumnStatistics(sample=Reservoir(seed=seed))
    wanted = list(columns) + ([target] if target is not None else [])
    rows = 0
    for chunk in source.chunks(chunk_rows, columns=wanted):
        rows += len(chunk)
        for name, spec in columns.items():
            column = stats[name]
            values = column_array(name, chunk[name], spec, strict=False)
            column.count += len(values)
            if spec.kind == "numeric":
                _add_numbers(column, values)
            elif spec.kind == "categorical":
                tokens = integer_tokens(values) if spec.input_dtype == "float32" else values
                _add_categories(column, np.asarray(tokens, dtype=object))
            else:
                present = values[values != ""]
                column.missing += len(values) - len(present)
                column.sample.add(present)
        if target_stats is not None:
            values = chunk[target]
            target_stats.count += len(values)
            if target_kind == "classification":
                target_stats.categories.update(values.tolist())
            else:
                _add_numbers(target_stats, np.asarray(values, dtype=np.float64))
    return TableStatistics(rows=rows, columns=stats, target=target_stats)
