"""AutoModel on a table: a DataFrame, a dict of columns or a CSV file (streamed), raw.

`TableTask` reads the table (`tfmeta.data.tables.TableSource`), infers each column's type
(`column_types`, shown by `AutoModel.summary()` and overridable with
`AutoModel(column_types={...})`), summarises the columns in one streamed pass, and builds the
in-graph preprocessing (`TablePreprocessing`). The search (`raw_data`) then covers encodings,
widths and training settings (`table_models.table_space`). The export's `serving_default`
takes one named input per column with its raw dtype, so TF Serving's row format works:
`{"instances": [{"sex": "male", "age": 22.0, ...}]}`.

The target is either given as values (`fit(df, y)`) or named (`fit("train.csv", y="price")`);
rows whose target is missing are left out of training (with a warning).

Example:

>>> am = tfmeta.AutoModel(task="regression", max_trials=3)
>>> am.fit("taxis.csv", y="fare")
>>> print(am.summary())
>>> am.predict(pd.DataFrame({"distance": [1.6], "pickup_zone": ["Lenox Hill West"], ...}))
"""

from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmeta.automodel import table_models
from tfmeta.automodel.column_types import describe, infer_column_types
from tfmeta.automodel.raw_data import RawDataTask
from tfmeta.automodel.table_inputs import to_model_inputs, used_columns
from tfmeta.automodel.table_preprocessing import TablePreprocessing
from tfmeta.automodel.table_statistics import summarize_table
from tfmeta.automodel.targets import Targets, split_rows
from tfmeta.data.tables import TableSource

#: Rows read to infer the column types (a random sample of an in-memory table, or a CSV's head).
INFERENCE_ROWS = 20_000
#: Rows read (and converted) at a time from a CSV file.
CHUNK_ROWS = 65_536
#: Rows a streamed shuffle mixes (its buffer).
SHUFFLE_BUFFER = 50_000
#: Largest decoded table kept in memory for the epochs after the first.
CACHE_BYTES = 1 << 30


def split_target(x, y, name: str = "x") -> tuple[TableSource, str | None, np.ndarray | None]:
    """`(feature source, target column or None, target values or None)` from `fit`'s `x, y`."""
    source = TableSource.from_input(x, name)
    if isinstance(y, str):
        if y not in source.columns:
            raise ValueError(f"`y` names the target column {y!r}, which `{name}` does not have; its columns are "
                             f"{source.columns}.")
        return source.without(y), y, None
    if y is None:
        raise ValueError("`y` is required: the target values, or the name of the target column in `x`.")
    values = np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"`y` must be one target per row (1-D); received shape {values.shape}.")
    return source, None, values


