"""`build_layerwise_model`: the network of a `LayerwiseSpace` architecture (Zoph & Le 2017).

Each layer is a convolution (its searched height x width kernel, filter count and stride)
followed by batch norm and ReLU. Its input is the channel-wise concatenation of the layers
it selected; maps of different sizes (after strided layers) are zero-padded at the bottom and
right to the largest, as the paper pads them; a layer that selected none reads the image. The
layers that no other layer reads are concatenated the same way, globally average-pooled and
classified.

Example:

>>> import numpy as np
>>> from tfmeta.nas.space import LayerwiseSpace
>>> space = LayerwiseSpace(num_layers=3)
>>> model = build_layerwise_model(space, space.sample(np.random.default_rng(0)), (8, 8, 1), 10)
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.nas.operations import BN_MOMENTUM
from tfmeta.nas.space import Architecture, LayerwiseSpace


def concat_padded(tensors: list, name: str):
    """Concatenates maps along channels, smaller ones zero-padded (bottom, right) to the largest."""
    if len(tensors) == 1:
        return tensors[0]
    height = max(int(t.shape[1]) for t in tensors)
    width = max(int(t.shape[2]) for t in tensors)
    padded = [
        t if (t.shape[1], t.shape[2]) == (height, width)
        else layers.ZeroPadding2D(((0, height - int(t.shape[1])), (0, width - int(t.shape[2]))))(t)
        for t in tensors
    ]
    return layers.Concatenate(axis=-1, name=name)(padded)


def build_layerwise_model(
    space: LayerwiseSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    dropout: float = 0.0,
    final_activation: str | None = "softmax",
    name: str = "layerwise_net",
) -> keras.Model:
    """Builds the convolutional network of `arch`, one searched layer after another.

    Args:
        space: The `LayerwiseSpace` of `arch`.
        arch: The architecture.
        input_shape: Image shape `(H, W, C)`.
        num_classes: Output units.
        dropout: Dropout before the classifier.
        final_activation: `"softmax"` for classification, None for logits or regression.
        name: Model name.

    Returns:
        An uncompiled `keras.Model`; layer i's output is the layer named `layer{i}_relu`.
    """
    if not isinstance(space, LayerwiseSpace):
        raise ValueError(f"`space` must be a LayerwiseSpace; received {type(space).__name__}.")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (H, W, C); received {input_shape}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int; received {num_classes!r}.")
    inputs = keras.Input(input_shape)
    outputs = []
    for i, spec in enumerate(space.layers(arch)):
        sources = [outputs[j] for j in spec["inputs"]] or [inputs]
        x = concat_padded(sources, f"layer{i}_inputs")
        x = layers.Conv2D(spec["filters"], (spec["height"], spec["width"]), strides=spec["stride"],
                          padding="same", use_bias=False, name=f"layer{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"layer{i}_bn")(x)
        outputs.append(layers.ReLU(name=f"layer{i}_relu")(x))
    x = concat_padded([outputs[i] for i in space.loose_ends(arch)], "loose_ends")
    x = layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    out = layers.Dense(num_classes, activation=final_activation, name="classifier")(x)
    return FunctionalModel(inputs, out, name=name)
