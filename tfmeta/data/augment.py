"""Seeded, in-graph image augmentation for episode and pair pipelines.

Koch et al. (2015) train their Siamese network on Omniglot with small random affine
distortions; with only a few hundred background characters, the same distortions are what keeps
prototypical networks and MAML from memorising the training characters. The samplers apply an
augmentation as `augment(images, seed)` with a stateless seed drawn from each episode's own
seed, so episode k is the same whatever came before.

Keras's image preprocessing layers (`keras.layers.RandomRotation`, `RandomTranslation`,
`RandomZoom`, `RandomShear`, ...) serve as augmentations directly. tfmeta adds only what Keras
lacks, one line each:

- `SeededLayer` (made by `as_augmentation`): Keras's random layers draw from a stateful
  `SeedGenerator`; this applies one with the episode's stateless seed instead.
- `RandomAffine`: one composed rotation+shear+zoom+shift, one resampling (chaining Keras's four
  layers resamples four times and blurs 1-pixel strokes), and its `transforms()` matrices are
  what test-time augmentation draws fixed views from.
- `RandomElastic`: `keras.ops.image.elastic_transform` (Keras 3.15) moves every pixel along the
  diagonal (one noise draw serves both axes); this draws the two axes independently.
- `Compose`: chains augmentations, Keras layers included, each with its own split seed.

Example:

>>> from tfmeta.data import EpisodeSampler
>>> from tfmeta.data.augment import RandomAffine
>>> sampler = EpisodeSampler(x, y, ways=60, shots=1, queries=5, seed=0)
>>> ds = sampler.dataset(augment=RandomAffine(rotation=10, shift=2))
>>> ds = sampler.dataset(augment=keras.layers.RandomRotation(0.03, fill_mode="constant"))
"""

from __future__ import annotations

import math
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.seeds import StatelessSeedGenerator

#: An augmentation: `augment(images, seed) -> images`, `seed` a stateless `int[2]` seed.
Augmentation = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def _as_batch_of_images(images, owner: str) -> tuple[tf.Tensor, bool]:
    """`images` as a `[B, H, W, C]` tensor, and whether a channel axis was added to `[B, H, W]`."""
    images = tf.convert_to_tensor(images)
    squeeze = images.shape.rank == 3
    if squeeze:
        images = images[..., None]
    if images.shape.rank != 4:
        raise ValueError(
            f"{owner} expects images of shape [B, H, W] or [B, H, W, C], received shape {images.shape}."
        )
    return images, squeeze


