"""The sinusoid task family: structure, ranges, determinism and validation."""

import math

import numpy as np
import pytest

from tfmeta.data.sinusoid import SinusoidTasks


def test_dataset_structure_and_ranges():
    tasks = SinusoidTasks(shots=5, queries=7, seed=0)
    (sx, sy, qx), qy = next(iter(tasks.dataset(meta_batch=50)))
    assert sx.shape == (50, 5, 1) and sy.shape == (50, 5, 1)
    assert qx.shape == (50, 7, 1) and qy.shape == (50, 7, 1)
    assert sy.dtype.name == "float32" and qy.dtype.name == "float32"
    x = np.concatenate([sx.numpy(), qx.numpy()], 1)
    y = np.concatenate([sy.numpy(), qy.numpy()], 1)
    assert x.min() >= -5 and x.max() <= 5
    assert np.abs(y).max() <= 5.0 + 1e-5
    # points of one task lie on one sinusoid: fit A, phase from y = a sin x + b cos x
    for t in range(5):
        basis = np.concatenate([np.sin(x[t]), np.cos(x[t])], 1)
        coef, *_ = np.linalg.lstsq(basis, y[t, :, 0], rcond=None)
        np.testing.assert_allclose(basis @ coef, y[t, :, 0], atol=1e-4)
        amp = math.hypot(*coef)
        assert 0.1 - 1e-4 <= amp <= 5 + 1e-4


def test_sample_is_seeded_and_consistent():
    tasks = SinusoidTasks(shots=10, queries=10)
    a, b = tasks.sample(seed=3), tasks.sample(seed=3)
    np.testing.assert_array_equal(a.support_x, b.support_x)
    np.testing.assert_allclose(a(a.query_x), a.query_y, atol=1e-5)
    assert 0 <= a.phase <= math.pi
    first = [e[0][0].numpy() for e in SinusoidTasks(seed=1).dataset(episodes=3)]
    again = [e[0][0].numpy() for e in SinusoidTasks(seed=1).dataset(episodes=3)]
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("kwargs,name", [({"shots": 0}, "shots"), ({"amplitude": (5, 1)}, "amplitude"),
                                         ({"x_range": "ab"}, "x_range")])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SinusoidTasks(**kwargs)
