"""Statistics and errors of tfmeta.data.PairSampler (x[i] = i identifies each example)."""

import keras
import numpy as np
import pytest

from tfmeta.data import PairSampler


def indexed_data(n_classes=10, per_class=6):
    y = np.repeat(np.arange(n_classes), per_class).astype(np.int64)
    y = y[np.random.default_rng(1).permutation(len(y))]
    x = np.arange(len(y), dtype=np.float32)[:, None]
    return x, y


def idx(a):
    return np.asarray(a)[:, 0].astype(np.int64)


@pytest.mark.parametrize("batch_size", [2, 7, 64])
def test_exactly_half_same_and_labels_true(batch_size):
    x, y = indexed_data()
    for (x1, x2), same in PairSampler(x, y, seed=0).dataset(batch_size, batches=3):
        i1, i2, s = idx(x1.numpy()), idx(x2.numpy()), same.numpy()
        assert s.dtype == np.float32 and set(np.unique(s)) <= {0.0, 1.0}
        assert int(s.sum()) == batch_size // 2
        np.testing.assert_array_equal(y[i1] == y[i2], s == 1.0)
        # Same pairs are two different drawings, not one image twice.
        assert np.all(i1[s == 1.0] != i2[s == 1.0])


def test_order_shuffled_and_classes_uniform():
    x, y = indexed_data(n_classes=10, per_class=6)
    sampler = PairSampler(x, y, seed=0)
    same_cls = np.zeros(10)
    diff_cls = np.zeros(10)
    first_half_same = []
    for (x1, x2), same in sampler.dataset(200, batches=10):
        i1, i2, s = idx(x1.numpy()), idx(x2.numpy()), same.numpy()
        first_half_same.append(s[:100].mean())
        np.add.at(same_cls, y[i1[s == 1]], 1)
        np.add.at(diff_cls, y[i1[s == 0]], 1)
        np.add.at(diff_cls, y[i2[s == 0]], 1)
    # Shuffled: the first half of a batch is not all same pairs.
    assert 0.3 < np.mean(first_half_same) < 0.7
    # Uniform over classes (chi-square, df = 9, 0.001 critical value 27.9).
    for counts in (same_cls, diff_cls):
        expected = counts.sum() / 10
        assert np.sum((counts - expected) ** 2 / expected) < 27.9, counts


def test_deterministic_for_a_seed():
    x, y = indexed_data()
    a = [e[0][0].numpy() for e in PairSampler(x, y, seed=3).dataset(16, batches=3)]
    b = [e[0][0].numpy() for e in PairSampler(x, y, seed=3).dataset(16, batches=3)]
    c = [e[0][0].numpy() for e in PairSampler(x, y, seed=4).dataset(16, batches=3)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, c))
    s = PairSampler(x, y, seed=3)
    np.testing.assert_array_equal(s.sample(8, seed=1)[0][0], s.sample(8, seed=1)[0][0])


def test_singleton_classes_only_in_different_pairs():
    y = np.array([0, 0, 0, 1, 2, 3], dtype=np.int64)
    x = np.arange(6, dtype=np.float32)[:, None]
    (x1, x2), same = PairSampler(x, y, seed=0).sample(200, seed=0)
    i1, i2 = idx(x1), idx(x2)
    assert set(y[i1[same == 1]]) == {0}
    assert set(y[np.concatenate([i1[same == 0], i2[same == 0]])]) == {0, 1, 2, 3}


def test_errors_name_the_problem():
    x = np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="at least 2 classes.*received 1"):
        PairSampler(x, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="2 or more examples"):
        PairSampler(x, np.arange(4))
    with pytest.raises(ValueError, match="`batch_size`"):
        PairSampler(*indexed_data()).dataset(1)
    with pytest.raises(ValueError, match="same length"):
        PairSampler(x, np.arange(3))


def test_a_keras_layer_augments_repeatable_pairs():
    rng = np.random.default_rng(3)
    x = rng.random((40, 16, 16, 1)).astype(np.float32)
    y = np.repeat(np.arange(10), 4)
    sampler = PairSampler(x, y, seed=1)
    augment = keras.layers.RandomRotation(0.05, fill_mode="constant")

    def batches(**kwargs):
        return [(x1.numpy(), x2.numpy(), same.numpy()) for (x1, x2), same in sampler.dataset(8, batches=2, **kwargs)]

    first, again, other, plain = batches(augment=augment), batches(augment=augment), \
        batches(augment=augment, seed=2), batches()
    for (a1, a2, s), (b1, b2, _), (c1, _, _), (p1, p2, ps) in zip(first, again, other, plain):
        np.testing.assert_array_equal(a1, b1)
        np.testing.assert_array_equal(a2, b2)
        assert not np.array_equal(a1, c1)
        np.testing.assert_array_equal(s, ps)  # the same pairs, distorted
        assert np.abs(a1 - p1).max() > 0.1 and np.abs(a2 - p2).max() > 0.1
    with pytest.raises(ValueError, match="`augment` must be a callable"):
        sampler.dataset(augment=0.1)
