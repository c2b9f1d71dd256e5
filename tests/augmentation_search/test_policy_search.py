"""Augmentation policies: stateless, serialisable, exported as identity; the search finds the right one."""

import numpy as np
import pytest

import tfmeta  # noqa: F401  (environment defaults before TensorFlow)
import keras
import tensorflow as tf

from tfmeta.augmentation_search import (AugmentationPolicy, PolicySearch, no_augmentation, policy_space,
                                        small_convnet)


def left_side_shapes(n, seed):
    """8x8 images of three shapes, always drawn in the left half (column 0-3) at a random row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.05, (n, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, n)
    for image, label, row, col in zip(x, y, rng.integers(0, 5, n), rng.integers(0, 2, n)):
        if label == 0:
            image[row:row + 3, col, 0] += 1      # a vertical bar
        elif label == 1:
            image[row, col:col + 3, 0] += 1      # a horizontal bar
        else:
            image[row:row + 2, col:col + 2, 0] += 1  # a block
    return np.clip(x, 0, 1), y


POLICY = [[("flip", 0.5, 1), ("rotate", 0.3, 4)], [("zoom", 0.8, 3), ("contrast", 1.0, 5)]]


def test_a_policy_is_stateless_and_an_identity_at_inference():
    policy = AugmentationPolicy(POLICY, seed=1)
    x, _ = left_side_shapes(16, 0)
    first, again = policy.augment(x, tf.constant([3, 4])), policy.augment(x, tf.constant([3, 4]))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - x).mean() > 0.01
    np.testing.assert_array_equal(policy(x), x)
    with pytest.raises(ValueError, match="Unknown operation 'blur'"):
        AugmentationPolicy([[("blur", 0.5, 3)]])
    with pytest.raises(ValueError, match="probability"):
        AugmentationPolicy([[("flip", 1.5, 3)]])


def test_a_model_with_a_policy_round_trips_through_keras_files_and_export(tmp_path):
    x, y = left_side_shapes(32, 1)
    model = small_convnet(AugmentationPolicy(POLICY, seed=2), (8, 8, 1), 3)
    model.fit(x, y, epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.layers[0].get_config()["sub_policies"] == [[list(s) for s in sub] for sub in POLICY]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    model.export(str(tmp_path / "export"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "export"))  # kept: its variables live as long as it
    served = reloaded.serve(tf.constant(x))
    np.testing.assert_allclose(served, expected, atol=1e-5)


@pytest.mark.slow
def test_the_search_finds_the_flip_when_test_images_are_mirrored(tmp_path):
    x, y = left_side_shapes(300, 2)
    xv, yv = left_side_shapes(150, 3)
    xv = xv[:, :, ::-1]  # the validation shapes are on the right
    space = policy_space(operations=("flip", "rotate", "zoom"), sub_policies=1, steps=1,
                         probabilities=(0.0, 0.5), magnitudes=(5,))
    search = PolicySearch(lambda p: small_convnet(p, (8, 8, 1), 3), space=space, strategy="random",
                          max_trials=6, seed=0, directory=str(tmp_path), project_name="flip")
    search.fit(x, y, validation_data=(xv, yv), epochs=6, batch_size=32)
    results = search.results()
    best = search.best_policy()
    assert best.sub_policies == [[("flip", 0.5, 5)]]
    baseline = [r for r in results if r["policy"] == "none"][0]["score"]
    assert results[0]["score"] > baseline + 0.2
    assert search.search.results()[0]["architecture"]["values"] == no_augmentation(space).as_dict()
