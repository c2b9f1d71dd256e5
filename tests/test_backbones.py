"""Backbones: test-time shift averaging (`ShiftAverage`, `with_test_time_shifts`)."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.backbones import ShiftAverage, conv4, with_test_time_shifts


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


def test_concatenated_encoders_sum_the_members_protonet_logits(members, images):
    joint = tfmeta.backbones.concatenate_encoders(members)
    embeddings = [m(images, training=False).numpy() for m in members]
    np.testing.assert_allclose(joint(images, training=False).numpy(), np.concatenate(embeddings, 1), atol=1e-6)
    # Under squared Euclidean distance the joint prototypical network adds the members' logits.
    sx, sy, qx = images[:3], np.array([0, 1, 2], "int32"), images[3:]
    logits = lambda enc: tfmeta.PrototypicalNetwork(enc).few_shot_logits(sx, sy, qx, ways=3).numpy()
    np.testing.assert_allclose(logits(joint), sum(logits(m) for m in members), rtol=1e-4, atol=1e-4)
    # The members keep their own weights (shared, not copied).
    assert {id(v) for v in joint.weights} == {id(v) for m in members for v in m.weights}


def test_concatenated_encoders_export_and_reload_the_same_numbers(members, images, tmp_path):
    joint = tfmeta.backbones.with_test_time_shifts(tfmeta.backbones.concatenate_encoders(members))
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


@pytest.mark.parametrize(
    "bad, match",
    [
        ("one", "at least 2"),
        ("same", "more than once"),
        ("shapes", "one input shape"),
        ("not_model", r"encoders\[1\]"),
    ],
)
def test_concatenate_encoders_names_bad_input(members, bad, match):
    arg = {
        "one": members[:1],
        "same": [members[0], members[0]],
        "shapes": [members[0], conv4((14, 14, 1), filters=4, blocks=2)],
        "not_model": [members[0], "conv4"],
    }[bad]
    with pytest.raises(ValueError, match=match):
        tfmeta.backbones.concatenate_encoders(arg)
