"""Test-time augmentation: shift averaging (`ShiftAverage`, `with_test_time_shifts`), affine
views (`AffineAverage`, `with_test_time_augmentation`, `affine_views`) and their exports."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.backbones import conv4
from tfmeta.data.augment import RandomAffine
from tfmeta.test_time_augmentation import (
    AffineAverage,
    ShiftAverage,
    draw_test_time_transforms,
    with_test_time_augmentation,
    with_test_time_shifts,
)

def _shifted(x, dy, dx):
    """`x` translated by (dy, dx) pixels with zero fill, computed independently in numpy."""
    out = np.zeros_like(x)
    h, w = x.shape[1:3]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out

@pytest.fixture(scope="module")
def encoder():
    return conv4((12, 12, 1), filters=4, blocks=2)

@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 12, 12, 1)).astype("float32")

@pytest.mark.parametrize("max_shift", [1, 2])
def test_inference_averages_the_embedding_over_every_translation(encoder, images, max_shift):
    wrapped = with_test_time_shifts(encoder, max_shift=max_shift)
    views = [
        encoder(_shifted(images, dy, dx), training=False).numpy()
        for dy in range(-max_shift, max_shift + 1)
        for dx in range(-max_shift, max_shift + 1)
    ]
    assert len(views) == (2 * max_shift + 1) ** 2
    np.testing.assert_allclose(wrapped(images, training=False).numpy(), np.mean(views, 0), atol=1e-5)
    # The views really differ, so the average is not the plain embedding.
    assert np.abs(np.mean(views, 0) - views[len(views) // 2]).max() > 1e-4

def test_training_and_zero_shift_are_the_plain_encoder(encoder, images):
    wrapped = with_test_time_shifts(encoder, max_shift=1)
    assert wrapped.input_shape == encoder.input_shape
    assert wrapped.output_shape == encoder.output_shape
    np.testing.assert_allclose(
        wrapped(images, training=True).numpy(), encoder(images, training=True).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        with_test_time_shifts(encoder, 0)(images, training=False).numpy(),
        encoder(images, training=False).numpy(),
        atol=1e-6,
    )
    # Training updates the wrapped encoder's own weights (shared, not copied).
    assert {id(v) for v in wrapped.trainable_weights} == {id(v) for v in encoder.trainable_weights}

@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_bad_max_shift_is_named(encoder, bad):
    with pytest.raises(ValueError, match="`max_shift` must be an integer >= 0; received"):
        ShiftAverage(encoder, max_shift=bad)

def test_shift_averaged_siamese_exports_the_same_numbers(encoder, images, tmp_path):
    model = tfmeta.SiameseNetwork(
        with_test_time_shifts(encoder, 1), objective="contrastive", distance="euclidean"
    )
    support_y = np.array([0, 1, 2], np.int32)
    expected = model.predict_few_shot(images[:3], support_y, images[3:])
    loaded = tf.saved_model.load(model.export(str(tmp_path / "siamese_tta")))
    got = loaded.signatures["few_shot"](
        support_x=tf.constant(images[:3]),
        support_y=tf.constant(support_y),
        query_x=tf.constant(images[3:]),
    )["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The export carries the averaging: it differs from the plain encoder's probabilities.
    plain = tfmeta.SiameseNetwork(encoder, objective="contrastive", distance="euclidean")
    assert np.abs(plain.predict_few_shot(images[:3], support_y, images[3:]) - expected).max() > 1e-6

def test_config_round_trip(encoder, images):
    layer = ShiftAverage(encoder, max_shift=2)
    clone = ShiftAverage.from_config(layer.get_config())
    assert clone.max_shift == 2
    clone.encoder.set_weights(encoder.get_weights())
    np.testing.assert_allclose(
        clone(images, training=False).numpy(), layer(images, training=False).numpy(), atol=1e-6
    )

@pytest.fixture(scope="module")
def members():
    import keras

    keras.utils.set_random_seed(3)
    return [conv4((12, 12, 1), filters=4, blocks=2) for _ in range(3)]

def test_concatenated_encoders_export_and_reload_the_same_numbers(members, images, tmp_path):
    joint = with_test_time_shifts(tfmeta.backbones.concatenate_encoders(members))
    model = tfmeta.PrototypicalNetwork(joint)
    sx, sy, qx = images[:3], np.array([0, 1, 2], "int32"), images[3:]
    direct = model.predict_few_shot(sx, sy, qx)
    path = model.export(str(tmp_path / "ensemble"))
    served = tf.saved_model.load(path).signatures["few_shot"](
        support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
    )["probabilities"].numpy()
    np.testing.assert_allclose(served, direct, atol=1e-5)
    import keras

    model.save(tmp_path / "ensemble.keras")
    reloaded = keras.models.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(reloaded.predict_few_shot(sx, sy, qx), direct, atol=1e-5)

def _warp(x, t):
    """Bilinear projective warp of `x` [B, H, W, C] by one transform `t` (output pixel -> input
    pixel, zero outside), computed independently in numpy."""
    a0, a1, a2, b0, b1, b2 = (float(v) for v in t[:6])
    out = np.zeros_like(x)
    h, w = x.shape[1:3]

    def pixel(yy, xx):
        inside = 0 <= yy < h and 0 <= xx < w
        return x[:, yy, xx] if inside else 0.0

    for y in range(h):
        for xo in range(w):
            xi, yi = a0 * xo + a1 * y + a2, b0 * xo + b1 * y + b2
            x0, y0 = int(np.floor(xi)), int(np.floor(yi))
            fx, fy = xi - x0, yi - y0
            out[:, y, xo] = (
                (1 - fy) * ((1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1))
                + fy * ((1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1))
            )
    return out

def test_affine_views_average_the_embedding_over_each_warped_copy(encoder, images):
    wrapped = with_test_time_augmentation(encoder, views=4, seed=3)
    transforms = wrapped.get_layer("affine_average").transforms
    assert transforms.shape == (4, 8)
    np.testing.assert_array_equal(transforms[0], [1, 0, 0, 0, 1, 0, 0, 0])  # the image itself
    assert np.abs(transforms[1:, :6] - transforms[0, :6]).max() > 1e-3  # real distortions
    expected = np.mean(
        [encoder(_warp(images, t), training=False).numpy() for t in transforms], axis=0
    )
    np.testing.assert_allclose(wrapped(images, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)
    # An integer translation is an exact shift (cross-check of the warp against `_shifted`).
    shift = [[1, 0, -1, 0, 1, 0, 0, 0]]  # output x reads input x - 1: moved right by one pixel
    np.testing.assert_allclose(
        AffineAverage(encoder, shift)(images, training=False).numpy(),
        encoder(_shifted(images, 0, 1), training=False).numpy(),
        rtol=1e-5, atol=1e-6,
    )

def test_affine_average_trains_as_the_plain_encoder_and_is_seeded(encoder, images):
    wrapped = with_test_time_augmentation(encoder, views=3)
    np.testing.assert_allclose(
        wrapped(images, training=True).numpy(), encoder(images, training=True).numpy(), atol=1e-6
    )
    plain = encoder(images, training=False).numpy()  # after the BN updates of training calls
    assert np.abs(wrapped(images, training=False).numpy() - plain).max() > 1e-4
    one = with_test_time_augmentation(encoder, views=1)
    np.testing.assert_allclose(one(images, training=False).numpy(), plain, atol=1e-6)
    same = draw_test_time_transforms(5, (12, 12, 1), seed=1)
    np.testing.assert_array_equal(same, draw_test_time_transforms(5, (12, 12, 1), seed=1))
    assert np.abs(same - draw_test_time_transforms(5, (12, 12, 1), seed=2)).max() > 1e-3
    # By default the distortions follow the image size (2-pixel shifts at 28, 4 at 56).
    np.testing.assert_array_equal(
        draw_test_time_transforms(5, (56, 56, 1), seed=1),
        draw_test_time_transforms(5, (56, 56, 1), augment=RandomAffine.for_image_size(56), seed=1),
    )

@pytest.mark.parametrize(
    "call, message",
    [
        (lambda e: draw_test_time_transforms(0, (12, 12)), "`views` must be an integer >= 1; received 0"),
        (lambda e: draw_test_time_transforms(2, (12, 12), augment="affine"), "`augment` must have a `transforms"),
        (lambda e: AffineAverage(e, [[1, 0, 0]]), r"`transforms` must be a finite \[views, 8\] array"),
        (lambda e: with_test_time_augmentation("conv4"), "`encoder` must be a keras.Model; received str"),
    ],
)
def test_affine_average_errors_are_named(encoder, call, message):
    with pytest.raises(ValueError, match=message):
        call(encoder)

def test_affine_averaged_protonet_exports_and_reloads_the_same_numbers(encoder, images, tmp_path):
    import keras

    model = tfmeta.PrototypicalNetwork(with_test_time_augmentation(encoder, views=3))
    sx, sy, qx = images[:3], np.array([0, 1, 2], "int32"), images[3:]
    direct = model.predict_few_shot(sx, sy, qx)
    served = tf.saved_model.load(model.export(str(tmp_path / "protonet_tta"))).signatures["few_shot"](
        support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
    )["probabilities"].numpy()
    np.testing.assert_allclose(served, direct, atol=1e-5)
    plain = tfmeta.PrototypicalNetwork(encoder).predict_few_shot(sx, sy, qx)
    assert np.abs(plain - direct).max() > 1e-6  # the export carries the views
    model.save(tmp_path / "protonet_tta.keras")
    reloaded = keras.models.load_model(tmp_path / "protonet_tta.keras")
    np.testing.assert_allclose(reloaded.predict_few_shot(sx, sy, qx), direct, atol=1e-5)

def test_affine_views_reproduce_keras_affine_transform_and_compile_with_xla(images):
    transforms = draw_test_time_transforms(6, (12, 12, 1), seed=4)
    import keras

    reference = np.concatenate(
        [keras.ops.image.affine_transform(images, np.tile(t, (len(images), 1))).numpy() for t in transforms]
    )
    got = tfmeta.test_time_augmentation.affine_views(tf.constant(images), transforms).numpy()
    np.testing.assert_allclose(got, reference, atol=1e-5)
    xla = tf.function(lambda x: tfmeta.test_time_augmentation.affine_views(x, transforms), jit_compile=True)
    np.testing.assert_allclose(xla(tf.constant(images)).numpy(), got, atol=1e-6)
