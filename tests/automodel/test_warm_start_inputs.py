"""Warm starts beyond tables: numeric arrays (and a tf.data input of them) and image folders."""

import numpy as np
import pytest
import tensorflow as tf

from test_text_and_image_folders import make_folder  # the generated image folder of those tests


def test_an_arrays_project_is_seeded_with_the_best_configuration_of_a_similar_one(digits, tmp_path):
    import tfmeta

    x, y = digits
    x = x.reshape(len(x), -1)  # a numeric table: the dense space
    settings = dict(epochs=1, seed=0, verbose=0, refit=False, ensemble=False, strategy="random", overwrite=True,
                    directory=str(tmp_path / "runs"), warm_start_store=str(tmp_path / "store"))
    first = tfmeta.AutoModel(max_trials=2, project_name="first", **settings).fit(x[:240], y[:240])
    best = first.leaderboard()[0]
    assert [row["origin"] for row in first.leaderboard()] == ["search", "search"]  # an empty store seeds nothing
    second_data = tf.data.Dataset.from_tensor_slices((x[240:480], y[240:480])).batch(32)  # read into arrays
    second = tfmeta.AutoModel(max_trials=1, project_name="second", **settings).fit(second_data)
    (row,) = second.leaderboard()
    assert row["origin"] == "warm start" and row["warm_start_from"] == "first"
    assert row["architecture"] == best["architecture"]


def test_an_image_folder_has_meta_features(tmp_path):
    from tfmeta.automodel import meta_features

    root = make_folder(str(tmp_path / "images"), classes=3, per_class=8)
    features = meta_features.describe(root, None, "classification")
    assert features["classes"] == 3 and features["log_rows"] == pytest.approx(np.log1p(24))
    assert features["log_columns"] > np.log1p(20 * 20 * 3) and 0 < features["landmark_1nn"] <= 1
    with pytest.raises(ValueError, match="`y` must be None"):
        meta_features.describe(root, [0] * 24, "classification")
