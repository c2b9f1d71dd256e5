"""Decoding of Omniglot-style stroke images into float32 arrays."""

from __future__ import annotations

import io
import numbers

import numpy as np
from PIL import Image


def decode_stroke_image(data: bytes | np.ndarray, image_size: int | tuple[int, int] = 28) -> np.ndarray:
    """Decodes a black-on-white stroke image into float32 `[H, W, 1]` with strokes = 1.0.

    Args:
        data: PNG bytes, or a uint8 array `[H, W]` / `[H, W, C]` (as tensorflow-datasets gives).
        image_size: Output size, an int for square images or `(height, width)`.

    Returns:
        float32 array in [0, 1]; background 0, ink 1 (inverted from the files, so zero padding
        in convolutions matches the background).
    """
    if isinstance(data, (bytes, bytearray)):
        img = Image.open(io.BytesIO(data)).convert("L")
    else:
        arr = np.asarray(data)
        if arr.ndim == 3:
            arr = arr[..., 0]
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    size = (int(image_size),) * 2 if isinstance(image_size, numbers.Integral) else tuple(int(v) for v in image_size)
    if img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BOX)
    return (1.0 - np.asarray(img, dtype=np.float32) / 255.0)[..., np.newaxis]
