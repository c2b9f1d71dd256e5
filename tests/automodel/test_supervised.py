"""AutoModel classification and regression: search, string labels, budgets, seeds, resume, export."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.xla_check import check_export


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    d = load_wine()
    labels = np.array(d.target_names)[d.target]  # string class names
    return train_test_split(d.data, labels, test_size=0.3, random_state=0, stratify=labels)


def _table_model(tmp, **kwargs):
    params = dict(task="classification", max_trials=2, epochs=8, seed=0, strategy="random",
                  directory=str(tmp), project_name="wine", verbose=0, batch_size=16)
    params.update(kwargs)
    return tfmeta.AutoModel(**params)


@pytest.fixture(scope="module")
def fitted_wine(wine, tmp_path_factory):
    x_tr, _, y_tr, _ = wine
    return _table_model(tmp_path_factory.mktemp("wine")).fit(x_tr, y_tr)


def test_table_classification_with_string_labels(fitted_wine, wine):
    _, x_te, _, y_te = wine
    am = fitted_wine
    assert set(am.classes_) == {"class_0", "class_1", "class_2"}
    pred = am.predict(x_te)
    assert pred.dtype.kind == "U" and set(pred) <= set(am.classes_)
    assert am.score(x_te, y_te) > 0.85  # chance is ~0.4
    proba = am.predict_proba(x_te)
    assert proba.shape == (len(x_te), 3)
    np.testing.assert_array_equal(am.classes_[proba.argmax(-1)], pred)
    board = am.leaderboard()
    assert len(board) == 2 and board[0]["score"] >= board[1]["score"]
    assert board[0]["architecture"] == am.best_architecture_


def test_export_gives_the_same_predictions_without_tfmeta(fitted_wine, wine, tmp_path):
    _, x_te, _, _ = wine
    path = fitted_wine.export(str(tmp_path / "wine"))
    assert os.path.basename(path) == "1"
    [check] = check_export(path)  # XLA-ready but for the class names it returns, looked up on the host
    assert (check.status, check.numeric) == ("host preprocessing", "compiles"), check
    np.save(tmp_path / "x.npy", x_te)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        m = tf.saved_model.load({path!r})
        out = m.signatures["serving_default"](x=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'p.npy')!r}, out["probabilities"].numpy())
        np.save({str(tmp_path / 'c.npy')!r}, np.char.decode(out["classes"].numpy().astype(bytes)))
        assert "tfmeta" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=""))
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), fitted_wine.predict_proba(x_te), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), fitted_wine.predict(x_te))
    # The signature takes the raw input dtype the user passed to fit (float64 here).
    spec = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]["x"]
    assert spec.dtype == tf.float64 and spec.shape.as_list() == [None, 13]
    with open(os.path.join(path, "tfmeta.json")) as f:
        meta = json.load(f)
    assert meta["ensemble"] == {"members": 2, "combine": "mean of outputs", "refit_epochs": fitted_wine.epochs}
    assert meta["class_names"] == ["class_0", "class_1", "class_2"]


def test_resume_continues_the_search(wine, tmp_path):
    x_tr, _, y_tr, _ = wine
    first = _table_model(tmp_path, max_trials=1).fit(x_tr, y_tr)
    done = first.leaderboard()[0]
    resumed = _table_model(tmp_path, max_trials=2).fit(x_tr, y_tr)
    board = resumed.leaderboard()
    assert len(board) == 2
    ids = [t["trial"] for t in board]
    assert done["trial"] in ids and len(set(ids)) == 2  # the finished trial was kept, not rerun
    assert [t for t in board if t["trial"] == done["trial"]][0]["score"] == done["score"]
    with pytest.raises(ValueError, match=r"searched on other data.*example shape: \[13\] there, \[12\] now"):
        _table_model(tmp_path, max_trials=3).fit(x_tr[:, 1:], y_tr)  # refused before any trial


@pytest.mark.slow
def test_same_seed_same_search_and_max_time(wine, tmp_path):
    x_tr, _, y_tr, _ = wine
    a = _table_model(tmp_path / "a", max_trials=2).fit(x_tr, y_tr).leaderboard()
    b = _table_model(tmp_path / "b", max_trials=2).fit(x_tr, y_tr).leaderboard()
    assert [t["architecture"] for t in a] == [t["architecture"] for t in b]
    np.testing.assert_allclose([t["score"] for t in a], [t["score"] for t in b], atol=1e-6)
    timed = _table_model(tmp_path / "c", max_trials=20, max_time=1.0).fit(x_tr, y_tr)
    assert 1 <= len(timed.leaderboard()) < 20  # no trial starts after the budget


def test_search_sample_searches_on_a_sample_and_refits_on_all(wine, tmp_path):
    x_tr, x_te, y_tr, y_te = wine
    am = _table_model(tmp_path, max_trials=1, search_sample=0.5, ensemble=False, epochs=20)
    am.fit(x_tr, y_tr)
    search_split = len(x_tr) - math.ceil(0.2 * len(x_tr))  # scikit-learn rounds the held-out part up
    assert am.search_examples_ == int(round(0.5 * search_split))
    assert am.refit_epochs_ == 20 and am.score(x_te, y_te) > 0.8  # the refit trained on all the data
    full = _table_model(tmp_path, project_name="full", max_trials=1, ensemble=False, epochs=1).fit(x_tr, y_tr)
    assert full.search_examples_ == search_split


def test_regression_on_a_table(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=300)
    am = tfmeta.AutoModel(task="regression", max_trials=1, epochs=30, seed=0, verbose=0,
                          directory=str(tmp_path), strategy="random")
    am.fit(x[:240], y[:240])
    assert am.score(x[240:], y[240:]) > 0.8  # R^2
    path = am.export(str(tmp_path / "reg"))
    assert {c.signature: c.status for c in check_export(path)} == {"serving_default": "compiles"}  # XLA-ready
    out = tf.saved_model.load(path).signatures["serving_default"](x=tf.constant(x[240:]))["values"].numpy()
    np.testing.assert_allclose(out, am.predict(x[240:]), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_image_classification_from_tf_data_and_folder(tmp_path, digits):
    from PIL import Image

    x, y = digits
    x, y = x[:400], y[:400]
    ds = tf.data.Dataset.from_tensor_slices((x.astype(np.uint8), y)).batch(64)
    am = tfmeta.AutoModel(max_trials=1, epochs=5, batch_size=16, seed=0, verbose=0, directory=str(tmp_path), strategy="random")
    am.fit(ds)
    assert am.input_shape_ == (8, 8) and am.preprocessing_.raw_dtype == "uint8"
    assert am.score(x[:100].astype(np.uint8), y[:100]) > 0.5
    for i, (img, label) in enumerate(zip(x[:60], y[:60] % 2)):
        os.makedirs(tmp_path / "imgs" / ["even", "odd"][label], exist_ok=True)
        Image.fromarray((img * 15).astype(np.uint8)).save(tmp_path / "imgs" / ["even", "odd"][label] / f"{i}.png")
    am2 = tfmeta.AutoModel(max_trials=1, epochs=1, seed=0, verbose=0, directory=str(tmp_path), project_name="f", strategy="random")
    am2.fit(str(tmp_path / "imgs"))
    assert list(am2.classes_) == ["even", "odd"] and am2.data_kind_ == "image_folder"
    folder = am2.raw_task_.folder  # streamed, read at the images' own size, grayscale PNGs
    assert folder.load_size == (8, 8) and folder.channels == 1


def test_refit_retrains_the_best_architecture_on_all_training_data(fitted_wine, wine, tmp_path):
    x_tr, x_te, y_tr, y_te = wine
    am = fitted_wine
    best = am.leaderboard()[0]
    # The refit trains for the whole epoch budget (the best epoch of a trial is never larger).
    assert am.refit_epochs_ == am.epochs
    assert am.score(x_te, y_te) > 0.85
    # By default the refit model is averaged with the best trial's own trained model: two
    # differently trained members whose mean is exactly what the AutoModel predicts.
    refit_member, trial_member = am.members_
    assert refit_member.count_params() == trial_member.count_params()
    assert not all(np.array_equal(a, b) for a, b in zip(refit_member.get_weights(), trial_member.get_weights()))
    members_proba = [m.predict(x_te, verbose=0) for m in am.members_]
    np.testing.assert_allclose(am.predict_proba(x_te), np.mean(members_proba, axis=0), rtol=1e-5, atol=1e-6)
    single = _table_model(tmp_path, project_name="single", max_trials=1, ensemble=False).fit(x_tr, y_tr)
    assert single.members_ == [single.model_] and single.refit_epochs_ == single.epochs
    # With explicit validation data nothing is held back from training, so there is no refit;
    # the kept model is then the search's best checkpoint.
    n = len(x_tr) * 4 // 5
    plain = _table_model(tmp_path, refit=True).fit(x_tr[:n], y_tr[:n], validation_data=(x_tr[n:], y_tr[n:]))
    assert plain.refit_epochs_ is None and plain.members_ == [plain.model_]
    assert plain.leaderboard()[0]["architecture"] == plain.best_architecture_
    assert best["architecture"] == am.best_architecture_
