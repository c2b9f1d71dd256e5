"""Encoder backbones shared by the meta-learners.

`conv4` is the four-block convolutional encoder of Vinyals et al. (2016), used by MAML,
prototypical networks and most few-shot papers: 4 x [3x3 conv (64), BatchNorm, ReLU,
2x2 max-pool], then flatten. On 28x28 Omniglot it gives a 64-dimensional embedding.

`with_test_time_shifts` wraps any encoder so that inference averages its embedding over
translated copies of the input (test-time augmentation that travels with the exported model);
`with_test_time_augmentation` does the same over fixed random affine distortions drawn from the
training augmentation (`tfmeta.data.augment.RandomAffine` by default).

`concatenate_encoders` joins independently trained encoders into one whose embedding is the
concatenation of theirs: an ensemble that any metric learner uses as a single encoder.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import layers


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


class ViewAverage(layers.Layer):
    """Base of the test-time augmentation layers: averages an encoder's embedding over views.

    In training (`training=True`) the layer is the encoder itself. In inference it encodes
    `self.views` copies of every image (from `augmented_views`, view-major: view `v` of image
    `b` at `v * B + b`) in one batched pass and returns their mean embedding. Subclasses say
    how the views are made and add their own arguments to `get_config`.

    Args:
        encoder: A `keras.Model` mapping images `[B, H, W, C]` to embeddings.
    """

    views: int = 1

    def __init__(self, encoder: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def augmented_views(self, x):
        """`[views * B, H, W, C]` copies of `x`, view-major."""
        raise NotImplementedError

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        self.built = True

    def is_identity(self) -> bool:
        """True when the only view is the image itself (inference is then the encoder alone)."""
        return False

    def call(self, x, training=None):
        if training or self.is_identity():
            return self.encoder(x, training=training)
        e = self.encoder(self.augmented_views(x), training=False)
        e = keras.ops.reshape(e, (self.views, -1) + tuple(e.shape[1:]))
        return keras.ops.mean(e, axis=0)

    def compute_output_shape(self, input_shape):
        return self.encoder.compute_output_shape(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config["encoder"] = keras.saving.serialize_keras_object(self.encoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfmeta")
class ShiftAverage(ViewAverage):
    """Test-time augmentation: averages an encoder's embedding over small image translations.

    In training (`training=True`) the layer is the encoder itself. In inference it encodes the
    image and every copy translated by up to `max_shift` pixels along each axis (zero fill at
    the borders, `(2 * max_shift + 1) ** 2` views in one batched pass) and returns the mean
    embedding. Because it lives in the encoder, every learner that embeds examples (Siamese,
    prototypical, matching, relation) uses it in `predict_few_shot`, episodic evaluation and
    the exported SavedModel signatures alike, with no change to their code.

    Args:
        encoder: A `keras.Model` mapping images `[B, H, W, C]` to embeddings.
        max_shift: Largest translation in pixels (>= 0; 0 = the encoder alone).

    Example:

    >>> encoder = with_test_time_shifts(conv4((28, 28, 1)), max_shift=1)  # 9 views
    >>> model = tfmeta.SiameseNetwork(encoder, objective="contrastive")
    """

    def __init__(self, encoder: keras.Model, max_shift: int = 1, **kwargs):
        super().__init__(encoder, **kwargs)
        if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
            raise ValueError(f"`max_shift` must be an integer >= 0; received {max_shift!r}.")
        self.max_shift = max_shift
        self.views = (2 * max_shift + 1) ** 2

    def is_identity(self) -> bool:
        return self.max_shift == 0

    def augmented_views(self, x):
        s = self.max_shift
        padded = keras.ops.pad(x, [[0, 0], [s, s], [s, s], [0, 0]])
        h, w = keras.ops.shape(x)[1], keras.ops.shape(x)[2]
        return keras.ops.concatenate(
            [
                padded[:, s + dy : s + dy + h, s + dx : s + dx + w, :]
                for dy in range(-s, s + 1)
                for dx in range(-s, s + 1)
            ],
            axis=0,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config["max_shift"] = self.max_shift
        return config


def with_test_time_shifts(encoder: keras.Model, max_shift: int = 1, name: str | None = None) -> keras.Model:
    """Wraps `encoder` so that inference averages its embedding over translated copies.

    See `ShiftAverage`. Training is unchanged; the result has the encoder's input and output
    shapes, so it drops in wherever an encoder is accepted.

    Args:
        encoder: A built `keras.Model` mapping images to embeddings.
        max_shift: Largest translation in pixels; `1` gives 9 views, `2` gives 25.
        name: Model name (default: `"<encoder name>_tta"`).

    Example:

    >>> encoder = with_test_time_shifts(conv4((28, 28, 1)))
    >>> encoder.output_shape
    (None, 64)
    """
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"`encoder` must be a keras.Model; received {type(encoder).__name__}.")
    inputs = keras.Input(tuple(encoder.input_shape[1:]), name="image")
    outputs = ShiftAverage(encoder, max_shift=max_shift, name="shift_average")(inputs)
    return keras.Model(inputs, outputs, name=name or f"{encoder.name}_tta")


IDENTITY_TRANSFORM = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


def bilinear_taps(transforms: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Source pixels and weights of a bilinear warp with zero fill, for fixed transforms.

    Each transform row `[a0, a1, a2, b0, b1, b2, c0, c1]` maps output pixel `(x, y)` to input
    pixel `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`, `k = c0 x + c1 y + 1` (the format
    of `keras.ops.image.affine_transform`). Output pixel `p` of view `v` is
    `sum_t weights[v, p, t] * image[indices[v, p, t]]` over the 4 neighbours of its source
    point, with weight 0 for neighbours outside the image.

    Returns:
        `(indices, weights)`: `[V, height * width, 4]` int32 flat pixel indices and float32 weights.
    """
    t = np.asarray(transforms, dtype="float64").reshape(-1, 8)
    ys, xs = np.meshgrid(np.arange(height, dtype="float64"), np.arange(width, dtype="float64"), indexing="ij")
    xo, yo = xs.ravel()[None], ys.ravel()[None]
    k = t[:, 6:7] * xo + t[:, 7:8] * yo + 1.0
    xi = (t[:, 0:1] * xo + t[:, 1:2] * yo + t[:, 2:3]) / k
    yi = (t[:, 3:4] * xo + t[:, 4:5] * yo + t[:, 5:6]) / k
    x0, y0 = np.floor(xi), np.floor(yi)
    fx, fy = xi - x0, yi - y0
    indices, weights = [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        indices.append(np.where(inside, yy * width + xx, 0).astype("int32"))
        weights.append(np.where(inside, w, 0.0).astype("float32"))
    return np.stack(indices, -1), np.stack(weights, -1)


def affine_views(x, transforms):
    """`[V * B, H, W, C]` copies of images `x` `[B, H, W, C]` warped by each of `[V, 8]` transforms.

    View-major (view `v` of image `b` at `v * B + b`); bilinear, zero fill; each transform row
    maps an output pixel to an input pixel, as in `keras.ops.image.affine_transform`, whose
    results it reproduces. The warp is a gather with fixed weights (`bilinear_taps`, computed
    once per static image size), so it compiles with XLA (`jit_compile=True`) and runs on any
    backend. `H`, `W` and `C` must be static.
    """
    height, width, channels = (int(d) for d in x.shape[1:4])
    indices, weights = bilinear_taps(transforms, height, width)
    views = indices.shape[0]
    flat = keras.ops.reshape(x, (-1, height * width, channels))
    taps = keras.ops.take(flat, keras.ops.convert_to_tensor(indices.reshape(-1)), axis=1)
    taps = keras.ops.reshape(taps, (-1, views, height * width, 4, channels))
    w = keras.ops.cast(keras.ops.convert_to_tensor(weights[None, ..., None]), taps.dtype)
    warped = keras.ops.sum(taps * w, axis=3)  # [B, V, H*W, C]
    warped = keras.ops.transpose(warped, (1, 0, 2, 3))
    return keras.ops.reshape(warped, (-1, height, width, channels))


@keras.saving.register_keras_serializable(package="tfmeta")
class AffineAverage(ViewAverage):
    """Test-time augmentation: averages an encoder's embedding over fixed affine distortions.

    In training (`training=True`) the layer is the encoder itself. In inference it warps the
    image with each of `V` fixed projective transforms (`affine_views`), encodes the `V` views
    in one batched pass and returns their mean embedding. The transforms are part of the
    layer's config, so the exported model applies exactly the same views.
    `with_test_time_augmentation` draws them from the training augmentation.

    Args:
        encoder: A `keras.Model` mapping images `[B, H, W, C]` to embeddings.
        transforms: `[V, 8]` transforms, `V >= 1` (include the identity to keep the image itself).

    Example:

    >>> identity_and_shift = [[1, 0, 0, 0, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0, 0, 0]]
    >>> layer = AffineAverage(conv4((28, 28, 1)), identity_and_shift)  # 2 views
    """

    def __init__(self, encoder: keras.Model, transforms: Any, **kwargs):
        super().__init__(encoder, **kwargs)
        t = np.asarray(transforms, dtype="float32")
        if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] != 8 or not np.all(np.isfinite(t)):
            raise ValueError(
                "`transforms` must be a finite [views, 8] array with views >= 1; received shape "
                f"{t.shape}."
            )
        self.transforms = t
        self.views = int(t.shape[0])

    def augmented_views(self, x):
        return affine_views(x, self.transforms)

    def get_config(self) -> dict:
        config = super().get_config()
        config["transforms"] = self.transforms.tolist()
        return config


