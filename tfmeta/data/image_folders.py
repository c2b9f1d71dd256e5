"""Folders of images in `keras.utils.image_dataset_from_directory` layout, streamed.

`ImageFolder(path)` lists the files (one sub-folder per class) and reads only the headers of
a few images to learn their typical size and colour mode; `dataset(...)` then decodes images
as training asks for them, in a `tf.data` pipeline, so a folder larger than memory trains in
bounded memory. Every image is resized to one *load size* while it is decoded (so that images
of different sizes can be batched); models resize further inside their own graph.

Example:

>>> folder = ImageFolder("photos/")            # photos/cat/*.jpg, photos/dog/*.jpg
>>> folder.class_names, folder.load_size, folder.channels
(['cat', 'dog'], (128, 128), 3)
>>> train, validation = folder.split(0.2, seed=0)
>>> ds = folder.dataset(train, batch_size=32, shuffle=True)   # (images float32 0..255, labels)
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _typical_image(paths: Sequence[str], probe: int = 32) -> tuple[tuple[int, int], str]:
    """The median size and the most common colour mode of up to `probe` images (headers only)."""
    from PIL import Image

    sizes, modes = [], []
    for path in list(paths)[:probe]:
        with Image.open(path) as image:
            sizes.append((image.size[1], image.size[0]))
            modes.append(image.mode)
    height = int(np.median([s[0] for s in sizes]))
    width = int(np.median([s[1] for s in sizes]))
    return (height, width), max(set(modes), key=modes.count)


class ImageFolder:
    """The files and classes of an image folder, and a streaming `tf.data` reader.

    Args:
        path: A folder with one sub-folder of images per class.
        load_size: `(height, width)` images are resized to while decoded; default: the
            typical size, scaled down so that the longer side is at most `max_side`.
        max_side: Longest side of the default load size.
        name: The argument's name, for errors.

    Raises:
        ValueError: The folder has fewer than two classes with images, or no images.
    """

    def __init__(self, path: str | os.PathLike, load_size: tuple[int, int] | None = None,
                 max_side: int = 128, name: str = "x"):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise ValueError(f"`{name}` must be a folder of class sub-folders; {self.path!r} is not a folder.")
        classes = sorted(d for d in os.listdir(self.path) if os.path.isdir(os.path.join(self.path, d)))
        files, labels = [], []
        for index, cls in enumerate(classes):
            for root, _, names in sorted(os.walk(os.path.join(self.path, cls))):
                for file in sorted(names):
                    if file.lower().endswith(IMAGE_SUFFIXES):
                        files.append(os.path.join(root, file))
                        labels.append(index)
        used = sorted(set(labels))
        if not files:
            raise ValueError(f"`{name}` folder {self.path!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        if len(used) < 2:
            raise ValueError(
                f"`{name}` folder {self.path!r} must hold at least 2 classes (sub-folders with images); "
                f"received {len(used)}: {[classes[i] for i in used]}."
            )
        self.class_names = classes
        self.files = np.asarray(files)
        self.labels = np.asarray(labels, dtype=np.int64)
        typical, mode = _typical_image(self.files[np.random.default_rng(0).permutation(len(files))])
        self.typical_size = typical
        self.channels = {"L": 1, "1": 1, "LA": 2, "RGBA": 4}.get(mode, 3)
        if load_size is None:
            scale = min(1.0, max_side / max(typical))
            load_size = (max(8, round(typical[0] * scale)), max(8, round(typical[1] * scale)))
        self.load_size = (int(load_size[0]), int(load_size[1]))

    def __len__(self) -> int:
        return len(self.files)

    def split(self, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Stratified `(train, held-out)` index arrays, `fraction` of each class held out."""
        rng = np.random.default_rng(seed)
        train, held = [], []
        for label in np.unique(self.labels):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            cut = int(round(fraction * len(members)))
            if len(members) > 1:
                cut = min(max(cut, 1), len(members) - 1)
            held.extend(members[:cut])
            train.extend(members[cut:])
        return np.sort(np.asarray(train)), np.sort(np.asarray(held))

    def decode(self, data: tf.Tensor) -> tf.Tensor:
        """Encoded image bytes -> float32 `[load_h, load_w, channels]` (values 0..255)."""
        image = tf.io.decode_image(data, channels=self.channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), self.load_size)
        return tf.ensure_shape(image, (*self.load_size, self.channels))

    def dataset(self, indices: np.ndarray | None = None, batch_size: int = 32, shuffle: bool = False,
                seed: int = 0) -> tf.data.Dataset:
        """A `tf.data.Dataset` of `(images, labels)` batches, decoded as they are read."""
        indices = np.arange(len(self.files)) if indices is None else np.asarray(indices)
        ds = tf.data.Dataset.from_tensor_slices((self.files[indices], self.labels[indices]))
        if shuffle:
            ds = ds.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda f, y: (self.decode(tf.io.read_file(f)), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def read(self, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(images, labels)` of `indices` as numpy arrays (for small folders and tests)."""
        images, labels = [], []
        for x, y in self.dataset(indices, batch_size=256):
            images.append(x.numpy())
            labels.append(y.numpy())
        return np.concatenate(images), np.concatenate(labels)
