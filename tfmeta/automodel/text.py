"""AutoModel on raw text: a list or array of strings in, the export takes raw strings.

`TextTask` adapts one vocabulary on the training text (`TextVocabulary`), then the search
(`raw_data`) chooses among TF-IDF bags of n-grams, 1-D convolutions and bidirectional GRUs
with their training settings (`text_models.text_space`). A missing text (None or NaN) is the
empty string.

Example:

>>> am = tfmeta.AutoModel(task="classification", max_trials=3)
>>> am.fit(["Loved this place.", "Crust is not good.", ...], [1, 0, ...])
>>> am.predict(["The food was great."])
"""

from __future__ import annotations

from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from tfmeta.automodel import text_models
from tfmeta.automodel.raw_data import RawDataTask
from tfmeta.automodel.targets import Targets, split_rows
from tfmeta.automodel.text_vocabulary import TextVocabulary

#: Texts predicted at a time.
PREDICT_ROWS = 4096
#: The serving input's name.
INPUT_NAME = "text"


def as_texts(x, name: str = "x") -> np.ndarray:
    """`x` as a 1-D object array of strings (None and NaN become "").

    Raises:
        TypeError: An element is neither a string nor missing.
    """
    values = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=object).reshape(-1)
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, str):
            out[i] = value
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            out[i] = ""
        else:
            raise TypeError(f"`{name}` must hold strings (text); received {type(value).__name__} {value!r} "
                            f"at position {i}.")
    return out


class TextTask(RawDataTask):
    """Classification or regression on raw strings (see the module docstring)."""

    kind = "text"

    def prepare(self, x, y, validation_split, validation_data) -> None:
        self.texts = as_texts(x)
        if y is None:
            raise ValueError("`y` is required: one target per text.")
        raw = np.asarray(y, dtype=object).reshape(-1) if np.ndim(y) <= 1 else np.asarray(y)
        if len(raw) != len(self.texts):
            raise ValueError(f"`x` and `y` must have the same length; received {len(self.texts)} texts and "
                             f"{len(raw)} targets.")
        self.targets = Targets(self.am.task)
        self.y, labelled = self.targets.fit(raw)
        if self.classification:
            self.classes = self.targets.classes
        if validation_data is not None:
            vx, vy = validation_data
            self.validation_texts = as_texts(vx, "validation_data[0]")
            self.validation_y, ok = self.targets.encode(np.asarray(vy, dtype=object))
            self.validation_texts, self.validation_y = self.validation_texts[ok], self.validation_y[ok]
            rows = np.flatnonzero(labelled)
            self.parts = {"search": rows, "all": rows}
        else:
            self.validation_texts = None
            self.parts = split_rows(self.y, labelled, validation_split, self.classification, self.am.seed or 0)
        self.rows = len(self.parts["all"])
        self.vocabulary = TextVocabulary.adapt(self.texts[self.parts["all"]], seed=self.am.seed or 0)
        self.am._log(f"[text] {self.rows} texts, vocabulary of {len(self.vocabulary.vocabulary)} n-grams, "
                     f"{self.vocabulary.sequence_length} tokens kept per text for the sequence models")

    def dataset(self, part: str, batch_size: int, shuffle: bool = False) -> tf.data.Dataset:
        if part == "validation" and self.validation_texts is not None:
            texts, targets = self.validation_texts, self.validation_y
        else:
            rows = self.parts[part]
            texts, targets = self.texts[rows], self.y[rows]
        ds = tf.data.Dataset.from_tensor_slices((texts.astype(str), targets))
        if shuffle:
            ds = ds.shuffle(len(texts), seed=self.am.seed or 0, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def predict_batches(self, x) -> Iterator[tf.Tensor]:
        texts = as_texts(x)
        for start in range(0, len(texts), PREDICT_ROWS):
            yield tf.constant(texts[start : start + PREDICT_ROWS].astype(str))

    def evaluation_batches(self, x, y):
        texts = as_texts(x)
        encoded, ok = self.targets.encode(np.asarray(y, dtype=object).reshape(-1))
        if len(encoded) != len(texts):
            raise ValueError(f"`x` and `y` must have the same length; received {len(texts)} and {len(encoded)}.")
        texts, encoded = texts[ok], encoded[ok]
        for start in range(0, len(texts), PREDICT_ROWS):
            yield tf.constant(texts[start : start + PREDICT_ROWS].astype(str)), encoded[start : start + PREDICT_ROWS]

    def space(self):
        return text_models.text_space(self.rows)

    def initial_architectures(self):
        return text_models.initial_text_architectures(self.space())

    def build(self, arch):
        outputs = len(self.classes) if self.classification else 1
        mean, std = (0.0, 1.0) if self.classification else (self.targets.mean, self.targets.std)
        return text_models.build_text_model(self.vocabulary, self.space(), arch, outputs, self.am.task,
                                            input_name=INPUT_NAME, target_mean=mean, target_std=std)

    def model_inputs(self):
        return keras.Input(shape=(), dtype="string", name=INPUT_NAME)

    def endpoints(self, model, outputs) -> dict:
        def serve(text):
            return outputs(model(text, training=False))

        return {"serving_default": (serve, [tf.TensorSpec([None], tf.string, name=INPUT_NAME)])}

    def describe(self) -> dict:
        return {"kind": "text", "input": INPUT_NAME, "dtype": "string", "shape": [None],
                "rows": self.rows, **self.vocabulary.get_config(), "target": self.targets.get_config()}

    def summary(self) -> str:
        return (f"text: {self.rows} training texts, vocabulary {len(self.vocabulary.vocabulary)} n-grams, "
                f"sequence length {self.vocabulary.sequence_length}")
