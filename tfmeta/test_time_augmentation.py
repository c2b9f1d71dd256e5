"""Test-time augmentation: embeddings and predictions averaged over views of every image.

Every view is made inside the graph, so the views travel with an exported SavedModel and
compile with XLA.

- Encoder wrappers (for metric learners): `with_test_time_shifts(encoder, max_shift)`
  averages the embedding over translated copies (`ShiftAverage`);
  `with_test_time_augmentation(encoder, views)` over fixed random affine distortions drawn
  from the training augmentation (`AffineAverage`).
- Episode views (for MAML): `episode_views` replaces every image of an episode by its views
  and `average_over_views` averages each query's class probabilities over its views, so the
  inner loop adapts on all views of the support set.
- The warp itself: `draw_test_time_transforms` (the identity and `V - 1` draws from
  `tfmeta.data.augment.RandomAffine`) and `affine_views`, the bilinear warp of
  `keras.ops.image.affine_transform` written as a gather with fixed weights (`bilinear_taps`,
  computed once per image size) because the transforms are constants: it compiles with XLA
  (`jit_compile=True`) and runs on any backend.

Example:

>>> encoder = with_test_time_augmentation(tfmeta.backbones.conv4((28, 28, 1)), views=32)
>>> protonet = tfmeta.PrototypicalNetwork(encoder)
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tfmeta.backbones import EncoderConfigMixin


class ViewAverage(EncoderConfigMixin, layers.Layer):
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

    >>> encoder = with_test_time_shifts(tfmeta.backbones.conv4((28, 28, 1)), max_shift=1)  # 9 views
    >>> model = tfmeta.SiameseNetwork(encoder, objective="contrastive")
    """

    def __init__(self, encoder: keras.Model, max_shift: int = 1, **kwargs):
        super().__init__(encoder, **kwargs)
        if not isinstance(max_shift, numbers.Integral) or isinstance(max_shift, bool) or max_shift < 0:
            raise ValueError(f"`max_shift` must be an integer >= 0; received {max_shift!r}.")
        max_shift = int(max_shift)
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

    >>> encoder = with_test_time_shifts(tfmeta.backbones.conv4((28, 28, 1)))
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
    >>> layer = AffineAverage(tfmeta.backbones.conv4((28, 28, 1)), identity_and_shift)  # 2 views
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
    if isinstance(views, bool) or not isinstance(views, numbers.Integral) or views < 1:
        raise ValueError(f"`views` must be an integer >= 1; received {views!r}.")
    views = int(views)
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

    >>> encoder = with_test_time_augmentation(tfmeta.backbones.conv4((28, 28, 1)), views=32)
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


def episode_views(support_x, support_y, query_x, transforms):
    """Replaces every image of `[T, N, H, W, C]` support/query sets by its test-time views.

    Args:
        support_x, query_x: `[T, N, H, W, C]` images (static `H`, `W`, `C`).
        support_y: `[T, N]` labels, tiled to match the support views.
        transforms: `[V, 8]` fixed transforms (`draw_test_time_transforms`).

    Returns:
        `[T, V * N, ...]` sets, view-major (view `v` of example `n` at `v * N + n`), and the
        tiled support labels. The inputs unchanged when there is one view.
    """
    views = int(np.shape(transforms)[0])
    if views == 1:
        return support_x, support_y, query_x
    if support_x.shape.rank != 5:
        raise ValueError(
            "Test-time views need image episodes [tasks, examples, height, width, channels]; "
            f"received support_x of shape {support_x.shape}."
        )
    image_shape = tuple(int(d) for d in support_x.shape[2:])

    def expand(x):
        shape = tf.shape(x)
        flat = tf.reshape(x, (-1,) + image_shape)  # [T * N, H, W, C]
        warped = affine_views(flat, transforms)  # [V * T * N, H, W, C]
        warped = tf.reshape(warped, tf.concat([[views], shape], 0))  # [V, T, N, H, W, C]
        warped = tf.transpose(warped, [1, 0, 2, 3, 4, 5])
        return tf.reshape(warped, tf.concat([shape[:1], [-1], shape[2:]], 0))

    return expand(support_x), tf.tile(support_y, [1, views]), expand(query_x)


def average_over_views(probabilities, views: int):
    """`[T, Q, C]` probabilities averaged over the views of each query (`[T, V * Q, C]` in)."""
    if views == 1:
        return probabilities
    shape = tf.shape(probabilities)
    return tf.reduce_mean(tf.reshape(probabilities, [shape[0], views, -1, shape[2]]), axis=1)
