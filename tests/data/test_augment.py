import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

import keras

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.augment import Compose, RandomAffine, RandomElastic, SeededLayer, as_augmentation
from tfmeta.data.seeds import StatelessSeedGenerator


def _square(size=28):
    img = np.zeros((size, size, 1), np.float32)
    img[10:18, 10:18] = 1.0
    return img


def test_zero_distortion_is_identity():
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    out = RandomAffine(rotation=0, shift=0, scale=0, shear=0)(x, tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(out.numpy(), x, atol=1e-5)


# RandomAffine() for seed [5, 6] on two 28 x 28 images, as the implementation the recipes'
# figures were measured with computed them.
PINNED_TRANSFORMS = [
    [0.969741, -0.066816, 2.023459, -0.004064, 0.970038, 1.317819, 0.0, 0.0],
    [1.04657, -0.191212, 2.327726, 0.063245, 1.038837, -1.352129, 0.0, 0.0],
]
PINNED_INK = [68.22606, 69.413116]
PINNED_CENTRES = [[12.616707, 12.709835], [12.230187, 13.965785]]


def _two_shapes():
    x = np.zeros((2, 28, 28, 1), np.float32)
    x[:, 10:18, 10:18] = 1.0
    x[1, 4:8, 18:24] = 0.5
    return x


def test_random_affine_outputs_are_unchanged():
    seed = tf.constant([5, 6], tf.int64)
    aug = RandomAffine()
    np.testing.assert_allclose(aug.transforms(2, 28, 28, seed).numpy(), PINNED_TRANSFORMS, atol=1e-5)
    x = _two_shapes()
    out = aug(x, seed).numpy()
    # One bilinear resampling by those matrices, constant fill: the raw projective op's images.
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=aug.transforms(2, 28, 28, seed), output_shape=[28, 28],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    ).numpy()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), PINNED_INK, rtol=1e-5)
    np.testing.assert_allclose(_centres(out), PINNED_CENTRES, atol=1e-4)
    filled = RandomAffine(fill_value=0.25)(x, seed).numpy()
    assert filled[1, 0, 0, 0] == 0.25 and filled[1, 14, 14, 0] == out[1, 14, 14, 0]  # (0, 0) maps above the image


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


@pytest.mark.parametrize("kwargs", [{"rotation": -1}, {"scale": 1.5}, {"shift": -2}, {"shear": "10"},
                                    {"rotation": float("nan")}, {"fill_value": "white"}, {"shift": True}])
def test_bad_arguments_name_the_argument(kwargs):
    name, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=f"`{name}` must be .*received {name}={value!r}"):
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
    (dict(fill_value=None), "fill_value"),
])
def test_elastic_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomElastic(**kwargs)


def test_compose_rejects_no_or_uncallable_augmentations():
    with pytest.raises(ValueError, match="at least one"):
        Compose()
    with pytest.raises(ValueError, match="callable"):
        Compose(RandomAffine(), 3)


def test_elastic_displacements_have_simard_statistics():
    # Two ramp channels, I = y and I = x: away from the border the warp minus the ramps is the
    # displacement field, whose per-axis spread follows from uniform [-1, 1] noise (variance 1/3)
    # smoothed by the normalised Gaussian g (taps within 2 sigma): alpha * sqrt(sum(g2d^2) / 3).
    alpha, sigma, size = 20.0, 3.0, 48
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    ramps = np.broadcast_to(np.stack([ys, xs], axis=-1), (32, size, size, 2))
    moved = RandomElastic(alpha, sigma)(ramps, tf.constant([1, 2], tf.int64)).numpy() - ramps
    inner = moved[:, 12:-12, 12:-12]
    radius = int(np.ceil(2 * sigma))
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    g /= g.sum()
    spread = alpha * np.sqrt(np.sum(g**2) ** 2 / 3.0)
    np.testing.assert_allclose(inner.std(axis=(0, 1, 2)), [spread, spread], rtol=0.1)
    # Mean displacement magnitude of two independent normal axes: spread * sqrt(pi / 2).
    magnitude = np.sqrt((inner**2).sum(-1)).mean()
    np.testing.assert_allclose(magnitude, spread * np.sqrt(np.pi / 2), rtol=0.1)
    # The two axes move independently (not every pixel along one diagonal).
    assert abs(np.corrcoef(inner[..., 0].ravel(), inner[..., 1].ravel())[0, 1]) < 0.1


# --- Keras preprocessing layers as augmentations -------------------------------------------


def _noise_images(n=6, size=16):
    return np.random.default_rng(1).random((n, size, size, 1)).astype(np.float32)


