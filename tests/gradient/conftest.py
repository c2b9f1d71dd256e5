"""Fixtures for the MAML-family tests: tiny models and task batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf


def tiny_regressor(dtype="float32", hidden=4):
    """1 -> hidden (tanh) -> 1: smooth, so finite differences are accurate."""
    return keras.Sequential(
        [
            keras.Input((1,), dtype=dtype),
            keras.layers.Dense(hidden, activation="tanh", dtype=dtype, name="body"),
            keras.layers.Dense(1, dtype=dtype, name="head"),
        ]
    )


def tiny_convnet(ways=3, filters=4, size=8):
    """Conv/BN/ReLU/pool x2 + Dense head on size x size x 1 images."""
    return keras.Sequential(
        [
            keras.Input((size, size, 1)),
            keras.layers.Conv2D(filters, 3, padding="same", name="conv1"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(filters, 3, padding="same", name="conv2"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(ways, name="head"),
        ]
    )


def regression_batch(tasks=2, k=4, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    amp = rng.uniform(0.5, 2.0, (tasks, 1, 1))
    x = rng.uniform(-2, 2, (tasks, 2 * k, 1))
    y = amp * np.sin(x)
    c = lambda a: tf.constant(a.astype(dtype))  # noqa: E731
    return (c(x[:, :k]), c(y[:, :k]), c(x[:, k:])), c(y[:, k:])


def classification_batch(tasks=2, ways=3, shots=2, queries=2, size=8, seed=0):
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(tasks, ways, size, size, 1))

    def draw(n):
        y = np.tile(np.repeat(np.arange(ways), n), (tasks, 1))
        x = np.stack([protos[t][y[t]] for t in range(tasks)]) + 0.3 * rng.normal(size=(tasks, ways * n, size, size, 1))
        return tf.constant(x.astype(np.float32)), tf.constant(y.astype(np.int32))

    sx, sy = draw(shots)
    qx, qy = draw(queries)
    return (sx, sy, qx), qy


@pytest.fixture
def reg_batch64():
    return regression_batch()
