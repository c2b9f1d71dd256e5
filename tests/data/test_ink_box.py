import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data.ink_box import (
    InkBoxNormalization,
    ink_box_normalize,
    normalize_images,
    with_ink_box_normalization,
)


def _ink_extent(image, threshold=0.25):
    rows = np.where(image[..., 0].max(axis=1) > threshold)[0]
    cols = np.where(image[..., 0].max(axis=0) > threshold)[0]
    return rows[0], rows[-1], cols[0], cols[-1]


def _glyph(canvas=105, top=30, left=20, scale=1):
    """An asymmetric 'L' with a bar, drawn at `scale` times 20 x 40 pixels."""
    img = np.zeros((canvas, canvas, 1), np.float32)
    h, w, t = 20 * scale, 40 * scale, 3 * scale
    img[top : top + h, left : left + t] = 1.0  # vertical stroke
    img[top + h - t : top + h, left : left + w] = 1.0  # bottom bar
    img[top : top + t, left + w // 2 : left + w // 2 + t] = 1.0  # a tick
    return img


def test_the_long_side_of_the_box_fills_box_size_and_the_aspect_ratio_is_kept():
    img = np.zeros((1, 105, 105, 1), np.float32)
    img[0, 40:52, 10:70] = 1.0  # 12 x 60: a wide, short block of ink
    out = ink_box_normalize(img, box_size=24, output_size=28).numpy()[0]
    top, bottom, left, right = _ink_extent(out, threshold=0.5)
    assert (left, right) == (2, 25)  # 24 pixels wide, centred with a 2-pixel border
    height = bottom - top + 1
    assert 4 <= height <= 6  # 24 * 12 / 60 = 4.8
    assert abs((top + bottom) / 2 - 13.5) <= 0.5  # centred vertically
    assert out.max() <= 1.0 + 1e-6 and out.min() >= 0.0


def test_position_and_size_of_the_drawing_do_not_matter():
    small = _glyph(top=10, left=5, scale=1)
    large = _glyph(top=50, left=22, scale=2)
    out = ink_box_normalize(np.stack([small, large]), 24, 28).numpy()
    plain = tf.image.resize(np.stack([small, large]), (28, 28), method="area").numpy()
    # After normalisation the two drawings nearly coincide; plain downsampling keeps them apart.
    assert np.abs(out[0] - out[1]).mean() < 0.03
    assert np.abs(plain[0] - plain[1]).mean() > 5 * np.abs(out[0] - out[1]).mean()


def test_thin_strokes_survive_downscaling():
    img = np.zeros((1, 105, 105, 1), np.float32)
    img[0, 10:95, 52] = 1.0  # one pixel wide, 85 tall
    img[0, 10, 20:85] = 1.0  # a one-pixel bar makes the box 65 wide
    out = ink_box_normalize(img, 24, 28).numpy()[0, ..., 0]
    # A 1-pixel line scaled by 24/85 carries 0.28 of an output pixel's ink across every row
    # it crosses: area averaging keeps it (point sampling at 24 x 24 would often miss it).
    ink_per_row = out[4:24, 10:18].sum(axis=1)
    np.testing.assert_allclose(ink_per_row, 24 / 85, atol=0.03)


def test_empty_image_is_scaled_whole_and_rank3_input_keeps_its_rank():
    out = ink_box_normalize(np.zeros((2, 105, 105), np.float32), 24, 28)
    assert out.shape == (2, 28, 28)
    assert np.all(np.isfinite(out.numpy())) and float(tf.reduce_max(out)) == 0.0


def test_normalize_images_matches_the_tensor_function_in_batches():
    rng = np.random.default_rng(0)
    x = (rng.random((7, 60, 60, 1)) > 0.97).astype(np.float32)
    np.testing.assert_allclose(
        normalize_images(x, 20, 28, batch_size=3), ink_box_normalize(x, 20, 28).numpy(), atol=1e-6
    )
    assert normalize_images(np.zeros((0, 60, 60, 1)), 20, 28).shape == (0, 28, 28, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(box_size=30, output_size=28), "`box_size` must be <= `output_size`; received box_size=30"),
        (dict(box_size=0, output_size=28), "`box_size` must be an int >= 1, received box_size=0"),
        (dict(box_size=24, output_size=28.0), "`output_size` must be an int >= 1, received output_size=28.0"),
    ],
)
def test_bad_sizes_are_refused_with_the_argument_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ink_box_normalize(np.zeros((1, 28, 28, 1), np.float32), **kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        InkBoxNormalization(**kwargs)


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match=r"`images` must have shape \[B, H, W\] or \[B, H, W, C\], received shape \(28, 28\)"):
        ink_box_normalize(np.zeros((28, 28), np.float32))


def test_layer_config_round_trip():
    layer = InkBoxNormalization(20, 32, threshold=0.3, name="norm")
    clone = InkBoxNormalization.from_config(layer.get_config())
    assert (clone.box_size, clone.output_size, clone.threshold, clone.name) == (20, 32, 0.3, "norm")
    assert clone.compute_output_shape((None, 105, 105, 1)) == (None, 32, 32, 1)


def test_siamese_export_on_raw_images_reloads_with_identical_numbers(tmp_path):
    keras.utils.set_random_seed(0)
    encoder = tfmeta.backbones.conv4((28, 28, 1), filters=8)
    raw_encoder = with_ink_box_normalization(encoder, (105, 105, 1), box_size=24)
    assert raw_encoder.input_shape == (None, 105, 105, 1) and raw_encoder.output_shape == (None, 8)
    model = tfmeta.SiameseNetwork(raw_encoder, objective="contrastive", distance="euclidean")
    rng = np.random.default_rng(0)
    support = np.stack([_glyph(top=int(t), left=int(l)) for t, l in rng.integers(0, 40, (5, 2))])
    support[1:, :, :, 0] = np.rot90(support[1:, :, :, 0], axes=(1, 2))  # two shapes
    queries = np.stack([_glyph(top=60, left=50, scale=1), _glyph(top=5, left=5, scale=2)])
    labels = np.array([0, 1, 1, 1, 1], np.int32)
    keras_probs = model.predict_few_shot(support, labels, queries)
    path = model.export(str(tmp_path / "raw_siamese"))
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["few_shot"](
        support_x=tf.constant(support), support_y=tf.constant(labels), query_x=tf.constant(queries)
    )
    np.testing.assert_allclose(next(iter(served.values())).numpy(), keras_probs, atol=1e-5)
    # Both queries are the support's first glyph at another place and size: identical inputs
    # to the encoder after normalisation, so identical scores.
    np.testing.assert_allclose(keras_probs[0], keras_probs[1], atol=0.02)
