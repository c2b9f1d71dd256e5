"""Tables from pandas, dicts of columns or CSV files: in memory, or streamed in chunks.

`TableSource` is what `AutoModel` reads a table through. A pandas `DataFrame` or a dict of
equally long columns is held in memory; a CSV file is never read whole: its rows come in
chunks of raw text (every field a string, blanks kept as ""), so a file larger than memory
can be typed, summarised and trained on with bounded memory.

Example:

>>> table = TableSource.from_input("train.csv")
>>> table.columns
['pickup', 'distance', 'payment', ...]
>>> for chunk in table.chunks(65_536):   # pandas DataFrames of at most 65,536 rows
...     ...
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

#: File endings read as delimited text when `x` is a path.
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")


def is_table_input(x: Any) -> bool:
    """True for a DataFrame, a dict of columns, or the path of a file (a CSV)."""
    if isinstance(x, pd.DataFrame):
        return True
    if isinstance(x, Mapping):
        return True
    if isinstance(x, (str, os.PathLike)):
        return not os.path.isdir(x)
    return False


def _check_csv_path(path: str, name: str) -> None:
    if not os.path.exists(path):
        raise ValueError(f"`{name}` names a CSV file that does not exist: {path!r}.")
    if not os.path.isfile(path):
        raise ValueError(f"`{name}` must be a CSV file or a folder of images; {path!r} is neither.")


class TableSource:
    """The rows of a table, in memory or in a CSV file read in chunks.

    Build it with `TableSource.from_input(x)`.

    Attributes:
        columns: Column names, in file order.
        in_memory: Whether the rows are held in memory (a DataFrame) rather than streamed.
        path: The CSV path when streamed, else None.
    """

    def __init__(self, frame: pd.DataFrame | None = None, path: str | None = None,
                 sep: str = ",", name: str = "x"):
        self._frame = frame
        self.path = path
        self.sep = sep
        self.name = name
        if frame is not None:
            self.columns = [str(c) for c in frame.columns]
            if list(frame.columns) != self.columns:
                self._frame = frame.rename(columns=str)
        else:
            self.columns = list(self._read(nrows=0).columns)
        if not self.columns:
            raise ValueError(f"`{name}` has no columns.")
        duplicated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicated:
            raise ValueError(f"`{name}` has duplicated column names: {duplicated}.")

    @property
    def in_memory(self) -> bool:
        return self._frame is not None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_input(cls, x: Any, name: str = "x") -> "TableSource":
        """A source for a DataFrame, a dict of columns or a CSV path.

        Raises:
            ValueError: A path that does not exist or does not parse as CSV, a dict whose
                columns differ in length, or an empty table; the message names `name`.
        """
        if isinstance(x, TableSource):
            return x
        if isinstance(x, pd.DataFrame):
            if len(x) == 0:
                raise ValueError(f"`{name}` must hold at least one row; received an empty DataFrame.")
            return cls(frame=x.reset_index(drop=True), name=name)
        if isinstance(x, Mapping):
            lengths = {str(k): len(np.atleast_1d(np.asarray(v, dtype=object))) for k, v in x.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"`{name}` columns must have the same length; received lengths {lengths}.")
            if not lengths or not next(iter(lengths.values())):
                raise ValueError(f"`{name}` must hold at least one row and one column; received {lengths}.")
            return cls(frame=pd.DataFrame({str(k): np.atleast_1d(v) for k, v in x.items()}), name=name)
        if isinstance(x, (str, os.PathLike)):
            path = os.fspath(x)
            _check_csv_path(path, name)
            sep = "\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ","
            source = cls(path=path, sep=sep, name=name)
            try:
                first = next(source.chunks(1000))
            except StopIteration:
                raise ValueError(f"`{name}` CSV file {path!r} has a header but no rows.") from None
            del first
            return source
        raise TypeError(
            f"`{name}` must be a pandas DataFrame, a dict of columns or the path of a CSV file; "
            f"received {type(x).__name__}."
        )

    # ------------------------------------------------------------------ reading
    def _read(self, **kwargs) -> Any:
        try:
            return pd.read_csv(
                self.path, sep=self.sep, dtype=str, keep_default_na=False, na_filter=False,
                skipinitialspace=False, **kwargs,
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ValueError(f"`{self.name}` CSV file {self.path!r} does not parse: {e}") from e

    def head(self, rows: int) -> pd.DataFrame:
        """The first `rows` rows (raw text fields for a CSV)."""
        if self._frame is not None:
            return self._frame.head(rows)
        return self._read(nrows=rows, usecols=list(self.columns))

    def chunks(self, rows: int = 65_536, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The rows in order, `rows` at a time (raw text fields for a CSV)."""
        if self._frame is not None:
            frame = self._frame if columns is None else self._frame[columns]
            for start in range(0, len(frame), rows):
                yield frame.iloc[start : start + rows]
            return
        reader = self._read(chunksize=rows, usecols=list(columns or self.columns))
        try:
            yield from reader
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise ValueError(f"`{self.name}` CSV file {self.path!r} does not parse: {e}") from e

    def frame(self) -> pd.DataFrame:
        """All rows as one DataFrame (in-memory sources only)."""
        if self._frame is None:
            raise RuntimeError("`frame()` is for in-memory tables; stream a CSV with `chunks()`.")
        return self._frame

    def count_rows(self) -> int:
        """Number of rows (a CSV is read once, in chunks)."""
        if self._frame is not None:
            return len(self._frame)
        return sum(len(c) for c in self.chunks(columns=self.columns[:1]))

    def without(self, column: str) -> "TableSource":
        """The same rows without `column` (in memory) or a note to skip it (CSV)."""
        if self._frame is not None:
            return TableSource(frame=self._frame.drop(columns=[column]), name=self.name)
        source = TableSource(path=self.path, sep=self.sep, name=self.name)
        source.columns = [c for c in self.columns if c != column]
        return source
