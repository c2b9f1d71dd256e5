"""Encoder backbones shared by the meta-learners.

`conv4` is the four-block convolutional encoder of Vinyals et al. (2016), used by MAML,
prototypical networks and most few-shot papers: 4 x [3x3 conv (64), BatchNorm, ReLU,
2x2 max-pool], then flatten. On 28x28 Omniglot it gives a 64-dimensional embedding.

`concatenate_encoders` joins independently trained encoders into one whose embedding is the
concatenation of theirs: an ensemble that any metric learner uses as a single encoder.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

from tfmeta._deprecation import moved_names

# Test-time augmentation moved to its own module; the old spellings keep working.
__getattr__ = moved_names(
    __name__,
    dict.fromkeys(
        ["ViewAverage", "ShiftAverage", "AffineAverage", "with_test_time_shifts",
         "with_test_time_augmentation", "draw_test_time_transforms", "affine_views",
         "bilinear_taps", "IDENTITY_TRANSFORM"],
        "tfmeta.test_time_augmentation",
    ),
)


def conv4(
    input_shape: Sequence[int] = (28, 28, 1),
    filters: int = 64,
    blocks: int = 4,
    name: str = "conv4",
    final_pool: bool = True,
) -> keras.Model:
    """Builds the conv4 encoder.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`.
        filters: Filters in every conv layer.
        blocks: Number of conv blocks (each halves the spatial size).
        name: Model name.
        final_pool: Whether the last block max-pools too. `False` keeps a
            spatial map in the embedding (3 x 3 x `filters` = 576 values at
            28 x 28 instead of 64), so distances compare where strokes are.

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
        if final_pool or i < blocks - 1:
            h = layers.MaxPooling2D(2, name=f"pool{i + 1}")(h)
    outputs = layers.Flatten(name="embedding")(h)
    return keras.Model(inputs, outputs, name=name)


def conv4_blocks(image_size: int) -> int:
    """Number of conv4 blocks whose max-pools bring an `image_size` square image down to 1 x 1.

    Every block halves the side (rounding down), so 28 x 28 Omniglot needs the usual 4 blocks
    (28, 14, 7, 3, 1) and 56 x 56 needs 5. Use it to keep conv4's 64-value embedding at larger
    input sizes.

    Example:

    >>> conv4((56, 56, 1), blocks=conv4_blocks(56)).output_shape
    (None, 64)
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 2:
        raise ValueError(f"`image_size` must be an integer >= 2; received {image_size!r}.")
    blocks, side = 0, int(image_size)
    while side > 1:
        side //= 2
        blocks += 1
    return blocks


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


def concatenate_encoders(encoders: Sequence[keras.Model], name: str | None = None) -> keras.Model:
    """Joins encoders into one whose embedding is the concatenation of their embeddings.

    This is how several independently trained metric learners become one ensemble model that
    exports and serves like a single encoder. Under squared Euclidean distance (the
    prototypical network's) the joint distance is the *sum* of the members' distances, so a
    `PrototypicalNetwork` on the joint encoder adds the members' logits: a product of experts.
    Under other distances the members' embeddings should have comparable scales.

    The members keep their own weights (shared, not copied), so they are best trained first
    and joined afterwards; training the joint encoder from scratch is just a wider network.

    Args:
        encoders: Two or more distinct, built `keras.Model`s with the same input shape, each
            mapping images to flat `[batch, dim]` embeddings.
        name: Model name (default: `"encoder_ensemble"`).

    Returns:
        A `keras.Model` with the members' input shape and `sum(dims)` outputs.

    Example:

    >>> members = [conv4((28, 28, 1)) for _ in range(3)]  # train each one, then:
    >>> joint = concatenate_encoders(members)
    >>> joint.output_shape
    (None, 192)
    >>> protonet = tfmeta.PrototypicalNetwork(joint)
    """
    if not isinstance(encoders, (list, tuple)) or len(encoders) < 2:
        count = len(encoders) if isinstance(encoders, (list, tuple)) else type(encoders).__name__
        raise ValueError(f"`encoders` must be a list of at least 2 keras.Models; received {count!r}.")
    for i, encoder in enumerate(encoders):
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"`encoders[{i}]` must be a keras.Model; received {type(encoder).__name__}.")
        if len(encoder.output_shape) != 2:
            raise ValueError(
                f"`encoders[{i}]` must output flat [batch, dim] embeddings; received output shape "
                f"{encoder.output_shape}."
            )
    if len({id(e) for e in encoders}) != len(encoders):
        raise ValueError("`encoders` holds the same encoder object more than once; an ensemble needs distinct members.")
    shapes = [tuple(e.input_shape[1:]) for e in encoders]
    if len(set(shapes)) != 1:
        raise ValueError(f"`encoders` must share one input shape; received input shapes {shapes}.")
    inputs = keras.Input(shapes[0], name="image")
    # Each member sits in its own named container, so members with the same name can be joined.
    outputs = [keras.Sequential([e], name=f"member_{i}")(inputs) for i, e in enumerate(encoders)]
    joined = layers.Concatenate(name="concatenate")(outputs)
    return keras.Model(inputs, joined, name=name or "encoder_ensemble")


class EncoderConfigMixin:
    """`get_config` / `from_config` for a Keras layer or model built around one `encoder`.

    The encoder is serialised as a nested Keras object, so `keras.models.load_model` rebuilds
    it; every other constructor argument goes through the class's own `get_config`. Mix it in
    before the Keras base class: `class MyLearner(EncoderConfigMixin, keras.Model)`.
    """

    def get_config(self) -> dict:
        config = super().get_config()
        config["encoder"] = keras.saving.serialize_keras_object(self.encoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

