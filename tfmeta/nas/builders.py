"""Models of the non-cell spaces, and `build_model`, the one entry point for every built-in space.

- `build_macro_model(space, arch, ...)`: one searched op per layer (identity or MobileNetV2
  inverted residual blocks), a NAS-Bench-Macro-like layout.
- `build_dense_model(space, arch, ...)`: dense blocks for tabular data.
- `build_model(space, arch, ...)`: picks the builder of the space type (cells from
  `tfmeta.nas.cells.build_cell_model`, macro layers, dense blocks, Zoph & Le's layers from
  `tfmeta.nas.layerwise_builder.build_layerwise_model`).

Example:

>>> from tfmeta.nas.space import DenseSpace
>>> space = DenseSpace(num_layers=2, units=(0, 32))
>>> build_model(space, space.decode([1, 0, 0, 0]), (5,), 3).output_shape
(None, 3)
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.operations import BN_MOMENTUM
from tfmeta.nas.layerwise_builder import build_layerwise_model
from tfmeta.nas.space import Architecture, DenseSpace, LayerwiseSpace, MacroSpace, MicroCellSpace


def _mbconv(x, filters: int, kernel: int, expand: int, name: str):
    """MobileNetV2 inverted residual block (stride 1, residual when shapes match)."""
    inp = x
    c = x.shape[-1]
    x = layers.Conv2D(c * expand, 1, use_bias=False, name=f"{name}_expand")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn0")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(x)
    return layers.Add()([inp, x]) if c == filters else x


def build_macro_model(
    space: MacroSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    filters: int = 16,
    final_activation: str | None = "softmax",
    name: str = "macro_net",
) -> keras.Model:
    """One searched op per layer: `identity`, `mbconv_k{K}_e{E}` (MobileNetV2 blocks).

    NAS-Bench-Macro-like layout: stem conv, three stages over the searched layers with a fixed
    stride-2 conv (filters x2) between stages, pooling, classifier.

    Example:

    >>> space = MacroSpace(num_layers=3)
    >>> build_macro_model(space, space.from_key("120"), (8, 8, 1), 10).output_shape
    (None, 10)
    """
    if not isinstance(space, MacroSpace):
        raise ValueError(f"`space` must be a MacroSpace; received {type(space).__name__}.")
    inputs = keras.Input(tuple(input_shape))
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    n = space.num_layers
    boundaries = {n // 3, (2 * n) // 3} - {0}
    f = filters
    for i, op in enumerate(space.layer_ops(arch)):
        if i in boundaries:
            f *= 2
            x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False, name=f"down{i}")(x)
            x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
        if op == "identity":
            continue
        if not op.startswith("mbconv_k"):
            raise ValueError(f"Unknown macro op {op!r}: expected 'identity' or 'mbconv_k<K>_e<E>'.")
        k, e = op[len("mbconv_k"):].split("_e")
        x = _mbconv(x, f, int(k), int(e), name=f"layer{i}")
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation=final_activation)(x)
    return FunctionalModel(inputs, outputs, name=name)


def build_dense_model(
    space: DenseSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    outputs: int,
    final_activation: str | None = "softmax",
    name: str = "dense_net",
) -> keras.Model:
    """Dense blocks for tables: per searched layer `Dense(units, relu)` + dropout, or a skip.

    Example:

    >>> space = DenseSpace(num_layers=2)
    >>> build_dense_model(space, space.sample(np.random.default_rng(0)), (5,), 3).output_shape
    (None, 3)
    """
    if not isinstance(space, DenseSpace):
        raise ValueError(f"`space` must be a DenseSpace; received {type(space).__name__}.")
    if not isinstance(outputs, (int, np.integer)) or outputs < 1:
        raise ValueError(f"`outputs` must be a positive int; received {outputs!r}.")
    inputs = keras.Input(tuple(input_shape))
    x = layers.Flatten()(inputs) if len(tuple(input_shape)) > 1 else inputs
    for i, (units, rate) in enumerate(space.layers(arch)):
        if units == 0:
            continue
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        if rate:
            x = layers.Dropout(rate)(x)
    out = layers.Dense(outputs, activation=final_activation, name="head")(x)
    return FunctionalModel(inputs, out, name=name)


def build_model(space, arch: Architecture, input_shape: Sequence[int], num_classes: int, **kwargs) -> keras.Model:
    """Dispatches to the builder of the space type (cells, macro layers, dense blocks, layer-wise)."""
    if isinstance(space, MicroCellSpace):
        return build_cell_model(space, arch, input_shape, num_classes, **kwargs)
    if isinstance(space, MacroSpace):
        return build_macro_model(space, arch, input_shape, num_classes, **kwargs)
    if isinstance(space, DenseSpace):
        return build_dense_model(space, arch, input_shape, num_classes, **kwargs)
    if isinstance(space, LayerwiseSpace):
        return build_layerwise_model(space, arch, input_shape, num_classes, **kwargs)
    raise ValueError(
        f"`space` must be a MicroCellSpace, MacroSpace, DenseSpace or LayerwiseSpace to build a model; received "
        f"{type(space).__name__} (pass your own build function for custom spaces)."
    )