def draw_test_time_transforms(
    views: int, image_shape: Sequence[int], augment: Any = None, seed: int = 0
) -> np.ndarray:
    """`[views, 8]` transforms: the identity, then `views - 1` draws from `augment`.

    Args:
        views: Number of views, `>= 1`.
        image_shape: `(height, width, ...)` of the images.
        augment: An object with `transforms(batch, height, width, seed)` returning `[batch, 8]`
            transforms, such as `tfmeta.data.augment.RandomAffine` (the default:
            `RandomAffine.for_image_size` of the images' smaller side, the distortions the
            Omniglot recipes train with, 2-pixel shifts at 28 x 28 scaled with the size).
        seed: Seed of the draws (the same seed gives the same transforms).
    """
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise ValueError(f"`views` must be an integer >= 1; received {views!r}.")
    if augment is None:
        from tfmeta.data.augment import RandomAffine

        augment = RandomAffine.for_image_size(min(int(image_shape[0]), int(image_shape[1])))
    if not callable(getattr(augment, "transforms", None)):
        raise ValueError(
            "`augment` must have a `transforms(batch, height, width, seed)` method (e.g. "
            f"tfmeta.data.augment.RandomAffine); received {type(augment).__name__}."
        )
    identity = np.asarray([IDENTITY_TRANSFORM], dtype="float32")
    if views == 1:
        return identity
    height, width = int(image_shape[0]), int(image_shape[1])
    drawn = np.asarray(augment.transforms(views - 1, height, width, [seed, 0]), dtype="float32")
    return np.concatenate([identity, drawn], axis=0)


