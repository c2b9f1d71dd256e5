import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.augment import Compose, RandomAffine, RandomElastic


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


def test_elastic_with_zero_alpha_is_identity():
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    out = RandomElastic(alpha=0.0)(x, tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(out.numpy(), x, atol=1e-6)


def test_elastic_moves_each_pixel_by_its_displacement():
    # On a ramp image I(y, x) = 2y + x, bilinear resampling is exact, so the warped image minus
    # the ramp is the displacement field itself (away from the border, where fill_value enters).
    warp = RandomElastic(alpha=20.0, sigma=3.0)
    seed = tf.constant([3, 4], tf.int64)
    ys, xs = np.mgrid[:28, :28].astype(np.float32)
    ramp = np.stack([2 * ys + xs] * 4)[..., None]
    out = warp(ramp, seed).numpy()[..., 0]
    field = warp.displacements(4, 28, 28, seed).numpy()
    inner = (slice(None), slice(5, 23), slice(5, 23))
    assert np.abs(field).max() < 5.0  # so the inner pixels sample inside the image
    np.testing.assert_allclose(out[inner] - ramp[..., 0][inner],
                               (2 * field[..., 0] + field[..., 1])[inner], atol=1e-3)
    # The field is smooth (neighbours move together) and really moves pixels.
    assert 0.5 < field.std() < 2.0
    step = np.abs(np.diff(field, axis=2)).mean()
    assert step < 0.3 * np.abs(field).mean()


def test_elastic_same_seed_same_images_rank3_and_scaling():
    warp = RandomElastic()
    x = np.stack([_square()[..., 0]] * 4)  # [B, H, W]
    a = warp(x, tf.constant([5, 6], tf.int64)).numpy()
    b = warp(x, tf.constant([5, 6], tf.int64)).numpy()
    c = warp(x, tf.constant([5, 7], tf.int64)).numpy()
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    big = RandomElastic.for_image_size(56)
    assert (big.alpha, big.sigma) == (2 * warp.alpha, 2 * warp.sigma)


def test_compose_applies_each_augmentation_with_its_own_seed():
    warp, affine = RandomElastic(), RandomAffine()
    x = np.stack([_square()] * 4)
    seed = tf.constant([1, 2], tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    expected = affine(warp(x, seeds[0]), seeds[1]).numpy()
    np.testing.assert_allclose(Compose(warp, affine)(x, seed).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    (dict(alpha=-1.0), "alpha"), (dict(sigma=0.0), "sigma"), (dict(alpha="big"), "alpha"),
])
def test_elastic_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomElastic(**kwargs)


def test_compose_rejects_no_or_uncallable_augmentations():
    with pytest.raises(ValueError, match="at least one"):
        Compose()
    with pytest.raises(ValueError, match="callable"):
        Compose(RandomAffine(), 3)
