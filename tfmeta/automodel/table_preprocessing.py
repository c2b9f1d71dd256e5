"""The in-graph preprocessing of a table: raw columns in, one feature vector out.

`TablePreprocessing` is built once per `fit` from the columns' specs and one streamed pass of
statistics (`summarize_table`). It splits the preprocessing where the search needs it split:

- `decoder()`: raw columns (one Keras input per used column, with the column's raw dtype) to
  fixed tensors, the non-trainable part (imputation, standardisation, vocabulary lookups,
  date parsing). A search decodes its rows once and caches them;
- `features(decoded, numeric_encoding, categorical_encoding)`: the trial's encodings of those
  tensors, the part the search varies (and trains, for embeddings and periodic features).

The export is `decoder -> trial model`, so the SavedModel takes raw rows. Per column:

- numeric: `MissingNumber` (median imputation, standardisation, a missing indicator when the
  training data had gaps), then the trial's `numeric_encoding`: `"standard"` (the standardised
  value), `"ple"` (a `PiecewiseLinearEncoding` over quantile bins) or `"periodic"` (a
  `PeriodicEncoding` followed by a small ReLU layer, PLR in Gorishniy et al. 2022);
- categorical: a Keras `StringLookup` over the categories seen at least twice (at most
  `max_categories`), unseen and rare ones falling into out-of-vocabulary buckets (hashed into
  several buckets for high-cardinality columns), then the trial's `categorical_encoding`:
  `"onehot"` or `"embedding"`; integer categories pass through `IntegerTokens` first;
- datetime: `DatetimeFeatures` (calendar features parsed from the string);
- text: a Keras `TextVectorization` (TF-IDF over unigrams and bigrams) and a small dense layer.

Keras's `FeatureSpace` combines lookups and normalisation the same way but has no missing
values, dates, embeddings or numeric encodings, so the layers are composed here directly.

Example:

>>> pre = TablePreprocessing(specs, summarize_table(source, specs))
>>> decoded = pre.decoded_inputs()
>>> features = pre.features(decoded, numeric_encoding="ple", categorical_encoding="embedding")
>>> trial = keras.Model(decoded, keras.layers.Dense(1)(features))
>>> raw = pre.inputs()
>>> served = keras.Model(raw, trial(pre.decoder()(raw)))     # raw rows in
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from tfmeta.automodel.column_types import ColumnSpec
from tfmeta.automodel.table_inputs import used_columns
from tfmeta.automodel.table_layers import (
    DATETIME_FEATURES,
    DatetimeFeatures,
    IntegerTokens,
    MissingNumber,
    PeriodicEncoding,
    PiecewiseLinearEncoding,
    parse_dates,
)
from tfmeta.automodel.table_statistics import TableStatistics
from tfmeta.automodel.text_vocabulary import TextVocabulary

NUMERIC_ENCODINGS = ("standard", "ple", "periodic")
CATEGORICAL_ENCODINGS = ("onehot", "embedding")


def embedding_size(categories: int) -> int:
    """Embedding width for a vocabulary: fastai's rule `1.6 * n^0.56`, capped at 32."""
    return int(min(32, max(2, round(1.6 * categories**0.56))))