def with_test_time_augmentation(
    encoder: keras.Model,
    views: int = 32,
    augment: Any = None,
    seed: int = 0,
    name: str | None = None,
) -> keras.Model:
    """Wraps `encoder` so that inference averages its embedding over fixed affine distortions.

    The views are the image itself and `views - 1` distortions drawn once (seeded) from
    `augment`, by default the `RandomAffine` distortions the Omniglot recipes train with; they
    are fixed, so predictions are deterministic and the exported model applies the same ones.
    Training is unchanged. Inference costs `views` encoder passes per image. See
    `AffineAverage`; `with_test_time_shifts` is the cheaper translation-only variant.

    Args:
        encoder: A built `keras.Model` mapping images `[B, H, W, C]` to embeddings.
        views: Number of views including the undistorted image.
        augment: Where the distortions come from (see `draw_test_time_transforms`).
        seed: Seed of the distortions.
        name: Model name (default: `"<encoder name>_tta"`).

    Example:

    >>> encoder = with_test_time_augmentation(conv4((28, 28, 1)), views=32)
    >>> protonet = tfmeta.PrototypicalNetwork(encoder)  # after training conv4
    """
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"`encoder` must be a keras.Model; received {type(encoder).__name__}.")
    shape = tuple(encoder.input_shape[1:])
    if len(shape) != 3 or None in shape[:2]:
        raise ValueError(
            f"`encoder` must take images of a fixed [height, width, channels] shape; received input shape {shape}."
        )
    transforms = draw_test_time_transforms(views, shape, augment, seed)
    inputs = keras.Input(shape, name="image")
    outputs = AffineAverage(encoder, transforms, name="affine_average")(inputs)
    return keras.Model(inputs, outputs, name=name or f"{encoder.name}_tta")


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
    >>> protonet = tfmeta.PrototypicalNetwork(with_test_time_shifts(joint))
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
