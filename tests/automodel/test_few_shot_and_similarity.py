"""AutoModel's few-shot and similarity tasks on digits: new classes, leaderboard, export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.xla_check import check_export
from tfmeta.fewshot.ensemble import temper


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
    assert set(t["learner"] for t in board) == {"protonet", "siamese", "ensemble"}


def test_few_shot_ensemble_of_the_two_learners_is_scored_and_kept_only_if_better(few_shot_model):
    board = {t["learner"]: t for t in few_shot_model.leaderboard()}
    ensemble = board["ensemble"]
    assert sorted(ensemble["members"]) == ["protonet", "siamese"]
    best_single = max(board["protonet"]["score"], board["siamese"]["score"])
    kept = isinstance(few_shot_model.model_, tfmeta.fewshot.ensemble.FewShotEnsemble)
    assert kept == (ensemble["score"] > best_single)
    assert few_shot_model.best_score_ == max(best_single, ensemble["score"])
    assert len(few_shot_model.members_) == (2 if kept else 1)


@pytest.fixture(scope="module")
def kept_ensemble_model(digits, tmp_path_factory):
    """An AutoModel whose two-learner ensemble is kept (its validation score is forced to 1)."""
    x, y = digits
    base = y < 7
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tfmeta.fewshot.ensemble.FewShotEnsemble, "evaluate_episodes",
                   lambda self, *a, **k: {"accuracy": 1.0, "ci95": 0.0, "episodes": 100})
        am = tfmeta.AutoModel(task="few_shot", learners=("protonet", "siamese"), ways=3, shots=1,
                              epochs=1, steps_per_epoch=30, seed=0, verbose=0,
                              directory=str(tmp_path_factory.mktemp("fs_ens")))
        return am.fit(x[base], y[base])


def test_kept_few_shot_ensemble_averages_its_members_and_exports(kept_ensemble_model, digits, tmp_path):
    am = kept_ensemble_model
    assert am.best_learner_ == "ensemble" and am.leaderboard()[0]["learner"] == "ensemble"
    assert isinstance(am.model_, tfmeta.fewshot.ensemble.FewShotEnsemble) and len(am.members_) == 2
    x, y = digits
    sx, sy = _support(x, y, [7, 8, 9], 1, np.random.default_rng(2))
    probs = am.predict_proba(x[:30], support=(sx, sy))
    members = [m.predict_few_shot(sx, sy, x[:30]) for m in am.members_]
    temperatures = am.leaderboard()[0]["temperatures"]
    assert temperatures == am.model_.temperatures and len(temperatures) == 2
    tempered = [temper(tf.constant(p), t).numpy() for p, t in zip(members, temperatures)]
    np.testing.assert_allclose(probs, np.mean(tempered, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # two different learners
    path = am.export(str(tmp_path / "fs_ens"))
    fn = tf.saved_model.load(path).signatures["few_shot"]
    out = fn(support_x=tf.constant(sx), support_y=tf.constant(sy.astype(np.int32)), query_x=tf.constant(x[:30]))
    np.testing.assert_allclose(out["probabilities"].numpy(), probs, rtol=1e-5, atol=1e-6)
    _assert_refuses_phantom_class(fn, sx, sy, x[:30])
    meta = tfmeta.export.read_metadata(path)
    assert meta["learner"] == "ensemble" and [m["learner"] for m in meta["members"]] == ["prototypical_network", "siamese"]
    assert [m["temperature"] for m in meta["members"]] == pytest.approx(temperatures)


@pytest.mark.slow
def test_maml_candidate_learns_new_digit_classes(digits):
    from tfmeta.automodel.few_shot import train_maml
    from tfmeta.automodel.preprocessing import Preprocessing

    x, y = digits
    base, new = y < 7, y >= 7
    keras.utils.set_random_seed(0)
    maml = train_maml(Preprocessing(x[base], "image"), x[base], y[base], ways=3, shots=1, steps=200, seed=0)
    result = maml.evaluate_episodes(x[new], y[new] - 7, ways=3, shots=1, queries=5, episodes=100, seed=1)
    # chance is 1/3; with the paper's inner_lr 0.4 every query went to one class
    assert result["accuracy"] > 0.5


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
    assert all(c.status == "compiles" for c in check_export(path))  # XLA-ready
    fn = tf.saved_model.load(path).signatures["few_shot"]
    out = fn(support_x=tf.constant(sx), support_y=tf.constant(sy.astype(np.int32)), query_x=tf.constant(x[:20]))
    np.testing.assert_allclose(out["probabilities"].numpy(), few_shot_model.predict_proba(x[:20], support=(sx, sy)), rtol=1e-5, atol=1e-6)
    _assert_refuses_phantom_class(fn, sx, sy, x[:20])


def _assert_refuses_phantom_class(signature, sx, sy, qx):
    """Labels 1..N (no class 0) are refused in the graph, as the Python API refuses them."""
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`support_y` must hold the integer class ids 0\.\.N-1"):
        signature(support_x=tf.constant(sx), support_y=tf.constant(sy.astype(np.int32) + 1), query_x=tf.constant(qx))


def test_similarity_task_scores_pairs(digits, tmp_path):
    x, y = digits
    am = tfmeta.AutoModel(task="similarity", epochs=2, steps_per_epoch=100, seed=0, verbose=0, directory=str(tmp_path))
    am.fit(x[:1200], y[:1200])
    same = am.predict((x[1200:1300], x[1200:1300]))
    assert same.shape == (100,) and np.all((same >= 0) & (same <= 1))
    assert am.evaluate(x[1200:], y[1200:])["pair_accuracy"] > 0.8
