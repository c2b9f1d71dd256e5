"""MNIST through tensorflow-datasets, exercised offline with `tfds.testing.mock_data`."""

import numpy as np
import pytest


def test_mnist_splits_read_as_images_in_0_1_with_int_labels():
    import tensorflow_datasets as tfds

    from tfmeta.data.mnist import load_mnist

    # Mocked MNIST has no recorded split sizes: a whole-split batch (batch_size=-1) would fail.
    with tfds.testing.mock_data(num_examples=30):
        (x_train, y_train), (x_test, y_test) = load_mnist(("train", "test"))
    assert x_train.shape == (30, 28, 28, 1) and x_test.shape == (30, 28, 28, 1) and x_train.dtype == np.float32
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.max() > 0.5  # scaled from 0..255
    assert y_train.dtype == np.int64 and set(y_train.tolist()) <= set(range(10))
    with pytest.raises(ValueError, match="`splits` must be a non-empty list"):
        load_mnist("train")
