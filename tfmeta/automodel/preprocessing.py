"""The preprocessing that lives inside AutoModel's Keras models: cast, channel axis, normalisation.

Models take the raw inputs the user gave to `fit` (same dtype and example shape), so the
exported SavedModel needs no Python preprocessing at serving time.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np
from keras import layers

from tfmeta.multi_worker_fit import FunctionalModel


class Preprocessing:
    """Normalisation statistics and input spec learned from the training inputs.

    Args:
        x: Raw training inputs, (N, F) tables or (N, H, W[, C]) images.
        kind: `"table"` or `"image"`.

    Example:

    >>> pre = Preprocessing(x_train, "image")
    >>> model = pre.wrap(lambda shape: keras.Sequential([keras.Input(shape), layers.Flatten(), layers.Dense(10)]))
    """

    def __init__(self, x: np.ndarray, kind: str):
        self.kind = kind
        self.raw_shape = tuple(int(d) for d in x.shape[1:])
        self.raw_dtype = np.dtype(x.dtype).name
        xf = x.astype(np.float32)
        if kind == "image" and xf.ndim == 3:
            xf = xf[..., None]
        axes = tuple(range(xf.ndim - 1))
        self.mean = xf.mean(axis=axes)
        self.variance = np.maximum(xf.var(axis=axes), 1e-6)

    @property
    def model_input_shape(self) -> tuple[int, ...]:
        """Shape of one example after preprocessing (images always get a channel axis)."""
        if self.kind == "image" and len(self.raw_shape) == 2:
            return self.raw_shape + (1,)
        return self.raw_shape

    def transform(self, x: np.ndarray) -> np.ndarray:
        """What `apply` computes, on a numpy batch: float32 `[N, *model_input_shape]`.

        For code that trains on preprocessed arrays outside the wrapped model (the shared
        supernet of a weight-sharing search).
        """
        xf = np.asarray(x, np.float32)
        if self.kind == "image" and len(self.raw_shape) == 2:
            xf = xf[..., None]
        return ((xf - self.mean) / np.sqrt(self.variance)).astype(np.float32)

    def apply(self, inputs):
        """Applies cast, channel axis and normalisation to a Keras tensor."""
        h = keras.ops.cast(inputs, "float32")
        if self.kind == "image" and len(self.raw_shape) == 2:
            h = keras.ops.expand_dims(h, -1)
        return layers.Normalization(axis=-1, mean=self.mean, variance=self.variance, name="normalization")(h)

    def wrap(self, core_builder: Callable[[Sequence[int]], keras.Model], name: str = "automodel") -> keras.Model:
        """Builds `raw input -> preprocessing -> core_builder(input shape)` as one Keras model."""
        inputs = keras.Input(self.raw_shape, dtype=self.raw_dtype, name="x")
        core = core_builder(self.model_input_shape)
        return FunctionalModel(inputs, core(self.apply(inputs)), name=name)

    def get_config(self) -> dict:
        """JSON description for tfmeta.json."""
        return {"kind": self.kind, "shape": [None, *self.raw_shape], "dtype": self.raw_dtype}
