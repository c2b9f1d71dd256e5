"""Statistics and errors of tfmeta.data.EpisodeSampler.

Examples are their own index (x[i] = i), so every sampled image tells which example and class
it came from.
"""

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeSampler


def indexed_data(n_classes=20, per_class=10, ragged=False):
    sizes = [per_class + (c % 3 if ragged else 0) for c in range(n_classes)]
    y = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)]).astype(np.int64)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))  # classes interleaved, not contiguous
    y = y[perm]
    x = np.arange(len(y), dtype=np.float32)[:, None]
    return x, y


def idx(a):
    return np.asarray(a).reshape(len(a), -1)[:, 0].astype(np.int64)


def check_episode(y, sx, sy, qx, qy, ways, shots, queries):
    s_idx, q_idx = idx(sx), idx(qx)
    assert sorted(np.unique(sy)) == list(range(ways))
    assert sorted(np.unique(qy)) == list(range(ways))
    # Class balance: K shots and Q queries of every label.
    assert np.all(np.bincount(sy, minlength=ways) == shots)
    assert np.all(np.bincount(qy, minlength=ways) == queries)
    # No example twice, none both in support and query.
    assert len(set(s_idx.tolist())) == len(s_idx)
    assert len(set(q_idx.tolist())) == len(q_idx)
    assert not set(s_idx.tolist()) & set(q_idx.tolist())
    # Each label is one original class, the same in support and query; labels distinct classes.
    label_class = {}
    for label in range(ways):
        classes = set(y[s_idx[sy == label]].tolist()) | set(y[q_idx[qy == label]].tolist())
        assert len(classes) == 1
        label_class[label] = classes.pop()
    assert len(set(label_class.values())) == ways
    return label_class


def test_single_episode_structure_and_dtypes():
    x, y = indexed_data()
    ep = EpisodeSampler(x, y, ways=5, shots=2, queries=3, seed=0).sample()
    assert ep.support_x.shape == (10, 1) and ep.query_x.shape == (15, 1)
    assert ep.support_y.dtype == np.int32 and ep.query_y.dtype == np.int32
    check_episode(y, ep.support_x, ep.support_y, ep.query_x, ep.query_y, 5, 2, 3)


@pytest.mark.parametrize("meta_batch", [1, 32])
def test_dataset_episodes_are_valid(meta_batch):
    x, y = indexed_data(ragged=True)
    sampler = EpisodeSampler(x, y, ways=5, shots=1, queries=4, seed=3)
    for (sx, sy, qx), qy in sampler.dataset(meta_batch=meta_batch, episodes=3):
        assert sx.shape == (meta_batch, 5, 1) and qx.shape == (meta_batch, 20, 1)
        assert sy.shape == (meta_batch, 5) and qy.shape == (meta_batch, 20)
        assert sy.dtype.name == "int32" and qy.dtype.name == "int32"
        for t in range(meta_batch):
            check_episode(y, sx[t].numpy(), sy[t].numpy(), qx[t].numpy(), qy[t].numpy(), 5, 1, 4)


