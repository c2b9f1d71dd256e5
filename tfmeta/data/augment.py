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
        for name, value in (("image_size", image_size), ("reference_size", reference_size)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"`{name}` must be a number > 0, received {name}={value!r}.")
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
        images = tf.convert_to_tensor(images)
        squeeze = images.shape.rank == 3
        if squeeze:
            images = images[..., None]
        if images.shape.rank != 4:
            raise ValueError(
                f"RandomAffine expects images of shape [B, H, W] or [B, H, W, C], received shape {images.shape}."
            )
        shape = tf.shape(images)
        transforms = self.transforms(shape[0], shape[1], shape[2], seed)
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float32), transforms=transforms, output_shape=shape[1:3],
            fill_value=tf.constant(self.fill_value, tf.float32), interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
        out = tf.cast(out, images.dtype)
        return out[..., 0] if squeeze else out
