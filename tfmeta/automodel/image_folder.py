"""AutoModel on a folder of images (one sub-folder per class), streamed, at any image size.

`ImageFolderTask` lists the folder (`tfmeta.data.image_folders.ImageFolder`), decodes images
as training asks for them, and searches the cells, the image size the model resizes to inside
its graph, augmentation and the learning rate (`image_models.image_space`). The export takes
images of any size (`serving_default`: float32 `[batch, height, width, channels]`, values
0..255, resized in the graph as in training) or encoded image files (`serving_bytes`: PNG, JPEG,
BMP or GIF bytes).

Example:

>>> am = tfmeta.AutoModel(task="classification", max_trials=3)
>>> am.fit("photos/")                    # photos/cat/*.jpg, photos/dog/*.jpg
>>> am.predict("new_photos/")            # every image under the folder, in sorted order
"""

from __future__ import annotations

import os
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from tfmeta.automodel import image_models
from tfmeta.automodel.raw_data import RawDataTask
from tfmeta.data.image_folders import IMAGE_SUFFIXES, ImageFolder

#: Images predicted at a time.
PREDICT_ROWS = 256


class ImageFolderTask(RawDataTask):
    """Classification of an image folder (see the module docstring)."""

    kind = "image_folder"

    def prepare(self, x, y, validation_split, validation_data) -> None:
        if y is not None:
            raise ValueError("`y` must be None when `x` is an image folder (labels come from sub-folder names).")
        self.folder = ImageFolder(x)
        self.classes = np.asarray(self.folder.class_names)
        if validation_data is not None:
            self.validation_folder = ImageFolder(validation_data, load_size=self.folder.load_size,
                                                 name="validation_data")
            self._check_classes(self.validation_folder, "validation_data")
            self.parts = {"search": np.arange(len(self.folder)), "all": np.arange(len(self.folder))}
        else:
            self.validation_folder = None
            search, validation = self.folder.split(validation_split, seed=self.am.seed or 0)
            self.parts = {"search": search, "validation": validation, "all": np.arange(len(self.folder))}
        self.rows = len(self.parts["all"])
        self.load_shape = (*self.folder.load_size, self.folder.channels)
        self.am._log(f"[images] {len(self.folder)} images of {len(self.classes)} classes, typical size "
                     f"{self.folder.typical_size}, read at {self.folder.load_size} with {self.folder.channels} "
                     "channel(s)")

    def _check_classes(self, folder: ImageFolder, name: str) -> np.ndarray:
        """Training class indices of `folder`'s sub-folders (an unknown class is an error)."""
        unknown = sorted(set(folder.class_names) - set(self.classes.tolist()))
        if unknown:
            raise ValueError(f"`{name}` has classes not seen in `fit`: {unknown}; the classes are "
                             f"{self.classes.tolist()}.")
        return np.searchsorted(self.classes, np.asarray(folder.class_names))

    def dataset(self, part: str, batch_size: int, shuffle: bool = False) -> tf.data.Dataset:
        if part == "validation" and self.validation_folder is not None:
            mapping = tf.constant(self._check_classes(self.validation_folder, "validation_data"))
            return self.validation_folder.dataset(batch_size=batch_size).map(lambda x, y: (x, tf.gather(mapping, y)))
        return self.folder.dataset(self.parts[part], batch_size=batch_size, shuffle=shuffle, seed=self.am.seed or 0)

    def _resized(self, images: np.ndarray) -> tf.Tensor:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] != self.folder.channels:
            raise ValueError(f"`x` images must be [N, height, width, {self.folder.channels}] (values 0..255); "
                             f"received shape {images.shape}.")
        return tf.image.resize(images, self.folder.load_size)

    def predict_batches(self, x) -> Iterator[tf.Tensor]:
        if isinstance(x, (str, os.PathLike)):
            files = sorted(os.path.join(root, f) for root, _, names in os.walk(os.fspath(x)) for f in names
                           if f.lower().endswith(IMAGE_SUFFIXES))
            if not files:
                raise ValueError(f"`x` folder {os.fspath(x)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
            for start in range(0, len(files), PREDICT_ROWS):
                yield tf.stack([self.folder.decode(tf.io.read_file(f)) for f in files[start : start + PREDICT_ROWS]])
            return
        images = np.asarray(x)
        for start in range(0, len(images), PREDICT_ROWS):
            yield self._resized(images[start : start + PREDICT_ROWS])

    def evaluation_batches(self, x, y):
        if not isinstance(x, (str, os.PathLike)):  # images (any size) and their labels
            if y is None:
                raise ValueError("`y` is required when `x` holds images; a folder brings its labels.")
            labels = np.asarray(y).reshape(-1).astype(self.classes.dtype)
            unknown = sorted(set(labels.tolist()) - set(self.classes.tolist()))
            if unknown:
                raise ValueError(f"`y` has classes not seen in `fit`: {unknown[:5]}; the classes are "
                                 f"{self.classes.tolist()}.")
            index = np.searchsorted(self.classes, labels)
            for start, images in zip(range(0, len(index), PREDICT_ROWS), self.predict_batches(x)):
                yield images, index[start : start + PREDICT_ROWS]
            return
        if y is not None:
            raise ValueError("`y` must be None when `x` is an image folder (labels come from sub-folder names).")
        folder = ImageFolder(x, load_size=self.folder.load_size)
        mapping = self._check_classes(folder, "x")
        for images, labels in folder.dataset(batch_size=PREDICT_ROWS):
            yield images, mapping[labels.numpy()]

    def space(self):
        return image_models.image_space(self.folder.load_size)[0]

    def search_image_sides(self) -> tuple[int, ...]:
        """The image sides the trials choose from."""
        return next(d for d in self.space().decisions if d.name == "image_size").choices

    def initial_architectures(self):
        return [image_models.default_image_architecture(*image_models.image_space(self.folder.load_size))]

    def batch_size(self, arch) -> int:
        return int(self.am.batch_size)

    def build(self, arch):
        space, cells = image_models.image_space(self.folder.load_size)
        return image_models.build_image_model(space, cells, arch, self.load_shape, len(self.classes),
                                              filters=self.am.filters,
                                              augmentation_policy=getattr(self.am, "augmentation_policy_", None))

    def model_inputs(self):
        return keras.Input(self.load_shape, name="image")

    def endpoints(self, model, outputs) -> dict:
        channels = self.folder.channels
        folder = self.folder

        def serve(images):
            resized = tf.image.resize(tf.cast(images, tf.float32), folder.load_size)
            return outputs(model(resized, training=False))

        def serve_bytes(image_bytes):
            images = tf.map_fn(folder.decode, image_bytes, fn_output_signature=tf.TensorSpec(self.load_shape, tf.float32))
            return outputs(model(images, training=False))

        return {
            "serving_default": (serve, [tf.TensorSpec([None, None, None, channels], tf.float32, name="images")]),
            "serving_bytes": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
        }

    def describe(self) -> dict:
        return {"kind": "image_folder", "input": "images", "dtype": "float32",
                "shape": [None, None, None, self.folder.channels], "values": [0, 255],
                "load_size": list(self.folder.load_size), "bytes_signature": "serving_bytes",
                "typical_size": list(self.folder.typical_size)}

    def summary(self) -> str:
        return (f"image folder: {len(self.folder)} images, {len(self.classes)} classes, typical size "
                f"{self.folder.typical_size}, load size {self.folder.load_size}, {self.folder.channels} channel(s)")
