"""Reading and checking AutoModel inputs: numpy arrays, tf.data datasets, image folders.

Everything is materialised to numpy (AutoModel targets data that fits in memory) and checked
once, with errors that name the argument, the expected and the received value.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tfmeta.data.validation import check_float32_range


def dataset_to_arrays(dataset) -> tuple[np.ndarray, np.ndarray | None]:
    """Concatenates a batched `tf.data.Dataset` of `(x, y)` (or `x`) into numpy arrays."""
    xs, ys = [], []
    for element in dataset:
        if isinstance(element, (tuple, list)):
            xs.append(np.asarray(element[0]))
            ys.append(np.asarray(element[1]))
        else:
            xs.append(np.asarray(element))
    if not xs:
        raise ValueError("`x` is an empty tf.data.Dataset.")
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


def read_image_folder(path: str, image_size: tuple[int, int] | None = None, color_mode: str | None = None):
    """Reads a `keras.utils.image_dataset_from_directory` folder (one sub-folder per class).

    The image size and colour mode default to those of the first image (grayscale images
    give one channel, RGBA four, anything else RGB).

    Returns:
        `(x float32 [N, H, W, C], y str [N])`, class names from the sub-folder names.
    """
    import keras

    first_size, first_mode = _first_image_info(path)
    image_size = image_size or first_size
    color_mode = color_mode or {"L": "grayscale", "1": "grayscale", "RGBA": "rgba"}.get(first_mode, "rgb")
    ds = keras.utils.image_dataset_from_directory(
        path, labels="inferred", label_mode="int", image_size=image_size, batch_size=256,
        shuffle=False, color_mode=color_mode, verbose=False,
    )
    names = np.array(ds.class_names)
    x, y = dataset_to_arrays(ds)
    return x.astype(np.float32), names[y]


def _first_image_info(path: str) -> tuple[tuple[int, int], str]:
    from PIL import Image

    for root, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif")):
                with Image.open(os.path.join(root, f)) as img:
                    return (img.size[1], img.size[0]), img.mode
    raise ValueError(f"`x` folder {path!r} holds no images (.png, .jpg, .jpeg, .bmp, .gif).")


#: Input kinds read as raw data (`tfmeta.automodel.raw_data`) rather than as numeric arrays.
RAW_KINDS = ("table", "text", "image_folder")


def data_kind(x: Any, task: str = "classification") -> str:
    """What `fit`'s `x` is: `"table"` (DataFrame, dict of columns, CSV path), `"text"` (1-D
    strings), `"image_folder"` (a folder, for classification), or `"arrays"` (numeric arrays,
    tf.data datasets, and every input of the few-shot and similarity tasks).

    Raises:
        TypeError: A 1-D sequence that is neither numbers nor strings (a text input that is
            not strings).
    """
    import pandas as pd

    supervised = task in ("classification", "regression")
    if isinstance(x, (str, os.PathLike)):
        if os.path.isdir(x):
            return "image_folder" if task == "classification" else "arrays"
        return "table" if supervised else "arrays"
    if isinstance(x, (pd.DataFrame, dict)):
        if not supervised:
            raise ValueError(f"`x` as a table is for task='classification' or 'regression'; received task={task!r}.")
        return "table"
    if isinstance(x, pd.Series) or (isinstance(x, (list, tuple, np.ndarray)) and np.ndim(x) == 1 and len(x)):
        values = np.asarray(x, dtype=object)
        strings = np.array([isinstance(v, str) for v in values])
        blank = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])
        if strings.any() and (strings | blank).all():  # missing texts are allowed
            if not supervised:
                raise ValueError(f"`x` as text is for task='classification' or 'regression'; received task={task!r}.")
            return "text"
        if strings.any():
            bad = values[~(strings | blank)][0]
            raise TypeError(f"`x` as text must hold only strings; received {type(bad).__name__} {bad!r} among them.")
    return "arrays"


def to_arrays(x: Any, y: Any = None, image_size=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Turns the accepted input forms into `(x, y)` numpy arrays (y may be None)."""
    if isinstance(x, (str, os.PathLike)):
        if not os.path.isdir(x):
            raise ValueError(f"`x` given as a path must be a folder of class sub-folders; {x!r} is not a folder.")
        if y is not None:
            raise ValueError("`y` must be None when `x` is an image folder (labels come from sub-folder names).")
        return read_image_folder(str(x), image_size)
    try:
        import tensorflow as tf

        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("`y` must be None when `x` is a tf.data.Dataset of (x, y) batches.")
            return dataset_to_arrays(x)
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x), (None if y is None else np.asarray(y))


def input_kind(x: np.ndarray, name: str = "x") -> str:
    """`"table"` for (N, F), `"image"` for (N, H, W) or (N, H, W, C); else a clear error."""
    if x.ndim == 2:
        return "table"
    if x.ndim in (3, 4):
        if x.ndim == 4 and x.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(
                f"`{name}` images must be (N, H, W) or (N, H, W, C) with C in 1..4; received shape {x.shape}."
            )
        return "image"
    raise ValueError(
        f"`{name}` must be a feature table (N, F) or images (N, H, W) / (N, H, W, C); received "
        f"an array of rank {x.ndim} with shape {x.shape}."
    )


def check_features(x: np.ndarray, name: str = "x", expected_shape: tuple | None = None) -> np.ndarray:
    """Checks rank, numeric dtype, finiteness and (after fit) the example shape."""
    if x.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be numeric; received dtype {x.dtype}.")
    if len(x) == 0:
        raise ValueError(f"`{name}` must hold at least one example; received shape {x.shape}.")
    input_kind(x, name)
    if expected_shape is not None and tuple(x.shape[1:]) != tuple(expected_shape):
        raise ValueError(
            f"`{name}` examples must have shape {tuple(expected_shape)} as in fit; received {tuple(x.shape[1:])}."
        )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"`{name}` must be finite; found {bad} NaN or infinite values.")
    check_float32_range(x, name)
    return x


def check_targets(x: np.ndarray, y: np.ndarray | None, task: str, name: str = "y") -> np.ndarray:
    """Checks labels/targets against `x` and the task."""
    if y is None:
        raise ValueError(f"`{name}` is required for task={task!r}.")
    if y.ndim == 2 and y.shape[1] == 1 and task != "regression":
        y = y[:, 0]
    if len(y) != len(x):
        raise ValueError(
            f"`x` and `{name}` must have the same length; received len(x)={len(x)} and len({name})={len(y)}."
        )
    if task == "regression":
        if y.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must be numeric for regression; received dtype {y.dtype}.")
        check_float32_range(y, name)
        y = y.astype(np.float32)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"`{name}` must be finite; found NaN or infinite values.")
        return y
    if y.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of class labels; received shape {y.shape}.")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"`{name}` must be finite; found NaN or infinite labels.")
    n_classes = len(np.unique(y))
    if n_classes < 2 and task != "labels":
        raise ValueError(f"`{name}` must hold at least 2 classes; received one class only ({np.unique(y)[0]!r}).")
    return y
