"""Size normalisation of stroke images: the ink's bounding box scaled to a fixed square.

Handwriting recognisers have normalised character size since MNIST (each digit's bounding box
scaled into 20 x 20 and centred in 28 x 28). Omniglot's drawers wrote the same character at
very different sizes and places on a 105 x 105 canvas, and a plain downsampling to 28 x 28
leaves a small character a few pixels tall. `ink_box_normalize` crops each image to the
bounding box of its ink, pads it to a square (keeping the aspect ratio), scales it to
`box_size` and centres it in `output_size`. It is plain TensorFlow, so the same function
prepares the training images and runs inside an exported SavedModel (`InkBoxNormalization`),
which then takes raw images at any resolution and needs no Python preprocessing when served.

Example:

>>> import numpy as np
>>> image = np.zeros((1, 105, 105, 1), "float32")
>>> image[0, 40:50, 20:80] = 1.0  # a wide, short stroke
>>> out = ink_box_normalize(image, box_size=24, output_size=28)
>>> out.shape
TensorShape([1, 28, 28, 1])
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import tensorflow as tf

#: Pixels above this value count as ink (images are float32, background 0, ink 1).
INK_THRESHOLD = 0.5

#: Each box side is sampled at this many points per output pixel and area-averaged, so thin
#: strokes survive the downscaling (plain bilinear sampling at the output size aliases them away).
_SUPERSAMPLE = 4


def _check_sizes(box_size, output_size) -> None:
    for name, value in (("box_size", box_size), ("output_size", output_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1, received {name}={value!r}.")
    if box_size > output_size:
        raise ValueError(
            f"`box_size` must be <= `output_size`; received box_size={box_size}, "
            f"output_size={output_size}."
        )


def _extent(mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """First and last index where `[B, N]` bool `mask` is true (0 and N - 1 where it never is)."""
    n = tf.shape(mask)[1]
    any_ink = tf.reduce_any(mask, axis=1)
    first = tf.argmax(tf.cast(mask, tf.int32), axis=1, output_type=tf.int32)
    last = n - 1 - tf.argmax(tf.cast(mask[:, ::-1], tf.int32), axis=1, output_type=tf.int32)
    return tf.where(any_ink, first, 0), tf.where(any_ink, last, n - 1)


def ink_box_normalize(
    images,
    box_size: int = 24,
    output_size: int = 28,
    threshold: float = INK_THRESHOLD,
) -> tf.Tensor:
    """Scales every image's ink bounding box into a centred `box_size` square.

    Args:
        images: float32 `[B, H, W, C]` (or `[B, H, W]`), background 0 and ink 1, any `H, W`.
            Ink is found on the channel maximum.
        box_size: Side, in output pixels, of the square the bounding box is scaled into (the
            longer side of the box fills it; the shorter is centred).
        output_size: Side of the square output; `(output_size - box_size) / 2` pixels of
            background border remain, so small shifts do not push ink off the image.
        threshold: Pixels above this value count as ink. An image without ink is scaled whole.

    Returns:
        float32 `[B, output_size, output_size, C]` (no channel axis if `images` had none).

    Raises:
        ValueError: If a size is not a positive int or `box_size > output_size`.
    """
    _check_sizes(box_size, output_size)
    x = tf.convert_to_tensor(images, tf.float32)
    squeeze = x.shape.rank == 3
    if squeeze:
        x = x[..., tf.newaxis]
    if x.shape.rank != 4:
        raise ValueError(
            f"`images` must have shape [B, H, W] or [B, H, W, C], received shape {x.shape}."
        )
    shape = tf.shape(x)
    height, width = shape[1], shape[2]
    ink = tf.reduce_max(x, axis=-1) > threshold  # [B, H, W]
    top, bottom = _extent(tf.reduce_any(ink, axis=2))
    left, right = _extent(tf.reduce_any(ink, axis=1))
    # The square around the box, centred on it, in pixel-centre coordinates.
    side = tf.cast(tf.maximum(bottom - top, right - left) + 1, tf.float32)
    cy = tf.cast(top + bottom, tf.float32) / 2.0
    cx = tf.cast(left + right, tf.float32) / 2.0
    samples = box_size * _SUPERSAMPLE
    # `samples` points spread over `side` pixels: the first and last sit half a sample step
    # inside the square's edges, as an area resize would place them.
    half = side / 2.0 - side / (2.0 * samples)
    h1 = tf.cast(tf.maximum(height - 1, 1), tf.float32)
    w1 = tf.cast(tf.maximum(width - 1, 1), tf.float32)
    boxes = tf.stack([(cy - half) / h1, (cx - half) / w1, (cy + half) / h1, (cx + half) / w1], axis=1)
    crops = tf.image.crop_and_resize(
        x, boxes, tf.range(shape[0]), [samples, samples], method="bilinear", extrapolation_value=0.0
    )
    small = tf.nn.avg_pool2d(crops, _SUPERSAMPLE, _SUPERSAMPLE, "VALID")
    pad = output_size - box_size
    out = tf.pad(small, [[0, 0], [pad // 2, pad - pad // 2], [pad // 2, pad - pad // 2], [0, 0]])
    return out[..., 0] if squeeze else out


@keras.saving.register_keras_serializable(package="tfmeta")
class InkBoxNormalization(keras.layers.Layer):
    """Keras layer form of `ink_box_normalize`: raw stroke images in, size-normalised out.

    Put it in front of an encoder trained on normalised images, and the model (and its
    SavedModel export) takes raw images at any resolution.

    Example:

    >>> encoder = conv4((28, 28, 1))
    >>> inputs = keras.Input((105, 105, 1))
    >>> model = keras.Model(inputs, encoder(InkBoxNormalization(24, 28)(inputs)))
    """

    def __init__(self, box_size: int = 24, output_size: int = 28, threshold: float = INK_THRESHOLD, **kwargs):
        super().__init__(**kwargs)
        _check_sizes(box_size, output_size)
        self.box_size, self.output_size, self.threshold = box_size, output_size, float(threshold)

    def call(self, images):
        return ink_box_normalize(images, self.box_size, self.output_size, self.threshold)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, *input_shape[3:])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "box_size": self.box_size,
            "output_size": self.output_size,
            "threshold": self.threshold,
        }


def normalize_images(
    images, box_size: int = 24, output_size: int = 28, batch_size: int = 512
) -> np.ndarray:
    """`ink_box_normalize` over a numpy array in batches; returns float32 numpy.

    Example:

    >>> data = load_omniglot(("small1",), image_size=105)
    >>> x28 = normalize_images(data.x)  # [N, 28, 28, 1]
    """
    _check_sizes(box_size, output_size)
    images = np.asarray(images, np.float32)
    parts = [
        ink_box_normalize(images[i : i + batch_size], box_size, output_size).numpy()
        for i in range(0, len(images), batch_size)
    ]
    if not parts:
        return np.zeros((0, output_size, output_size) + images.shape[3:], np.float32)
    return np.concatenate(parts, axis=0)


def with_ink_box_normalization(
    encoder: keras.Model,
    input_shape=(105, 105, 1),
    box_size: int = 24,
    name: str | None = None,
) -> keras.Model:
    """`encoder` (trained on normalised images) behind an `InkBoxNormalization` of raw images.

    Args:
        encoder: A built `keras.Model` whose input is a square `output_size` image.
        input_shape: Shape of the raw images the wrapped model takes.
        box_size: As in `ink_box_normalize`; the output size is the encoder's input size.
        name: Model name (default `"<encoder name>_ink_box"`).

    Example:

    >>> serving_encoder = with_ink_box_normalization(conv4((28, 28, 1)), (105, 105, 1))
    >>> serving_encoder.input_shape
    (None, 105, 105, 1)
    """
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"`encoder` must be a keras.Model; received {type(encoder).__name__}.")
    height, width = encoder.input_shape[1:3]
    if height != width:
        raise ValueError(
            f"`encoder` must take square images; received input shape {encoder.input_shape}."
        )
    inputs = keras.Input(tuple(input_shape), name="image")
    normalized = InkBoxNormalization(box_size, int(height), name="ink_box")(inputs)
    return keras.Model(inputs, encoder(normalized), name=name or f"{encoder.name}_ink_box")
