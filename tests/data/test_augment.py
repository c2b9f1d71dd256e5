import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.augment import RandomAffine


def _square(size=28):
    img = np.zeros((size, size, 1), np.float32)
    img[10:18, 10:18] = 1.0
    return img


def test_zero_distortion_is_identity():
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    out = RandomAffine(rotation=0, shift=0, scale=0, shear=0)(x, tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(out.numpy(), x, atol=1e-5)


def test_pure_shift_moves_the_centre_of_mass_within_bounds():
    x = np.stack([_square()] * 64)
    out = RandomAffine(rotation=0, shift=3, scale=0, shear=0)(x, tf.constant([3, 4], tf.int64)).numpy()
    ys, xs = np.mgrid[:28, :28]
    mass = out[..., 0].sum(axis=(1, 2))
    cy = (out[..., 0] * ys).sum(axis=(1, 2)) / mass
    cx = (out[..., 0] * xs).sum(axis=(1, 2)) / mass
    # The square's centre is 13.5; shifts are uniform in [-3, 3] on each axis.
    assert np.all(np.abs(cy - 13.5) <= 3.01) and np.all(np.abs(cx - 13.5) <= 3.01)
    assert np.std(cx) > 1.0 and np.std(cy) > 1.0  # really random, not a constant shift
    np.testing.assert_allclose(mass, 64.0, rtol=1e-4)  # a shift keeps all the ink


def test_same_seed_same_images_and_rank3_input():
    aug = RandomAffine()
    x = np.stack([_square()[..., 0]] * 8)  # [B, H, W]
    a = aug(x, tf.constant([5, 6], tf.int64)).numpy()
    b = aug(x, tf.constant([5, 6], tf.int64)).numpy()
    c = aug(x, tf.constant([5, 7], tf.int64)).numpy()
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def _centres(images):
    ys, xs = np.mgrid[: images.shape[1], : images.shape[2]]
    mass = images[..., 0].sum(axis=(1, 2))
    return np.stack([(images[..., 0] * ys).sum(axis=(1, 2)) / mass,
                     (images[..., 0] * xs).sum(axis=(1, 2)) / mass], axis=1)


def test_for_image_size_scales_the_shift_with_the_image():
    seed = tf.constant([8, 9], tf.int64)
    small = np.stack([_square(28)] * 32)
    large = np.repeat(np.repeat(small, 2, axis=1), 2, axis=2)  # the same squares at 56 x 56
    still = dict(rotation=0, scale=0, shear=0)
    moved_28 = _centres(RandomAffine.for_image_size(28, **still)(small, seed).numpy()) - 13.5
    moved_56 = _centres(RandomAffine.for_image_size(56, **still)(large, seed).numpy()) - 27.5
    assert np.abs(moved_28).max() <= 2.01 and np.abs(moved_28).max() > 1.0
    # The same draw moves the 56 x 56 square twice as many pixels: the same fraction of the image.
    np.testing.assert_allclose(moved_56, 2 * moved_28, atol=0.02)
    assert RandomAffine.for_image_size(28).get_config() == RandomAffine().get_config()
    assert RandomAffine.for_image_size(105, rotation=5).get_config()["rotation"] == 5


@pytest.mark.parametrize("kwargs, name", [({"image_size": 0}, "image_size"),
                                          ({"image_size": 28, "reference_size": -1}, "reference_size"),
                                          ({"image_size": 28, "scale": 2.0}, "scale")])
def test_for_image_size_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        RandomAffine.for_image_size(**kwargs)


@pytest.mark.parametrize("kwargs", [{"rotation": -1}, {"scale": 1.5}, {"shift": -2}])
def test_bad_arguments_name_the_argument(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        RandomAffine(**kwargs)


def test_augmented_episode_and_pair_pipelines_are_repeatable():
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1)).astype(np.float32)
    y = np.repeat(np.arange(8), 5)
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=0)
    first = list(sampler.dataset(meta_batch=2, episodes=2, augment=RandomAffine()).as_numpy_iterator())
    again = list(sampler.dataset(meta_batch=2, episodes=2, augment=RandomAffine()).as_numpy_iterator())
    plain = list(sampler.dataset(meta_batch=2, episodes=2).as_numpy_iterator())
    for (a, b, p) in zip(first, again, plain):
        np.testing.assert_array_equal(a[0][0], b[0][0])
        np.testing.assert_array_equal(a[0][1], p[0][1])  # labels untouched
        assert np.abs(a[0][0] - p[0][0]).max() > 0.05  # images distorted
    pairs = PairSampler(x, y, seed=0)
    (x1, x2), same = next(iter(pairs.dataset(batch_size=8, augment=RandomAffine())))
    (p1, p2), psame = next(iter(pairs.dataset(batch_size=8)))
    np.testing.assert_array_equal(same.numpy(), psame.numpy())
    assert np.abs(x1.numpy() - p1.numpy()).max() > 0.05
