"""A text vocabulary adapted once on the training text, and the Keras layers built from it.

Keras's `TextVectorization.adapt` learns the vocabulary (and, in TF-IDF mode, the inverse
document frequencies) of one layer; a search builds a new model per trial, so the vocabulary is
learned once here and every trial's layers are built from it (`tfidf()`, `tokens()`).

Example:

>>> text = TextVocabulary.adapt(["good food", "bad service", "good service"])
>>> text.tfidf()(np.array(["good food"], dtype=object)).shape
TensorShape([1, 6])
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf


def adapted_idf_weights(vectorizer: keras.layers.TextVectorization) -> list[float]:
    """The IDF weights a TF-IDF `TextVectorization` learned in `adapt()`, without the OOV entry.

    Keras keeps them on the layer's inner lookup (there is no public getter); they are read
    once here so that other layers can be built with `idf_weights=`.
    """
    weights = keras.ops.convert_to_numpy(vectorizer._lookup_layer.idf_weights)
    return [float(w) for w in weights[1:]]


@dataclasses.dataclass
class TextVocabulary:
    """A vocabulary (and its IDF weights) adapted once on the training text.

    Attributes:
        vocabulary: Tokens (unigrams and bigrams) by frequency, without the OOV token.
        idf_weights: Their inverse document frequencies (for TF-IDF).
        sequence_length: Tokens kept per text for the sequence models (the 95th percentile
            of the training texts' lengths, at least 8, at most 256).
    """

    vocabulary: list
    idf_weights: list
    sequence_length: int

    @classmethod
    def adapt(cls, texts, max_tokens: int = 20_000, sample: int = 200_000, seed: int = 0) -> "TextVocabulary":
        """Adapts on at most `sample` texts (numpy strings or objects)."""
        texts = np.asarray(texts, dtype=object).astype(str)
        if len(texts) > sample:
            texts = np.random.default_rng(seed).choice(texts, sample, replace=False)
        vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode="tf_idf", ngrams=2)
        vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
        lengths = np.array([len(t.split()) for t in texts]) if len(texts) else np.array([8])
        return cls(
            vocabulary=vectorizer.get_vocabulary()[1:],
            idf_weights=adapted_idf_weights(vectorizer),
            sequence_length=int(np.clip(np.percentile(lengths, 95), 8, 256)),
        )

    def tfidf(self, name: str = "tfidf") -> keras.layers.TextVectorization:
        """Strings -> TF-IDF vectors over the vocabulary."""
        return keras.layers.TextVectorization(vocabulary=self.vocabulary or ["<none>"],
                                              idf_weights=self.idf_weights or [1.0],
                                              output_mode="tf_idf", ngrams=2, name=name)

    def tokens(self, name: str = "tokens") -> keras.layers.TextVectorization:
        """Strings -> `[sequence_length]` token ids (unigrams of the vocabulary)."""
        unigrams = [t for t in self.vocabulary if " " not in t] or ["<none>"]
        return keras.layers.TextVectorization(vocabulary=unigrams, output_mode="int",
                                              output_sequence_length=self.sequence_length, name=name)

    def get_config(self) -> dict:
        return {"vocabulary_size": len(self.vocabulary), "sequence_length": self.sequence_length}
