"""FewShotEnsemble: weighted soft voting over few_shot SavedModels, exported as one SavedModel."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfmeta import cli
from tfmeta import export as export_lib
from tfmeta.ensemble import FewShotEnsemble


def _episode(seed=0, ways=5, shots=2, queries=7):
    rng = np.random.default_rng(seed)
    sx = rng.random((ways * shots, 28, 28, 1), dtype=np.float32)
    sy = np.repeat(np.arange(ways), shots).astype(np.int32)
    qx = rng.random((queries, 28, 28, 1), dtype=np.float32)
    return sx, sy, qx


@pytest.fixture(scope="module")
def members(tmp_path_factory, toy_few_shot_model, toy_few_shot_model_factory):
    """Two exported toy learners with different encoders: `(paths, in-process models)`."""
    base = tmp_path_factory.mktemp("members")
    models = [toy_few_shot_model, toy_few_shot_model_factory(seed=2)]
    paths = [m.export(str(base / f"m{i}"), metadata={"metrics": {"acc": i}}) for i, m in enumerate(models)]
    return paths, models


def _served(path, sx, sy, qx):
    fn = tf.saved_model.load(path).signatures["few_shot"]
    return fn(support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx))[
        "probabilities"
    ].numpy()


def test_probabilities_are_the_weighted_mean_of_the_members(members):
    paths, models = members
    sx, sy, qx = _episode()
    p0, p1 = (m.predict_few_shot(sx, sy, qx) for m in models)
    assert np.max(np.abs(p0 - p1)) > 1e-3  # the members disagree, so the weights matter
    ensemble = FewShotEnsemble(paths, weights=[3, 1])
    assert ensemble.weights == [0.75, 0.25]
    np.testing.assert_allclose(ensemble.predict_few_shot(sx, sy, qx), 0.75 * p0 + 0.25 * p1, atol=1e-6)
    equal = FewShotEnsemble(paths)
    np.testing.assert_allclose(equal.predict_few_shot(sx, sy, qx), (p0 + p1) / 2, atol=1e-6)


def test_export_serves_the_same_numbers_without_the_member_folders(members, tmp_path):
    paths, _ = members
    copies = [shutil.copytree(p, tmp_path / f"copy{i}" / "1") for i, p in enumerate(paths)]
    ensemble = FewShotEnsemble([str(c) for c in copies], weights=[1, 2])
    sx, sy, qx = _episode(seed=1, ways=3, shots=1, queries=4)
    expected = ensemble.predict_few_shot(sx, sy, qx)
    out = ensemble.export(str(tmp_path / "ensemble"), metadata={"metrics": {"note": "x"}})
    assert out.endswith("ensemble/1")
    for c in copies:
        shutil.rmtree(c)
    np.testing.assert_allclose(_served(out, sx, sy, qx), expected, atol=1e-6)
    loaded = tf.saved_model.load(out)
    default = loaded.signatures["serving_default"](
        support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
    )["probabilities"].numpy()
    np.testing.assert_allclose(default, expected, atol=1e-6)
    xla = tf.function(lambda a, b, c: loaded.signatures["few_shot"](support_x=a, support_y=b, query_x=c),
                      jit_compile=True)
    np.testing.assert_allclose(xla(sx, sy, qx)["probabilities"].numpy(), expected, atol=1e-5)
    meta = export_lib.read_metadata(out)
    assert meta["learner"] == "ensemble" and meta["task"] == "few_shot"
    assert [m["weight"] for m in meta["members"]] == pytest.approx([1 / 3, 2 / 3])
    assert [m["metrics"] for m in meta["members"]] == [{"acc": 0}, {"acc": 1}]
    assert meta["input_spec"]["shape"] == [None, 28, 28, 1]
    assert meta["metrics"] == {"note": "x"}


def test_evaluation_scores_the_same_episodes_as_a_member(members, toy_few_shot_model):
    paths, _ = members
    rng = np.random.default_rng(0)
    templates = rng.random((8, 28, 28, 1), dtype=np.float32)
    y = np.repeat(np.arange(8), 6)
    x = (templates[y] + 0.6 * rng.random((len(y), 28, 28, 1), dtype=np.float32)).astype(np.float32)
    alone = toy_few_shot_model.evaluate_episodes(x, y, ways=4, shots=1, queries=3, episodes=40, seed=5)
    twice = FewShotEnsemble([paths[0], paths[0]]).evaluate_episodes(
        x, y, ways=4, shots=1, queries=3, episodes=40, seed=5
    )
    assert twice["accuracy"] == pytest.approx(alone["accuracy"])
    assert twice["ci95"] == pytest.approx(alone["ci95"])
    assert alone["accuracy"] > 0.5  # far above chance (0.25): the episodes carry signal


def test_command_line_writes_the_ensemble(members, tmp_path, capsys):
    paths, _ = members
    base = str(tmp_path / "cli_ensemble")
    assert cli.main(["ensemble", *paths, "--weights", "1", "3", "--output", base, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["export"] == f"{base}/1" and printed["weights"] == [0.25, 0.75]
    sx, sy, qx = _episode(seed=2)
    np.testing.assert_allclose(
        _served(printed["export"], sx, sy, qx),
        0.25 * _served(paths[0], sx, sy, qx) + 0.75 * _served(paths[1], sx, sy, qx),
        atol=1e-6,
    )


def _export_fake_few_shot(base, image_shape):
    """A SavedModel whose few_shot signature takes `image_shape` and returns uniform probabilities."""
    module = tf.Module()

    @tf.function(input_signature=[
        tf.TensorSpec([None, *image_shape], tf.float32), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, *image_shape], tf.float32),
    ])
    def few_shot(support_x, support_y, query_x):
        ways = tf.reduce_max(support_y) + 1
        return {"probabilities": tf.fill([tf.shape(query_x)[0], ways], 1.0 / tf.cast(ways, tf.float32))}

    module.few_shot = few_shot
    tf.saved_model.save(module, str(base), signatures={"few_shot": few_shot})
    return str(base)


def test_bad_members_and_weights_are_named(members, tmp_path):
    paths, _ = members
    with pytest.raises(ValueError, match=r"`members` must list at least 2 .*received 1"):
        FewShotEnsemble(paths[:1])
    with pytest.raises(ValueError, match=r"`members` must list at least 2 .*received '"):
        FewShotEnsemble(paths[0])
    with pytest.raises(ValueError, match=r"`weights` must give one weight per member \(2\); received 3"):
        FewShotEnsemble(paths, weights=[1, 1, 1])
    with pytest.raises(ValueError, match=r"`weights` must be finite, non-negative .*\[-1.0, 1.0\]"):
        FewShotEnsemble(paths, weights=[-1, 1])
    with pytest.raises(ValueError, match="not all zero"):
        FewShotEnsemble(paths, weights=[0, 0])
    small = _export_fake_few_shot(tmp_path / "small", (14, 14, 1))
    with pytest.raises(ValueError, match=r"one shape: .* takes \(28, 28, 1\), .* takes \(14, 14, 1\)"):
        FewShotEnsemble([paths[0], small])
    plain = tf.Module()
    plain.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(plain, str(tmp_path / "plain"), signatures={"serving_default": plain.f})
    with pytest.raises(ValueError, match="has no 'few_shot' signature"):
        FewShotEnsemble([paths[0], str(tmp_path / "plain")])
