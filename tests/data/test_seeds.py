"""The samplers' pipelines depend on their own seed alone, not on TensorFlow's global seed."""

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.seeds import seed_stream
from tfmeta.data.sinusoid import SinusoidTasks


def _labelled(n_classes=12, per_class=6):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n_classes * per_class, 4, 4, 1)).astype(np.float32), np.repeat(np.arange(n_classes), per_class)


def _episodes(global_seed):
    x, y = _labelled()
    if global_seed is not None:
        keras.utils.set_random_seed(global_seed)
    ds = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=1234).dataset(meta_batch=2, episodes=3)
    return [np.concatenate([sx.numpy().ravel(), qy.numpy().ravel().astype(np.float32)]) for (sx, _, _), qy in ds]


def _pairs(global_seed):
    x, y = _labelled()
    keras.utils.set_random_seed(global_seed)
    return [a.numpy() for (a, _), _ in PairSampler(x, y, seed=3).dataset(batch_size=8).take(2)]


def _sinusoids(global_seed):
    keras.utils.set_random_seed(global_seed)
    return [q.numpy() for _, q in SinusoidTasks(shots=5, seed=3).dataset(meta_batch=4, episodes=2)]


@pytest.mark.parametrize("draw", [_episodes, _pairs, _sinusoids])
def test_pipelines_ignore_the_global_seed(draw):
    first, second = draw(0), draw(1)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_episodes_differ_between_sampler_seeds_and_across_elements():
    x, y = _labelled()
    a = [e[0][0].numpy() for e in EpisodeSampler(x, y, 3, 1, 2, seed=1).dataset(episodes=4)]
    b = [e[0][0].numpy() for e in EpisodeSampler(x, y, 3, 1, 2, seed=2).dataset(episodes=4)]
    assert not np.array_equal(a[0], b[0])
    assert len({arr.tobytes() for arr in a}) == 4


def test_seed_stream_is_a_function_of_its_arguments():
    a = [s.numpy().tolist() for s in seed_stream(7).take(3)]
    keras.utils.set_random_seed(5)
    assert a == [s.numpy().tolist() for s in seed_stream(7).take(3)]
    assert a != [s.numpy().tolist() for s in seed_stream(7, stream=1).take(3)]
    assert len({tuple(s) for s in a}) == 3
