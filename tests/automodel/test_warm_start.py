"""Meta-features and warm starts: the nearest past data set's configuration seeds the search."""

import numpy as np
import pandas as pd
import pytest

from tfmeta.automodel import meta_features, warm_start
from tfmeta.automodel.table_models import table_space


def _table(rows, seed, noise=0.3):
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows)
    size = rng.normal(size=rows)
    size[rng.random(rows) < 0.1] = np.nan
    label = np.where((colour == "red") ^ (np.nan_to_num(size) > 0) ^ (rng.random(rows) < noise), "yes", "no")
    return pd.DataFrame({"colour": colour, "size": size, "label": label})


def test_meta_features_describe_the_data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = meta_features.describe(digits.data, digits.target, "classification")
    assert set(features) == set(meta_features.NAMES)
    assert features["classes"] == 10 and features["class_entropy"] == pytest.approx(np.log2(10), abs=0.01)
    assert features["landmark_1nn"] > 0.9 > 0.4 > features["landmark_stump"]  # digits: easy for 1-NN, not a stump
    table = meta_features.describe(_table(300, 0), "label", "classification")
    assert table["fraction_categorical"] == 0.5 and 0.03 < table["fraction_missing"] < 0.08
    assert table["log_rows"] == pytest.approx(np.log1p(300))
    texts = meta_features.describe(["good", "bad", "fine", "awful"] * 10, [1, 0, 1, 0] * 10, "classification")
    assert texts["landmark_1nn"] == 1.0 and texts["log_columns"] == pytest.approx(np.log1p(1))


def test_the_nearest_past_data_set_gives_the_first_configuration(tmp_path):
    space = table_space(rows=300)
    store = warm_start.WarmStartStore(tmp_path)
    configurations = {}
    for name, rows, noise, units in (("small_clean", 200, 0.0, 64), ("big_noisy", 3000, 0.45, 512),
                                      ("small_noisy", 250, 0.4, 256)):
        features = meta_features.describe(_table(rows, 1, noise), "label", "classification")
        arch = space.sample(np.random.default_rng(rows))
        choices = arch.as_dict() | {"layer0/units": units, "batch_size": 32 if rows < 1000 else 256}
        configurations[name] = choices
        store.add(name, "classification", features, [{"choices": choices, "score": 0.9}], space=space.name)
    store.add("a_regression", "regression", features, [{"choices": choices, "score": 0.1}], space=space.name)
    store.add("a_text", "classification", features, [{"choices": choices, "score": 0.1}], space="text")

    query = meta_features.describe(_table(300, 2, 0.4), "label", "classification")
    nearest = store.nearest(query, "classification", k=3, space=space.name)
    assert [record["name"] for _, record in nearest][0] == "small_noisy"
    assert "a_text" not in [record["name"] for _, record in nearest]
    seeds = warm_start.seed_configurations(store, query, space, "classification", k=1)
    assert [(arch.as_dict()["layer0/units"], name) for arch, name in seeds] == [(256, "small_noisy")]
    # a batch size the new space lacks is carried over as its nearest choice
    assert seeds[0][0]["batch_size"] in space.decisions[space.names.index("batch_size")].choices


def test_a_configuration_from_another_space_does_not_transfer():
    space = table_space(rows=300)
    assert warm_start.transfer({"normal/node0/op0": "conv3x3"}, space) is None


def test_automodel_starts_from_the_nearest_project_and_records_its_own(tmp_path):
    import tfmeta

    store = warm_start.WarmStartStore(tmp_path / "store")
    data = _table(160, 3, noise=0.1)
    space = table_space(rows=128)
    near = space.sample(np.random.default_rng(0)).as_dict() | {"layer0/units": 64, "layer1/units": 0,
                                                               "layer2/units": 0, "learning_rate": 1e-2}
    far = near | {"layer0/units": 512}
    store.add("near", "classification", meta_features.describe(_table(150, 4, 0.1), "label", "classification"),
              [{"choices": near, "score": 0.8}], space=space.name)
    store.add("far", "classification", meta_features.describe(pd.DataFrame(
        {"a": np.arange(5000.0), "label": np.arange(5000) % 7}), "label", "classification"),
        [{"choices": far, "score": 0.8}], space=space.name)
    am = tfmeta.AutoModel(max_trials=1, epochs=2, seed=0, verbose=0, refit=False, ensemble=False,
                          directory=str(tmp_path / "runs"), project_name="new", overwrite=True,
                          warm_start_store=str(tmp_path / "store"))
    am.fit(data, y="label")
    (row,) = [r for r in am.leaderboard() if r["status"] == "completed"]
    assert row["origin"] == "warm start" and row["warm_start_from"] == "near"
    assert row["choices"]["layer0/units"] == 64
    recorded = {r["name"]: r for r in store.records()}
    assert recorded["new"]["configurations"][0]["choices"] == row["choices"]
    assert recorded["new"]["space"] == space.name