def test_every_class_equally_likely_and_label_order_random():
    x, y = indexed_data(n_classes=20, per_class=10, ragged=True)
    ways, episodes = 5, 800
    sampler = EpisodeSampler(x, y, ways=ways, shots=1, queries=1, seed=0)
    class_counts = np.zeros(20)
    label0_class = []
    example_counts = np.zeros(len(y))
    for (sx, sy, qx, ), qy in sampler.dataset(meta_batch=100, episodes=episodes // 100):
        for t in range(sx.shape[0]):
            mapping = check_episode(
                y, sx[t].numpy(), sy[t].numpy(), qx[t].numpy(), qy[t].numpy(), ways, 1, 1
            )
            for c in mapping.values():
                class_counts[c] += 1
            label0_class.append(mapping[0])
            example_counts[idx(sx[t].numpy())] += 1
    # Chi-square goodness of fit for uniform classes (df = 19; 0.001 critical value 43.8).
    expected = episodes * ways / 20
    chi2 = np.sum((class_counts - expected) ** 2 / expected)
    assert chi2 < 43.8, (chi2, class_counts)
    # Labels are assigned in a random order: label 0 is many different classes.
    assert len(set(label0_class)) >= 15
    # Within a class, every example can be the support example.
    assert np.all(example_counts > 0)


def test_deterministic_for_a_seed():
    x, y = indexed_data()
    a = EpisodeSampler(x, y, ways=5, shots=1, queries=2, seed=7)
    b = EpisodeSampler(x, y, ways=5, shots=1, queries=2, seed=7)
    ea = [e[0][0].numpy() for e in a.dataset(meta_batch=4, episodes=3)]
    eb = [e[0][0].numpy() for e in b.dataset(meta_batch=4, episodes=3)]
    for u, v in zip(ea, eb):
        np.testing.assert_array_equal(u, v)
    ec = [e[0][0].numpy() for e in a.dataset(meta_batch=4, episodes=3, seed=8)]
    assert any(not np.array_equal(u, v) for u, v in zip(ea, ec))
    np.testing.assert_array_equal(a.sample(seed=5).query_x, b.sample(seed=5).query_x)
    assert not np.array_equal(a.sample(seed=5).query_x, a.sample(seed=6).query_x)


def test_too_many_ways_names_argument_and_counts():
    x, y = indexed_data(n_classes=4)
    with pytest.raises(ValueError) as err:
        EpisodeSampler(x, y, ways=5, shots=1, queries=1)
    msg = str(err.value)
    assert "`ways`=5" in msg and "4 classes" in msg


def test_shots_plus_queries_larger_than_smallest_class():
    x, y = indexed_data(n_classes=6, per_class=5)
    with pytest.raises(ValueError) as err:
        EpisodeSampler(x, y, ways=5, shots=2, queries=4)
    msg = str(err.value)
    assert "`shots`" in msg and "`queries`" in msg
    assert "= 6" in msg  # what was asked: shots + queries
    assert "smallest class size found: 5" in msg
    assert "5-way 2-shot" in msg and "6 classes" in msg


def test_classes_too_small_are_skipped_when_enough_remain():
    x, y = indexed_data(n_classes=8, per_class=6)
    y = y.copy()
    # Shrink class 0 to 2 examples by relabelling the rest as class 1.
    zero = np.flatnonzero(y == 0)
    y[zero[2:]] = 1
    sampler = EpisodeSampler(x, y, ways=5, shots=2, queries=2, seed=0)
    assert 0 not in sampler.classes.tolist()
    for (sx, sy, qx), qy in sampler.dataset(meta_batch=20, episodes=2):
        for t in range(20):
            mapping = check_episode(y, sx[t].numpy(), sy[t].numpy(), qx[t].numpy(), qy[t].numpy(), 5, 2, 2)
            assert 0 not in mapping.values()


@pytest.mark.parametrize("kwargs, name", [({"ways": 0}, "ways"), ({"shots": 0}, "shots"), ({"queries": -1}, "queries")])
def test_bad_counts_name_the_argument(kwargs, name):
    x, y = indexed_data()
    args = {"ways": 5, "shots": 1, "queries": 1, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        EpisodeSampler(x, y, **args)


def test_class_groups_draw_each_episode_from_one_usable_group():
    x, y = indexed_data(n_classes=20, per_class=10)
    # Groups of 8, 7 and 5 classes: a 6-way episode can come from "a" or "b" only.
    groups = {c: "a" if c < 8 else "b" if c < 15 else "c" for c in range(20)}
    sampler = EpisodeSampler(x, y, ways=6, shots=1, queries=2, seed=0, class_groups=groups)
    assert sampler.groups == ["a", "b"]
    drawn = []
    for (sx, sy, qx), qy in sampler.dataset(meta_batch=50, episodes=4):
        for t in range(sx.shape[0]):
            mapping = check_episode(y, sx[t].numpy(), sy[t].numpy(), qx[t].numpy(), qy[t].numpy(), 6, 1, 2)
            episode_groups = {groups[c] for c in mapping.values()}
            assert len(episode_groups) == 1
            drawn.append(episode_groups.pop())
    # Usable groups are equally likely (200 episodes: binomial sd ~7).
    assert abs(drawn.count("a") - 100) < 30 and "c" not in drawn


def test_class_groups_errors_name_the_argument():
    x, y = indexed_data(n_classes=10)
    with pytest.raises(ValueError, match=r"`ways`=6 .*largest of its 2 groups has 5"):
        EpisodeSampler(x, y, ways=6, shots=1, queries=1, class_groups={c: c % 2 for c in range(10)})
    with pytest.raises(ValueError, match=r"`class_groups` has no group for classes \[9\]"):
        EpisodeSampler(x, y, ways=2, shots=1, queries=1, class_groups={c: 0 for c in range(9)})


def image_data(n_classes=10, per_class=4, size=16):
    rng = np.random.default_rng(2)
    return rng.random((n_classes * per_class, size, size, 1)).astype(np.float32), np.repeat(np.arange(n_classes), per_class)


def support_images(sampler, **kwargs):
    return [sx.numpy() for (sx, _, _), _ in sampler.dataset(meta_batch=2, episodes=3, **kwargs)]


@pytest.mark.parametrize("augment", [
    keras.layers.RandomRotation(0.05, fill_mode="constant"),
    keras.Sequential([keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"), keras.layers.RandomZoom(0.1)]),
], ids=["RandomRotation", "Sequential"])
def test_a_keras_layer_augments_repeatable_episodes(augment):
    x, y = image_data()
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=4)
    plain = support_images(sampler)
    first = support_images(sampler, augment=augment)
    keras.utils.set_random_seed(9)  # the layers' own generators play no part
    again = support_images(sampler, augment=augment)
    other = support_images(sampler, augment=augment, seed=5)
    for a, b, p in zip(first, again, plain):
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - p).max() > 0.1  # the images really change
    assert all(not np.array_equal(a, c) for a, c in zip(first, other))
    # Episode k is the same whatever came before: the third element alone equals the third of three.
    third = next(iter(sampler.dataset(meta_batch=2, episodes=3, augment=augment).skip(2)))
    np.testing.assert_array_equal(third[0][0].numpy(), first[2])
    # The same drawings and labels as without augmentation: only the images move.
    (_, sy, _), qy = next(iter(sampler.dataset(meta_batch=2, augment=augment)))
    (_, py, _), pqy = next(iter(sampler.dataset(meta_batch=2)))
    np.testing.assert_array_equal(sy.numpy(), py.numpy())
    np.testing.assert_array_equal(qy.numpy(), pqy.numpy())


def test_bad_augment_names_the_argument():
    x, y = image_data()
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=1)
    with pytest.raises(ValueError, match="`augment` must be a callable"):
        sampler.dataset(augment="rotate")
    with pytest.raises(ValueError, match="`augment` layer 'gaussian_noise.*' .*different images for the same seed"):
        sampler.dataset(augment=keras.layers.GaussianNoise(0.1))
