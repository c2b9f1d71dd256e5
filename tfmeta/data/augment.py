"""Seeded, in-graph image augmentation for episode and pair pipelines.

Koch et al. (2015) train their Siamese network on Omniglot with small random affine
distortions; with only a few hundred background characters, the same distortions are what keeps
prototypical networks and MAML from memorising the training characters. `RandomAffine` draws
one distortion per image from a stateless seed, so a pipeline stays repeatable.

Example:

>>> from tfmeta.data import EpisodeSampler
>>> from tfmeta.data.augment import RandomAffine
>>> sampler = EpisodeSampler(x, y, ways=60, shots=1, queries=5, seed=0)
>>> ds = sampler.dataset(augment=RandomAffine(rotation=10, shift=2))
"""

from __future__ import annotations

import math

import tensorflow as tf


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


def _check_sizes(**sizes) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"`{name}` must be a number > 0, received {name}={value!r}.")


class RandomAffine:
    """Random rotation, shift, scale and shear of `[B, H, W, C]` float images.

    Args:
        rotation: Largest rotation in degrees (uniform in `[-rotation, rotation]`).
        shift: Largest shift in pixels along each axis.
        scale: Largest relative zoom (`0.1` zooms by a factor in `[0.9, 1.1]`).
        shear: Largest shear angle in degrees.
        fill_value: Value of pixels that come from outside the image.

    Calling `augment(images, seed)` with a stateless seed of shape `[2]` returns images of the
    same shape and dtype.
    """

    def __init__(self, rotation: float = 10.0, shift: float = 2.0, scale: float = 0.1,
                 shear: float = 10.0, fill_value: float = 0.0):
        for name, value in (("rotation", rotation), ("shift", shift), ("scale", scale), ("shear", shear)):
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0, received {name}={value!r}.")
        if scale >= 1:
            raise ValueError(f"`scale` must be < 1 (a relative zoom), received scale={scale!r}.")
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
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float32), transforms=transforms, output_shape=shape[1:3],
            fill_value=tf.constant(self.fill_value, tf.float32), interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
        out = tf.cast(out, images.dtype)
        return out[..., 0] if squeeze else out


class RandomElastic:
    """Random elastic distortion of `[B, H, W, C]` float images (Simard et al., 2003).

    Every pixel moves by a random displacement field: uniform noise in `[-1, 1]` per pixel and
    axis, smoothed by a Gaussian of standard deviation `sigma` pixels and scaled by `alpha`
    pixels. Unlike an affine distortion it bends strokes locally, as two people drawing the same
    character do. Pixels are resampled bilinearly; those that come from outside the image get
    `fill_value`.

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
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"`alpha` must be a number >= 0, received alpha={alpha!r}.")
        _check_sizes(sigma=sigma)
        self.alpha, self.sigma, self.fill_value = float(alpha), float(sigma), fill_value

    @classmethod
    def for_image_size(cls, image_size: int, reference_size: int = 28, alpha: float = 20.0,
                       sigma: float = 3.0, **kwargs) -> "RandomElastic":
        """The same distortion at `image_size`: `alpha` and `sigma` given at `reference_size`."""
        _check_sizes(image_size=image_size, reference_size=reference_size)
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
        # Separable Gaussian: along rows, then along columns, each axis channel on its own.
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
        # (to 1e-7) but interpolates over all four axes and took ~5x longer per episode here.
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
        *augments: Callables `augment(images, seed) -> images` (for example `RandomElastic`
            then `RandomAffine`).

    Example:

    >>> augment = Compose(RandomElastic(), RandomAffine())
    >>> ds = sampler.dataset(augment=augment)
    """

    def __init__(self, *augments):
        if not augments:
            raise ValueError("`augments` must hold at least one augmentation, received none.")
        for a in augments:
            if not callable(a):
                raise ValueError(f"Every augmentation must be callable(images, seed), received {a!r}.")
        self.augments = augments

    def __call__(self, images: tf.Tensor, seed) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), len(self.augments))
        for i, augment in enumerate(self.augments):
            images = augment(images, seeds[i])
        return images
