"""Encoder backbones shared by the meta-learners.

`conv4` is the four-block convolutional encoder of Vinyals et al. (2016), used by MAML,
prototypical networks and most few-shot papers: 4 x [3x3 conv (64), BatchNorm, ReLU,
2x2 max-pool], then flatten. On 28x28 Omniglot it gives a 64-dimensional embedding.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers


def conv4(
    input_shape: Sequence[int] = (28, 28, 1),
    filters: int = 64,
    blocks: int = 4,
    name: str = "conv4",
) -> keras.Model:
    """Builds the conv4 encoder.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`.
        filters: Filters in every conv layer.
        blocks: Number of conv blocks (each halves the spatial size).
        name: Model name.

    Returns:
        A `keras.Model` mapping images to flat embeddings.

    Example:

    >>> encoder = conv4((28, 28, 1))
    >>> encoder.output_shape
    (None, 64)
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    h = inputs
    for i in range(blocks):
        h = layers.Conv2D(filters, 3, padding="same", name=f"conv{i + 1}")(h)
        h = layers.BatchNormalization(name=f"bn{i + 1}")(h)
        h = layers.ReLU(name=f"relu{i + 1}")(h)
        h = layers.MaxPooling2D(2, name=f"pool{i + 1}")(h)
    outputs = layers.Flatten(name="embedding")(h)
    return keras.Model(inputs, outputs, name=name)


def mlp(
    input_shape: Sequence[int],
    hidden: Sequence[int] = (40, 40),
    outputs: int | None = None,
    activation: str = "relu",
    name: str = "mlp",
) -> keras.Model:
    """Builds a multi-layer perceptron (the MAML sinusoid network is `mlp((1,), (40, 40), 1)`).

    Args:
        input_shape: Shape of one example; flattened first if it has more than one axis.
        hidden: Units of each hidden layer.
        outputs: Units of a final linear layer, or `None` to end at the last hidden layer.
        activation: Hidden activation.
        name: Model name.
    """
    inputs = keras.Input(tuple(input_shape), name="features")
    h = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for i, units in enumerate(hidden):
        h = layers.Dense(units, activation=activation, name=f"dense{i + 1}")(h)
    if outputs is not None:
        h = layers.Dense(outputs, name="head")(h)
    return keras.Model(inputs, h, name=name)
