"""Backbones: conv4 and its block count, and encoder ensembles (`concatenate_encoders`)."""

import numpy as np
import pytest

import tfmeta
from tfmeta.backbones import conv4, conv4_blocks

@pytest.fixture(scope="module")
def encoder():
    return conv4((12, 12, 1), filters=4, blocks=2)

@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 12, 12, 1)).astype("float32")

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

def test_conv4_without_final_pool_keeps_the_last_map_unpooled(encoder, images):
    spatial = conv4((12, 12, 1), filters=4, blocks=2, final_pool=False)
    spatial.set_weights(encoder.get_weights())
    assert spatial.output_shape == (None, 6 * 6 * 4)
    unpooled = spatial.predict(images, verbose=0).reshape(-1, 6, 6, 4)
    pooled = unpooled.reshape(-1, 3, 2, 3, 2, 4).max(axis=(2, 4)).reshape(len(images), -1)
    np.testing.assert_allclose(pooled, encoder.predict(images, verbose=0), rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize("size, blocks", [(28, 4), (56, 5), (84, 6), (105, 6), (2, 1), (3, 1)])
def test_conv4_blocks_pool_the_image_to_one_pixel(size, blocks):
    assert conv4_blocks(size) == blocks
    side = size
    for _ in range(blocks):
        side //= 2
    assert side == 1

def test_conv4_with_conv4_blocks_keeps_a_filters_sized_embedding():
    assert conv4((56, 56, 1), filters=4, blocks=conv4_blocks(56)).output_shape == (None, 4)

@pytest.mark.parametrize("bad", [1, 0, 28.0, True, "28"])
def test_conv4_blocks_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="`image_size` must be an integer >= 2; received"):
        conv4_blocks(bad)
