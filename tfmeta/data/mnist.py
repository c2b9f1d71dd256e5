"""MNIST through tensorflow-datasets, as numpy arrays in [0, 1].

`load_mnist()` reads each split in batches and concatenates them, rather than asking
tensorflow-datasets for the whole split as one batch (`batch_size=-1`): that one batch's size
comes from the split's recorded example count, which a dataset without its metadata (a mocked
or partly prepared one) lacks, and then tensorflow-datasets pads a batch of `sys.maxsize`.
The first call downloads MNIST into `data_dir` (tensorflow-datasets' default folder when None).

Example:

>>> (x_train, y_train), (x_test, y_test) = load_mnist()      # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train[:3]                  # doctest: +SKIP
((60000, 28, 28, 1), dtype('float32'), array([4, 1, 0]))
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Examples per batch while a split is read.
READ_BATCH = 10_000


def load_mnist(splits: Sequence[str] = ("train", "test"), data_dir: str | None = None
               ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """`((images, labels), ...)` for each split: float32 `[N, 28, 28, 1]` in [0, 1], int64 labels.

    Args:
        splits: tensorflow-datasets split names (`"train"`, `"test"`, `"train[:10%]"`, ...).
        data_dir: Where tensorflow-datasets keeps (and downloads) its data; None: its default.
    """
    import tensorflow_datasets as tfds

    if isinstance(splits, str) or not len(splits):
        raise ValueError(f"`splits` must be a non-empty list of split names; received {splits!r}.")
    loaded = []
    for split in splits:
        dataset = tfds.load("mnist", split=split, as_supervised=True, batch_size=READ_BATCH, data_dir=data_dir)
        images, labels = zip(*tfds.as_numpy(dataset))
        loaded.append((np.concatenate(images).astype("float32") / 255.0, np.concatenate(labels).astype("int64")))
    return tuple(loaded)
