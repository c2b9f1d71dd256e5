"""Shared fixtures of the strategy, mixed-precision and XLA tests of every learner."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # learner_cases, for this folder's tests

import learner_cases  # noqa: E402


@pytest.fixture(scope="session")
def mirrored():
    """`MirroredStrategy` over the two logical CPUs that tests/conftest.py creates."""
    import tensorflow as tf

    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        raise RuntimeError(
            f"tests/distribute needs 2 logical CPU devices (made by tests/conftest.py before "
            f"TensorFlow initialises); found {len(cpus)}: TensorFlow was initialised earlier."
        )
    return tf.distribute.MirroredStrategy([cpus[0].name, cpus[1].name])


@pytest.fixture(scope="session")
def reference_runs():
    """`get(name) -> Run`: each case trained once on one device in float32, shared by tests."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = learner_cases.train(name)
        return cache[name]

    return get
