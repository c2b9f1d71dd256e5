"""AutoModel's few-shot and similarity tasks on digits: new classes, leaderboard, export."""

import numpy as np
import pytest
import tensorflow as tf

import tfmeta


@pytest.fixture(scope="module")
def few_shot_model(digits, tmp_path_factory):
    x, y = digits
    base = y < 7
    am = tfmeta.AutoModel(task="few_shot", learners=("protonet", "siamese"), ways=3, shots=1,
                          epochs=1, steps_per_epoch=60, seed=0, verbose=0,
                          directory=str(tmp_path_factory.mktemp("fs")))
    return am.fit(x[base], y[base])


def _support(x, y, classes, shots, rng):
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in classes])
    return x[idx], np.repeat(np.arange(len(classes)), shots)


def test_few_shot_predicts_new_classes_from_a_support_set(few_shot_model, digits):
    x, y = digits
    rng = np.random.default_rng(0)
    new = np.array([7, 8, 9])
    sx, sy = _support(x, y, new, 5, rng)
    q = np.flatnonzero(np.isin(y, new))[:150]
    pred = few_shot_model.predict(x[q], support=(sx, sy))
    truth = np.searchsorted(new, y[q])
    assert np.mean(pred == truth) > 0.7  # chance is 1/3
    probs = few_shot_model.predict_proba(x[q], support=(sx, sy))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    board = few_shot_model.leaderboard()
    assert [t["learner"] for t in board] and board[0]["score"] >= board[-1]["score"]
    assert few_shot_model.best_learner_ == board[0]["learner"]
    assert set(t["learner"] for t in board) == {"protonet", "siamese"}


def test_few_shot_support_errors(few_shot_model, digits):
    x, _ = digits
    with pytest.raises(ValueError, match="missing"):
        few_shot_model.predict(x[:3], support=(x[:4], [0, 0, 2, 2]))
    with pytest.raises(ValueError, match="support"):
        few_shot_model.predict(x[:3])
    with pytest.raises(ValueError, match=r"shape \(8, 8\)"):
        few_shot_model.predict(np.zeros((2, 9, 9)), support=(x[:4], [0, 1, 0, 1]))


def test_few_shot_export_matches_predict(few_shot_model, digits, tmp_path):
    x, y = digits
    sx, sy = _support(x, y, [7, 8, 9], 2, np.random.default_rng(1))
    path = few_shot_model.export(str(tmp_path / "fs"))
    fn = tf.saved_model.load(path).signatures["few_shot"]
    out = fn(support_x=tf.constant(sx), support_y=tf.constant(sy.astype(np.int32)), query_x=tf.constant(x[:20]))
    np.testing.assert_allclose(out["probabilities"].numpy(), few_shot_model.predict_proba(x[:20], support=(sx, sy)), rtol=1e-5, atol=1e-6)


def test_similarity_task_scores_pairs(digits, tmp_path):
    x, y = digits
    am = tfmeta.AutoModel(task="similarity", epochs=2, steps_per_epoch=100, seed=0, verbose=0, directory=str(tmp_path))
    am.fit(x[:1200], y[:1200])
    same = am.predict((x[1200:1300], x[1200:1300]))
    assert same.shape == (100,) and np.all((same >= 0) & (same <= 1))
    assert am.evaluate(x[1200:], y[1200:])["pair_accuracy"] > 0.8