@pytest.mark.parametrize("layer", [
    keras.layers.RandomRotation(0.1, fill_mode="constant"),
    keras.layers.RandomTranslation(0.2, 0.2, fill_mode="constant"),
    keras.layers.RandomZoom(0.2),
    keras.layers.RandomShear(0.3),
    keras.layers.RandomElasticTransform(1.0, scale=0.5),
], ids=lambda layer: type(layer).__name__)
def test_a_keras_layer_applies_with_the_given_seed(layer):
    x = _noise_images()
    augment = as_augmentation(layer)
    a = augment(x, tf.constant([3, 4], tf.int64)).numpy()
    keras.utils.set_random_seed(7)  # the layer's own generators are not involved
    b = augment(x, tf.constant([3, 4], tf.int64)).numpy()
    c = augment(x, tf.constant([3, 5], tf.int64)).numpy()
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1 and np.abs(a - x).max() > 0.1
    # Images of one batch get different transformations.
    assert not np.allclose(a[0] - x[0], a[1] - x[1], atol=1e-3)


def test_seeded_layer_keeps_rank_3_images_and_dtype():
    augment = SeededLayer(keras.layers.RandomRotation(0.1, fill_mode="constant"))
    x = _noise_images()
    flat = augment(x[..., 0], tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(flat, augment(x, tf.constant([1, 2])).numpy()[..., 0])
    half = augment(tf.constant(x, tf.float16), tf.constant([1, 2]))
    assert half.dtype == tf.float16 and half.shape == x.shape


def test_sequential_and_compose_give_each_layer_its_own_split_seed():
    rotate = keras.layers.RandomRotation(0.1, fill_mode="constant")
    zoom = keras.layers.RandomZoom(0.2, fill_mode="constant")
    x = _noise_images()
    seed = tf.constant([1, 2], tf.int64)
    s = tf.random.experimental.stateless_split(seed, 2)
    expected = SeededLayer(zoom)(SeededLayer(rotate)(x, s[0]), s[1]).numpy()
    np.testing.assert_array_equal(as_augmentation(keras.Sequential([rotate, zoom]))(x, seed).numpy(), expected)
    np.testing.assert_array_equal(as_augmentation(keras.layers.Pipeline([rotate, zoom]))(x, seed).numpy(), expected)
    np.testing.assert_array_equal(Compose(rotate, zoom)(x, seed).numpy(), expected)
    # Keras layers and tfmeta augmentations mix; a deterministic layer applies as it is.
    mixed = Compose(rotate, RandomAffine(), keras.layers.Rescaling(2.0))(x, seed).numpy()
    three = tf.random.experimental.stateless_split(seed, 3)
    np.testing.assert_allclose(
        mixed, 2 * RandomAffine()(SeededLayer(rotate)(x, three[0]), three[1]).numpy(), atol=1e-6
    )


@pytest.mark.parametrize("layer", [keras.layers.RandAugment(value_range=(0, 1)), keras.layers.GaussianNoise(0.1)],
                         ids=lambda layer: type(layer).__name__)
def test_a_layer_that_ignores_the_seed_is_refused(layer):
    # RandAugment draws from its own generator whatever seed it is given; GaussianNoise has none.
    with pytest.raises(ValueError, match="`augment` layer .* different images for the same seed"):
        as_augmentation(layer)(_noise_images(), tf.constant([0, 1]))


@pytest.mark.parametrize("augment, message", [
    ("affine", r"`augment` must be a callable augment\(images, seed\) -> images or a Keras"),
    (3, "`augment` must be a callable"),
    (keras.Sequential([]), "`augment` must hold at least one layer, received an empty Sequential"),
])
def test_as_augmentation_names_the_argument(augment, message):
    with pytest.raises(ValueError, match=message):
        as_augmentation(augment)
    assert as_augmentation(None) is None
    affine = RandomAffine()
    assert as_augmentation(affine) is affine


def test_stateless_seed_generator_hands_out_a_repeatable_sequence():
    a, b = StatelessSeedGenerator(tf.constant([4, 5])), StatelessSeedGenerator(tf.constant([4, 5], tf.int64))
    first = [a.next().numpy().tolist() for _ in range(3)]
    assert first == [b.next().numpy().tolist() for _ in range(3)]
    assert len({tuple(s) for s in first}) == 3  # several draws of one call differ
    other = StatelessSeedGenerator(tf.constant([4, 6])).next().numpy().tolist()
    assert other != first[0]
    assert isinstance(a, keras.random.SeedGenerator)  # what Keras's random ops accept as `seed`
    u = keras.random.uniform([3], seed=StatelessSeedGenerator(tf.constant([4, 5])))
    np.testing.assert_array_equal(u, keras.random.uniform([3], seed=StatelessSeedGenerator(tf.constant([4, 5]))))
    with pytest.raises(ValueError, match=r"`seed` must be an integer tensor of shape \[2\]"):
        StatelessSeedGenerator(tf.constant([1, 2, 3]))