class TableTask(RawDataTask):
    """Classification or regression on a table (see the module docstring)."""

    kind = "table"

    # ------------------------------------------------------------------ reading
    def prepare(self, x, y, validation_split, validation_data) -> None:
        am = self.am
        self.source, self.target_column, values = split_target(x, y)
        self.specs = infer_column_types(self._inference_sample(self.source), am.column_types)
        self.columns = used_columns(self.specs)
        am._log("[columns]\n" + describe(self.specs))
        raw = values if values is not None else self._read_target(TableSource.from_input(x))
        if values is not None and len(raw) != self._rows(self.source):
            raise ValueError(f"`x` and `y` must have the same number of rows; received {self._rows(self.source)} "
                             f"rows and {len(raw)} targets.")
        self.targets = Targets(am.task)
        self.y, labelled = self.targets.fit(raw)
        if self.classification:
            self.classes = self.targets.classes
        if not labelled.all():
            warnings.warn(f"{int((~labelled).sum())} rows whose target is missing are left out of training.",
                          stacklevel=4)
        self.validation_source = None
        if validation_data is not None:
            vx, vy = validation_data
            self.validation_source, column, values = split_target(vx, vy, "validation_data[0]")
            raw = values if values is not None else self._read_target(TableSource.from_input(vx), column)
            self.validation_y, ok = self.targets.encode(raw)
            self.validation_rows = np.flatnonzero(ok)
            self.parts = {"search": np.flatnonzero(labelled), "all": np.flatnonzero(labelled)}
        else:
            self.parts = split_rows(self.y, labelled, validation_split, self.classification, am.seed or 0)
        self.rows = len(self.parts["all"])
        stats = summarize_table(self.source, self.specs, chunk_rows=CHUNK_ROWS, seed=am.seed or 0)
        self.preprocessing = TablePreprocessing(self.specs, stats)
        self.decoder = self.preprocessing.decoder()
        self._decoded = self._decode(to_model_inputs(self.source.frame(), self.specs, strict=False)) \
            if self.source.in_memory else None
        self._cached: dict[str, tf.data.Dataset] = {}

    @staticmethod
    def _inference_sample(source: TableSource) -> pd.DataFrame:
        if source.in_memory and len(source.frame()) > INFERENCE_ROWS:
            return source.frame().sample(INFERENCE_ROWS, random_state=0)
        return source.head(INFERENCE_ROWS)

    @staticmethod
    def _rows(source: TableSource) -> int:
        return len(source.frame()) if source.in_memory else source.count_rows()

    def _read_target(self, source: TableSource, column: str | None = None) -> np.ndarray:
        column = column or self.target_column
        parts = [chunk[column].to_numpy(dtype=object) for chunk in source.chunks(CHUNK_ROWS, columns=[column])]
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)

    # ------------------------------------------------------------------ data
    def _decode(self, arrays: dict) -> dict:
        """The decoder's fixed tensors of raw column arrays, as numpy (computed once per row)."""
        decoded = {}
        names = list(arrays)
        rows = len(arrays[names[0]]) if names else 0
        for start in range(0, rows, CHUNK_ROWS):
            part = self.decoder({k: tf.constant(v[start : start + CHUNK_ROWS]) for k, v in arrays.items()})
            for key, value in part.items():
                decoded.setdefault(key, []).append(value.numpy())
        return {key: np.concatenate(values) for key, values in decoded.items()}

    def _signature(self):
        decoded = {key: tf.TensorSpec([None, *tensor.shape[1:]], tf.as_dtype(tensor.dtype))
                   for key, tensor in self.preprocessing.decoded_inputs().items()}
        target = tf.TensorSpec([None], tf.int64 if self.classification else tf.float32)
        return decoded, target

    def dataset(self, part: str, batch_size: int, shuffle: bool = False) -> tf.data.Dataset:
        if part == "validation" and self.validation_source is not None:
            rows = self.validation_rows
            ds = self._rows_of("validation", self.validation_source, self.validation_y, rows)
        elif self._decoded is not None:
            rows = self.parts[part]
            ds = tf.data.Dataset.from_tensor_slices(({k: v[rows] for k, v in self._decoded.items()}, self.y[rows]))
        else:
            rows = self.parts[part]
            ds = self._rows_of(part, self.source, self.y, rows)
        if shuffle:
            ds = ds.shuffle(min(len(rows), SHUFFLE_BUFFER), seed=self.am.seed or 0, reshuffle_each_iteration=True)
        batches = -(-len(rows) // batch_size)  # known, so Keras counts the steps of every epoch
        ds = ds.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))
        return ds.prefetch(tf.data.AUTOTUNE)

    def _rows_of(self, part: str, source: TableSource, targets: np.ndarray, rows: np.ndarray) -> tf.data.Dataset:
        """Rows `rows` of a CSV, decoded chunk by chunk (bounded memory), one row per element.

        The decoded rows are cached in memory after the first pass when they fit in
        `CACHE_BYTES`, so later epochs and trials read no CSV.
        """
        if part in self._cached:
            return self._cached[part]
        if part == "all":  # the refit: the search's cached rows are no longer needed
            self._cached.clear()
        keep = np.zeros(len(targets), dtype=bool)
        keep[rows] = True

        def chunks():
            start = 0
            for chunk in source.chunks(CHUNK_ROWS, columns=list(self.columns)):
                stop = start + len(chunk)
                mask = keep[start:stop]
                if mask.any():
                    arrays = to_model_inputs(chunk, self.specs, strict=False)
                    decoded = self._decode({k: v[mask] for k, v in arrays.items()})
                    yield decoded, targets[start:stop][mask]
                start = stop

        ds = tf.data.Dataset.from_generator(chunks, output_signature=self._signature())
        width = sum(int(np.prod(t.shape[1:])) or 1 for t in self.preprocessing.decoded_inputs().values())
        if len(rows) * width * 8 <= CACHE_BYTES:
            ds = ds.cache()  # whole decoded chunks: a cache of single rows costs far more per row
        ds = ds.unbatch()
        self._cached[part] = ds
        return ds

    def predict_batches(self, x) -> Iterator[dict]:
        source = TableSource.from_input(x)
        for chunk in source.chunks(CHUNK_ROWS):
            yield to_model_inputs(chunk, self.specs)

    def evaluation_batches(self, x, y) -> Iterator[tuple[dict, np.ndarray]]:
        """`(model inputs, true targets)` per chunk, rows without a target left out."""
        source, column, values = split_target(x, y)
        offset = 0
        full = TableSource.from_input(x) if column is not None else None
        target_chunks = full.chunks(CHUNK_ROWS, columns=[column]) if full is not None else None
        for chunk in source.chunks(CHUNK_ROWS):
            raw = next(target_chunks)[column].to_numpy(dtype=object) if target_chunks is not None \
                else values[offset : offset + len(chunk)]
            offset += len(chunk)
            encoded, ok = self.targets.encode(raw)
            if ok.any():
                arrays = to_model_inputs(chunk, self.specs)
                yield {k: v[ok] for k, v in arrays.items()}, encoded[ok]

    # ------------------------------------------------------------------ searching
    def space(self):
        return table_models.table_space(self.rows)

    def initial_architectures(self):
        return table_models.initial_architectures(self.space())

    def build(self, arch):
        outputs = len(self.classes) if self.classification else 1
        mean, std = (0.0, 1.0) if self.classification else (self.targets.mean, self.targets.std)
        return table_models.build_table_model(self.preprocessing, self.space(), arch, outputs,
                                              self.am.task, mean, std)

    # ------------------------------------------------------------------ serving
    def model_inputs(self):
        return self.preprocessing.decoded_inputs()

    def serving_model(self, core):
        """Raw columns -> decoder -> `core` (the trial models take decoded rows)."""
        import keras

        raw = self.preprocessing.inputs()
        return keras.Model(raw, core(self.decoder(raw)), name="table_model")

    def endpoints(self, model, outputs) -> dict:
        def serve(inputs):
            return outputs(model(inputs, training=False))

        return {"serving_default": (serve, [self.preprocessing.input_signature()])}

    def describe(self) -> dict:
        config = self.preprocessing.get_config()
        config["target"] = {"column": self.target_column, **self.targets.get_config()}
        return config

    def summary(self) -> str:
        return describe(self.specs)