def _check_number(name: str, value, minimum: float = 0.0, strict: bool = False) -> None:
    """Raises unless `value` is a finite real number `>= minimum` (`> minimum` when `strict`)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"`{name}` must be a number {relation} {minimum:g}, received {name}={value!r}.")


def _check_sizes(**sizes) -> None:
    for name, value in sizes.items():
        _check_number(name, value, strict=True)


def _check_fill_value(fill_value) -> None:
    _check_number("fill_value", fill_value, minimum=-math.inf)


class SeededLayer:
    """A Keras image preprocessing layer applied as `augment(images, seed)`.

    Keras's random layers draw from their own stateful `SeedGenerator`; this one gives the
    layer's `get_random_transformation` a `StatelessSeedGenerator` of the call's `seed`, then
    warps with its `transform_images`, so the same seed gives the same images. A layer without
    those methods (`keras.layers.Rescaling`, a small model) is called as it is, and must be
    deterministic. The first call at each image shape checks, eagerly on noise, that the layer
    gives the same images twice for one seed (`keras.layers.RandAugment` and `AugMix` draw
    from their own generators and fail it).

    Args:
        layer: A `keras.layers.Layer` taking `[B, H, W, C]` images (channels last).

    Calling `augment(images, seed)` with a stateless seed of shape `[2]` returns images of the
    same shape and dtype; `[B, H, W]` images get a channel axis for the layer and lose it after.

    Example:

    >>> augment = SeededLayer(keras.layers.RandomRotation(0.03, fill_mode="constant"))
    >>> rotated = augment(tf.zeros([4, 28, 28, 1]), tf.constant([0, 1]))
    """

    def __init__(self, layer: keras.layers.Layer):
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(f"`layer` must be a keras.layers.Layer, received {type(layer).__name__}.")
        self.layer = layer
        self._checked_shapes: set[tuple[int, ...]] = set()

    def _apply(self, images: tf.Tensor, seed) -> tf.Tensor:
        layer = self.layer
        if not (hasattr(layer, "get_random_transformation") and hasattr(layer, "transform_images")):
            return layer(images, training=True)
        if not layer.built:
            layer.build(images.shape)
        transformation = layer.get_random_transformation(
            images, training=True, seed=StatelessSeedGenerator(seed)
        )
        return layer.transform_images(images, transformation, training=True)

    def _check_seeded(self, images: tf.Tensor) -> None:
        """Raises unless the layer gives the same images twice for one seed (once per shape)."""
        shape = tuple(images.shape[1:])
        if None in shape or shape in self._checked_shapes:
            return
        with tf.init_scope():  # eagerly, also while a tf.data map function is being traced
            noise = np.random.default_rng(0).random((4, *shape))
            if images.dtype.is_integer:
                noise = np.floor(noise * 256)
            probe = tf.constant(noise, images.dtype)
            seed = tf.constant([0, 1], tf.int64)
            first, second = self._apply(probe, seed), self._apply(probe, seed)
            if not np.array_equal(np.asarray(first), np.asarray(second)):
                raise ValueError(
                    f"`augment` layer {self.layer.name!r} ({type(self.layer).__name__}) gave "
                    "different images for the same seed: it draws from its own random state, "
                    "so episodes would not be repeatable. Use layers that take the seed of "
                    "`get_random_transformation` (RandomRotation, RandomTranslation, RandomZoom, "
                    "RandomShear, RandomFlip, ...) or tfmeta.data.augment.RandomAffine."
                )
        self._checked_shapes.add(shape)

    def __call__(self, images: tf.Tensor, seed) -> tf.Tensor:
        images, squeeze = _as_batch_of_images(images, type(self.layer).__name__)
        self._check_seeded(images)
        out = tf.cast(self._apply(images, seed), images.dtype)
        return out[..., 0] if squeeze else out


def as_augmentation(augment: Any, name: str = "augment") -> Augmentation | None:
    """`augment` as a callable `augment(images, seed) -> images` (None stays None).

    Args:
        augment: None; a callable `(images, seed) -> images` (`RandomAffine`, `RandomElastic`,
            `Compose`, your own function); a Keras image preprocessing layer such as
            `keras.layers.RandomRotation(0.03, fill_mode="constant")` (applied by
            `SeededLayer`); or a `keras.Sequential` / `keras.layers.Pipeline` of them (each
            layer gets its own seed, split from the call's).
        name: The argument's name in error messages.

    Raises:
        ValueError: If `augment` is none of these, or an empty `Sequential`/`Pipeline`.

    Example:

    >>> augment = as_augmentation(keras.Sequential([keras.layers.RandomRotation(0.03),
    ...                                             keras.layers.RandomZoom(0.1)]))
    >>> images = augment(images, tf.constant([0, 1]))
    """
    if augment is None:
        return None
    if isinstance(augment, (keras.Sequential, keras.layers.Pipeline)):
        if not augment.layers:
            raise ValueError(f"`{name}` must hold at least one layer, received an empty {type(augment).__name__}.")
        return Compose(*augment.layers)
    if isinstance(augment, keras.layers.Layer):
        return SeededLayer(augment)
    if callable(augment):
        return augment
    raise ValueError(
        f"`{name}` must be a callable augment(images, seed) -> images or a Keras preprocessing "
        f"layer, received {augment!r}."
    )


class RandomAffine:
    """Random rotation, shift, scale and shear of `[B, H, W, C]` float images.

    One composed matrix per image and one bilinear resampling (`keras.ops.image.affine_transform`),
    where chaining Keras's `RandomRotation`, `RandomShear`, `RandomZoom` and `RandomTranslation`
    would resample four times and blur 1-pixel strokes.

    Args:
        rotation: Largest rotation in degrees (uniform in `[-rotation, rotation]`).
        shift: Largest shift in pixels along each axis.
        scale: Largest relative zoom (`0.1` zooms by a factor in `[0.9, 1.1]`).
        shear: Largest shear angle in degrees.
        fill_value: Value of pixels that come from outside the image.

    Calling `augment(images, seed)` with a stateless seed of shape `[2]` returns images of the
    same shape and dtype.

    Example:

    >>> augment = RandomAffine(rotation=10, shift=2, scale=0.1, shear=10)
    >>> distorted = augment(tf.zeros([4, 28, 28, 1]), seed=tf.constant([0, 1]))
    """

    def __init__(self, rotation: float = 10.0, shift: float = 2.0, scale: float = 0.1,
                 shear: float = 10.0, fill_value: float = 0.0):
        for name, value in (("rotation", rotation), ("shift", shift), ("scale", scale), ("shear", shear)):
            _check_number(name, value)
        if scale >= 1:
            raise ValueError(f"`scale` must be < 1 (a relative zoom), received scale={scale!r}.")
        _check_fill_value(fill_value)
        self.rotation, self.shift, self.scale, self.shear = rotation, shift, scale, shear
        self.fill_value = fill_value

    @classmethod
    def for_image_size(cls, image_size: int, reference_size: int = 28, shift: float = 2.0,
                       **kwargs) -> "RandomAffine":
        """Distortions for `image_size` images: `shift` pixels at `reference_size`, scaled.

        Rotation, zoom and shear do not depend on the image size; the shift does. The Omniglot
        recipes distort 28 x 28 images by up to 2 pixels, so a 56 x 56 image gets up to 4.

        Args:
            image_size: Side of the images to distort, in pixels (`> 0`).
            reference_size: Side at which `shift` is given (`> 0`).
            shift: Largest shift in pixels at `reference_size`.
            **kwargs: The other `RandomAffine` arguments (rotation, scale, shear, fill_value).

        Example:

        >>> RandomAffine.for_image_size(56).shift
        4.0
        """
        _check_sizes(image_size=image_size, reference_size=reference_size)
        _check_number("shift", shift)
        return cls(shift=float(shift) * image_size / reference_size, **kwargs)

    def get_config(self) -> dict:
        return {"rotation": self.rotation, "shift": self.shift, "scale": self.scale,
                "shear": self.shear, "fill_value": self.fill_value}

    def transforms(self, batch: tf.Tensor, height: tf.Tensor, width: tf.Tensor, seed) -> tf.Tensor:
        """Returns `[batch, 8]` projective transforms (output pixel -> input pixel)."""
        u = tf.random.stateless_uniform([5, batch], seed, minval=-1.0, maxval=1.0)
        angle = u[0] * (self.rotation * math.pi / 180.0)
        shear = u[1] * (self.shear * math.pi / 180.0)
        zoom = 1.0 + u[2] * self.scale
        dx, dy = u[3] * self.shift, u[4] * self.shift
        cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
        cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
        # Inverse map A^-1 around the centre; A = zoom * rotation(angle) * shear(shear).
        cos, sin = tf.cos(angle), tf.sin(angle)
        a00, a01 = cos / zoom, (sin + cos * tf.tan(shear)) / zoom
        a10, a11 = -sin / zoom, (cos - sin * tf.tan(shear)) / zoom
        b0 = cx - a00 * (cx + dx) - a01 * (cy + dy)
        b1 = cy - a10 * (cx + dx) - a11 * (cy + dy)
        zeros = tf.zeros_like(a00)
        return tf.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)

    def __call__(self, images: tf.Tensor, seed) -> tf.Tensor:
        images, squeeze = _as_batch_of_images(images, "RandomAffine")
        shape = tf.shape(images)
        transforms = self.transforms(shape[0], shape[1], shape[2], seed)
        out = keras.ops.image.affine_transform(
            tf.cast(images, tf.float32), transforms, interpolation="bilinear",
            fill_mode="constant", fill_value=float(self.fill_value), data_format="channels_last",
        )
        out = tf.cast(out, images.dtype)
        return out[..., 0] if squeeze else out


class RandomElastic:
    """Random elastic distortion of `[B, H, W, C]` float images (Simard et al., 2003).

    Every pixel moves by a random displacement field: uniform noise in `[-1, 1]` per pixel and
    axis, smoothed by a Gaussian of standard deviation `sigma` pixels and scaled by `alpha`
    pixels. Unlike an affine distortion it bends strokes locally, as two people drawing the same
    character do. Pixels are resampled bilinearly; those that come from outside the image get
    `fill_value`. `keras.ops.image.elastic_transform` (Keras 3.15) draws one noise field for
    both axes, so every pixel moves along the diagonal; this draws the two axes independently.

    Args:
        alpha: Scale of the displacement field, in pixels (`>= 0`).
        sigma: Smoothness of the field: standard deviation of the Gaussian, in pixels (`> 0`).
        fill_value: Value of pixels that come from outside the image.

    Calling `augment(images, seed)` with a stateless seed of shape `[2]` returns images of the
    same shape and dtype.

    Example:

    >>> warp = RandomElastic(alpha=20.0, sigma=3.0)
    >>> warped = warp(tf.zeros([4, 28, 28, 1]), seed=tf.constant([0, 1]))
    """

    def __init__(self, alpha: float = 20.0, sigma: float = 3.0, fill_value: float = 0.0):
        _check_number("alpha", alpha)
        _check_sizes(sigma=sigma)
        _check_fill_value(fill_value)
        self.alpha, self.sigma, self.fill_value = float(alpha), float(sigma), fill_value

    @classmethod
    def for_image_size(cls, image_size: int, reference_size: int = 28, alpha: float = 20.0,
                       sigma: float = 3.0, **kwargs) -> "RandomElastic":
        """The same distortion at `image_size`: `alpha` and `sigma` given at `reference_size`."""
        _check_sizes(image_size=image_size, reference_size=reference_size)
        _check_number("alpha", alpha)
        _check_sizes(sigma=sigma)
        ratio = image_size / reference_size
        return cls(alpha=float(alpha) * ratio, sigma=float(sigma) * ratio, **kwargs)

    def get_config(self) -> dict:
        return {"alpha": self.alpha, "sigma": self.sigma, "fill_value": self.fill_value}

    def _gaussian_kernel(self) -> tf.Tensor:
        radius = max(1, int(math.ceil(2.0 * self.sigma)))
        t = tf.range(-radius, radius + 1, dtype=tf.float32)
        g = tf.exp(-0.5 * tf.square(t / self.sigma))
        return g / tf.reduce_sum(g)

    def displacements(self, batch, height, width, seed) -> tf.Tensor:
        """Returns the `[batch, height, width, 2]` displacement field (dy, dx) in pixels."""
        noise = tf.random.stateless_uniform([batch, height, width, 2], seed, -1.0, 1.0)
        g = self._gaussian_kernel()
        # Separable Gaussian, rows then columns: the field keras.ops.image.gaussian_blur gives,
        # with 2k instead of its k * k multiplications per pixel for a k-tap kernel.
        rows = tf.tile(tf.reshape(g, [-1, 1, 1, 1]), [1, 1, 2, 1])
        cols = tf.tile(tf.reshape(g, [1, -1, 1, 1]), [1, 1, 2, 1])
        field = tf.nn.depthwise_conv2d(noise, rows, [1, 1, 1, 1], "SAME")
        field = tf.nn.depthwise_conv2d(field, cols, [1, 1, 1, 1], "SAME")
        return self.alpha * field

    def __call__(self, images: tf.Tensor, seed) -> tf.Tensor:
        images, squeeze = _as_batch_of_images(images, "RandomElastic")
        x = tf.cast(images, tf.float32)
        shape = tf.shape(x)
        batch, height, width = shape[0], shape[1], shape[2]
        field = self.displacements(batch, height, width, seed)
        grid_y, grid_x = tf.meshgrid(
            tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
        )
        src_y, src_x = grid_y[None] + field[..., 0], grid_x[None] + field[..., 1]
        y0, x0 = tf.floor(src_y), tf.floor(src_x)
        wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
        # Bilinear resampling by hand: keras.ops.image.map_coordinates gives the same images
        # but on [B, H, W, C] it interpolates over all four axes (16 corners, not 4).
        b = tf.broadcast_to(tf.range(batch)[:, None, None], tf.shape(src_y))
        h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)

        def corner(yy, xx):
            inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            yi = tf.cast(tf.clip_by_value(yy, 0.0, h - 1), tf.int32)
            xi = tf.cast(tf.clip_by_value(xx, 0.0, w - 1), tf.int32)
            values = tf.gather_nd(x, tf.stack([b, yi, xi], axis=-1))
            return tf.where(inside[..., None], values, tf.cast(self.fill_value, tf.float32))

        out = ((1 - wy) * (1 - wx) * corner(y0, x0) + (1 - wy) * wx * corner(y0, x0 + 1)
               + wy * (1 - wx) * corner(y0 + 1, x0) + wy * wx * corner(y0 + 1, x0 + 1))
        out = tf.cast(out, images.dtype)
        return out[..., 0] if squeeze else out


class Compose:
    """Applies augmentations one after another, each with its own seed split from the call's.

    Args:
        *augments: Augmentations `augment(images, seed) -> images` (for example `RandomElastic`
            then `RandomAffine`) or Keras image preprocessing layers (see `as_augmentation`).

    Example:

    >>> augment = Compose(RandomElastic(), keras.layers.RandomFlip("horizontal"), RandomAffine())
    >>> ds = sampler.dataset(augment=augment)
    """

    def __init__(self, *augments):
        if not augments:
            raise ValueError("`augments` must hold at least one augmentation, received none.")
        for a in augments:
            if not callable(a):
                raise ValueError(
                    "Every augmentation in `augments` must be callable(images, seed) or a Keras "
                    f"layer, received {a!r}."
                )
        self.augments = tuple(as_augmentation(a, "augments") for a in augments)

    def __call__(self, images: tf.Tensor, seed) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), len(self.augments))
        for i, augment in enumerate(self.augments):
            images = augment(images, seeds[i])
        return images