class TablePreprocessing:
    """Builds the preprocessing part of a table model from column specs and statistics.

    Args:
        specs: `{column: ColumnSpec}` from `infer_column_types` (identifiers are left out).
        stats: `summarize_table(...)` of the training rows.
        max_categories: Largest vocabulary kept per categorical column.
        ple_bins: Quantile bins of the piecewise-linear encoding.
        text_tokens: Vocabulary size of text columns.
    """

    def __init__(self, specs: Mapping[str, ColumnSpec], stats: TableStatistics,
                 max_categories: int = 1000, ple_bins: int = 16, text_tokens: int = 5000):
        self.specs = used_columns(specs)
        if not self.specs:
            raise ValueError("The table has no usable column (every column is an identifier or ignored).")
        self.ignored = [name for name in specs if name not in self.specs]
        self.rows = stats.rows
        self.settings: dict[str, dict] = {}
        for name, spec in self.specs.items():
            column = stats.columns[name]
            if spec.kind == "numeric":
                self.settings[name] = {
                    "fill_value": column.median, "mean": column.mean, "std": column.std,
                    "indicator": column.missing > 0, "boundaries": column.quantiles(ple_bins),
                    "missing_fraction": column.missing / max(1, column.count),
                }
            elif spec.kind == "categorical":
                vocabulary = column.vocabulary(max_categories)
                distinct = len(column.categories)
                self.settings[name] = {
                    "vocabulary": vocabulary, "distinct": distinct,
                    "oov_buckets": 1 if distinct <= max_categories else 16,
                    "missing_fraction": column.missing / max(1, column.count),
                }
            elif spec.kind == "datetime":
                self.settings[name] = self._datetime_settings(spec, column.sample.sample(), column)
            else:
                self.settings[name] = self._text_settings(column.sample.sample(), text_tokens, column)

    # ------------------------------------------------------------------ statistics
    @staticmethod
    def _datetime_settings(spec: ColumnSpec, sample: np.ndarray, column) -> dict:
        year, _, _, hours, days, valid = parse_dates(tf.constant(np.asarray(sample, dtype=str)), spec.date_order) \
            if len(sample) else (None,) * 6
        settings = {"order": spec.date_order, "missing_fraction": column.missing / max(1, column.count)}
        if valid is not None and bool(tf.reduce_any(valid)):
            year = year.numpy()[valid.numpy()]
            time = (days + hours / 24.0).numpy()[valid.numpy()]
            settings.update(year_mean=float(year.mean()), year_std=float(year.std()) or 1.0,
                            time_mean=float(time.mean()), time_std=float(time.std()) or 1.0)
        return settings

    @staticmethod
    def _text_settings(sample: np.ndarray, tokens: int, column) -> dict:
        text = TextVocabulary.adapt(sample if len(sample) else np.array(["empty"]), max_tokens=tokens)
        return {"text": text, "missing_fraction": column.missing / max(1, column.count)}

    # ------------------------------------------------------------------ graph
    def inputs(self) -> dict[str, keras.KerasTensor]:
        """One Keras input per used column: `[batch]` float32 or string, named `input_name`."""
        return {
            spec.input_name: keras.Input(shape=(), dtype=spec.input_dtype, name=spec.input_name)
            for spec in self.specs.values()
        }

    def input_signature(self) -> dict[str, tf.TensorSpec]:
        """The serving signature's inputs: `{input_name: TensorSpec([None], dtype)}`."""
        return {
            spec.input_name: tf.TensorSpec([None], tf.as_dtype(spec.input_dtype), name=spec.input_name)
            for spec in self.specs.values()
        }

    def decoder(self) -> keras.Model:
        """Raw columns -> the fixed, non-trainable *decoded* tensors every trial starts from.

        Per column (keys `<input name>__<part>`): numbers imputed (`filled`), standardised with
        their missing indicator (`standard`) and alone (`z`); categories as vocabulary indices
        (`index`); dates as calendar features (`calendar`); text passed through (`text`). A search decodes its
        rows once (`tf.data` caches them) and trains every trial on them; the export puts the
        decoder in front of the trial's model, so the SavedModel still takes raw rows.
        """
        raw = self.inputs()
        decoded = {}
        for index, (name, spec) in enumerate(self.specs.items()):
            x, tag, settings = raw[spec.input_name], f"c{index}", self.settings[name]
            key = spec.input_name
            if spec.kind == "numeric":
                statistics = (settings["fill_value"], settings["mean"], settings["std"])
                decoded[f"{key}__filled"] = MissingNumber(*statistics, filled_only=True, name=f"{tag}_filled")(x)
                decoded[f"{key}__standard"] = MissingNumber(*statistics, indicator=settings["indicator"],
                                                           name=f"{tag}_standard")(x)
                decoded[f"{key}__z"] = MissingNumber(*statistics, indicator=False, name=f"{tag}_z")(x)
            elif spec.kind == "categorical":
                if spec.input_dtype == "float32":
                    x = IntegerTokens(name=f"{tag}_tokens")(x)
                decoded[f"{key}__index"] = keras.layers.StringLookup(
                    vocabulary=settings["vocabulary"] or ["<none>"], num_oov_indices=settings["oov_buckets"],
                    output_mode="int", name=f"{tag}_lookup")(x)
            elif spec.kind == "datetime":
                kwargs = {k: v for k, v in settings.items() if k != "missing_fraction"}
                decoded[f"{key}__calendar"] = DatetimeFeatures(name=f"{tag}_calendar", **kwargs)(x)
            else:
                decoded[f"{key}__text"] = x
        return keras.Model(raw, decoded, name="decoder")

    def decoded_inputs(self) -> dict[str, keras.KerasTensor]:
        """Keras inputs matching the decoder's outputs (what a trial's model takes)."""
        inputs = {}
        for spec in self.specs.values():
            key, settings = spec.input_name, self.settings[spec.name]
            if spec.kind == "numeric":
                width = 2 if settings["indicator"] else 1
                inputs[f"{key}__filled"] = keras.Input((), name=f"{key}__filled")
                inputs[f"{key}__standard"] = keras.Input((width,), name=f"{key}__standard")
                inputs[f"{key}__z"] = keras.Input((1,), name=f"{key}__z")
            elif spec.kind == "categorical":
                inputs[f"{key}__index"] = keras.Input((), dtype="int64", name=f"{key}__index")
            elif spec.kind == "datetime":
                inputs[f"{key}__calendar"] = keras.Input((len(DATETIME_FEATURES),), name=f"{key}__calendar")
            else:
                inputs[f"{key}__text"] = keras.Input((), dtype="string", name=f"{key}__text")
        return inputs

    def features(self, decoded: Mapping[str, keras.KerasTensor], numeric_encoding: str = "standard",
                 categorical_encoding: str = "onehot") -> keras.KerasTensor:
        """The trial's feature vector from the decoded tensors, under its encodings."""
        if numeric_encoding not in NUMERIC_ENCODINGS:
            raise ValueError(f"`numeric_encoding` must be one of {NUMERIC_ENCODINGS}; received {numeric_encoding!r}.")
        if categorical_encoding not in CATEGORICAL_ENCODINGS:
            raise ValueError(
                f"`categorical_encoding` must be one of {CATEGORICAL_ENCODINGS}; received {categorical_encoding!r}."
            )
        parts = []
        for index, (name, spec) in enumerate(self.specs.items()):
            key, tag, settings = spec.input_name, f"c{index}", self.settings[name]
            if spec.kind == "numeric":
                parts.append(self._numeric(decoded, key, settings, numeric_encoding, tag))
            elif spec.kind == "categorical":
                parts.append(self._categorical(decoded[f"{key}__index"], settings, categorical_encoding, tag))
            elif spec.kind == "datetime":
                parts.append(decoded[f"{key}__calendar"])
            else:
                tfidf = settings["text"].tfidf(name=f"{tag}_tfidf")(decoded[f"{key}__text"])
                parts.append(keras.layers.Dense(16, activation="relu", name=f"{tag}_text")(tfidf))
        return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)

    @staticmethod
    def _numeric(decoded, key: str, settings: dict, encoding: str, tag: str):
        standard = decoded[f"{key}__standard"]
        if encoding == "standard":
            return standard
        if encoding == "ple":
            code = PiecewiseLinearEncoding(settings["boundaries"], name=f"{tag}_ple")(decoded[f"{key}__filled"])
            return keras.layers.Concatenate(name=f"{tag}_num")([code, standard])
        periodic = PeriodicEncoding(8, name=f"{tag}_periodic")(decoded[f"{key}__z"])
        dense = keras.layers.Dense(8, activation="relu", name=f"{tag}_plr")(periodic)
        return keras.layers.Concatenate(name=f"{tag}_num")([dense, standard])

    @staticmethod
    def _categorical(index, settings: dict, encoding: str, tag: str):
        size = len(settings["vocabulary"] or ["<none>"]) + settings["oov_buckets"]
        if encoding == "onehot":
            return keras.layers.CategoryEncoding(size, output_mode="one_hot", name=f"{tag}_onehot")(index)
        return keras.layers.Embedding(size, embedding_size(size), name=f"{tag}_embedding")(index)

    # ------------------------------------------------------------------ description
    def get_config(self) -> dict:
        """The columns for tfmeta.json: name, input, kind, and vocabulary sizes / missing share."""
        columns = []
        for name, spec in self.specs.items():
            settings = self.settings[name]
            entry = {"name": name, "input": spec.input_name, "dtype": "float" if spec.input_dtype == "float32" else "string",
                     "kind": spec.kind, "seen_as": spec.source, "set_by_user": spec.user_set,
                     "missing_fraction": round(float(settings["missing_fraction"]), 4)}
            if spec.kind == "categorical":
                entry.update(vocabulary_size=len(settings["vocabulary"]), distinct_values=settings["distinct"],
                             oov_buckets=settings["oov_buckets"])
            if spec.kind == "text":
                entry["vocabulary_size"] = len(settings["text"].vocabulary)
            if spec.kind == "datetime":
                entry["date_order"] = spec.date_order
            columns.append(entry)
        return {"kind": "table", "rows": self.rows, "columns": columns, "ignored_columns": self.ignored}
