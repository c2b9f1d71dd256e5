"""FewShotEnsemble: weighted soft voting over few_shot SavedModels and in-memory learners,
exported as one SavedModel."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfmeta import cli
from tfmeta import export as export_lib
from tfmeta.fewshot.ensemble import FewShotEnsemble, temper


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


def _softmax_log(p, t):
    z = np.log(np.maximum(p.astype(np.float64), 1e-12)) / t
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_temperatures_temper_each_member_before_the_vote(members):
    paths, models = members
    sx, sy, qx = _episode(seed=3)
    p0, p1 = (m.predict_few_shot(sx, sy, qx) for m in models)
    ensemble = FewShotEnsemble(paths, weights=[1, 3], temperatures=[0.5, 4.0])
    assert ensemble.temperatures == [0.5, 4.0]
    expected = 0.25 * _softmax_log(p0, 0.5) + 0.75 * _softmax_log(p1, 4.0)
    np.testing.assert_allclose(ensemble.predict_few_shot(sx, sy, qx), expected, atol=1e-5)
    # a temperature above 1 softens, below 1 sharpens, and neither changes the argmax
    assert np.all(_softmax_log(p1, 4.0).max(-1) < p1.max(-1))
    assert np.all(_softmax_log(p0, 0.5).max(-1) > p0.max(-1))
    np.testing.assert_array_equal(temper(tf.constant(p0), 0.5).numpy().argmax(-1), p0.argmax(-1))


def _labelled_images(classes=8, per_class=6, noise=0.6, seed=0):
    rng = np.random.default_rng(seed)
    templates = rng.random((classes, 28, 28, 1), dtype=np.float32)
    y = np.repeat(np.arange(classes), per_class)
    x = (templates[y] + noise * rng.random((len(y), 28, 28, 1), dtype=np.float32)).astype(np.float32)
    return x, y


def test_calibration_undoes_a_members_over_confidence(members, tmp_path):
    """A member made 4x over-confident (its log-probabilities x4) gets a 4x higher temperature."""
    paths, _ = members
    sharpened = FewShotEnsemble([paths[0], paths[0]], temperatures=[0.25, 0.25]).export(
        str(tmp_path / "over_confident")
    )
    x, y = _labelled_images(noise=2.0)  # noisy enough for mistakes (~50% on 4-way 1-shot)
    grid = 2.0 ** np.arange(-6, 8.5, 0.5)
    ensemble = FewShotEnsemble([paths[0], sharpened])
    fitted = ensemble.calibrate(x, y, ways=4, shots=1, queries=3, episodes=20, seed=9, grid=grid)
    assert fitted == ensemble.temperatures
    assert fitted[0] in grid and 2.0**-5 <= fitted[0] <= 2.0**6  # an interior optimum
    assert fitted[1] == pytest.approx(4 * fitted[0])
    # tempered, the two members are the same model again, and the ensemble is that model
    sx, sy, qx = _episode(seed=4, ways=4, shots=1, queries=6)
    alone = FewShotEnsemble([paths[0], paths[0]], temperatures=[fitted[0]] * 2)
    np.testing.assert_allclose(
        ensemble.predict_few_shot(sx, sy, qx), alone.predict_few_shot(sx, sy, qx), atol=1e-4
    )
    # a grid with a non-positive temperature is refused by name
    with pytest.raises(ValueError, match=r"`grid` must list positive temperatures; received \[0.0, 1.0\]"):
        ensemble.calibrate(x, y, ways=4, shots=1, grid=[0.0, 1.0])


def test_export_serves_the_same_numbers_without_the_member_folders(members, tmp_path):
    paths, _ = members
    copies = [shutil.copytree(p, tmp_path / f"copy{i}" / "1") for i, p in enumerate(paths)]
    ensemble = FewShotEnsemble([str(c) for c in copies], weights=[1, 2], temperatures=[1.0, 3.0])
    ensemble._temperatures[0].assign(0.5)  # as `calibrate` does, after the graph was built
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
    assert [m["temperature"] for m in meta["members"]] == [0.5, 3.0]
    assert [m["metrics"] for m in meta["members"]] == [{"acc": 0}, {"acc": 1}]
    assert meta["input_spec"]["shape"] == [None, 28, 28, 1]
    assert meta["metrics"] == {"note": "x"}


def test_evaluation_scores_the_same_episodes_as_a_member(members, toy_few_shot_model):
    paths, _ = members
    x, y = _labelled_images()
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
    argv = ["ensemble", *paths, "--weights", "1", "3", "--temperatures", "1", "2", "--output", base, "--json"]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["export"] == f"{base}/1" and printed["weights"] == [0.25, 0.75]
    assert printed["temperatures"] == [1.0, 2.0]
    sx, sy, qx = _episode(seed=2)
    np.testing.assert_allclose(
        _served(printed["export"], sx, sy, qx),
        0.25 * _served(paths[0], sx, sy, qx) + 0.75 * _softmax_log(_served(paths[1], sx, sy, qx), 2.0),
        atol=1e-5,
    )


def _export_few_shot_function(base, image_shape, probabilities):
    """Saves `probabilities(support_x, support_y, query_x, ways)` as a few_shot SavedModel at `image_shape`."""
    module = tf.Module()

    @tf.function(input_signature=[
        tf.TensorSpec([None, *image_shape], tf.float32), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, *image_shape], tf.float32),
    ])
    def few_shot(support_x, support_y, query_x):
        ways = tf.reduce_max(support_y) + 1
        return {"probabilities": probabilities(support_x, support_y, query_x, ways)}

    module.few_shot = few_shot
    tf.saved_model.save(module, str(base), signatures={"few_shot": few_shot})
    return str(base)


def _export_fake_few_shot(base, image_shape):
    """A SavedModel whose few_shot signature takes `image_shape` and returns uniform probabilities."""
    return _export_few_shot_function(
        base, image_shape,
        lambda sx, sy, qx, ways: tf.fill([tf.shape(qx)[0], ways], 1.0 / tf.cast(ways, tf.float32)),
    )


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
    with pytest.raises(ValueError, match=r"`temperatures` must give one temperature per member \(2\); received 1"):
        FewShotEnsemble(paths, temperatures=[2.0])
    with pytest.raises(ValueError, match=r"`temperatures` must be finite, positive; received \[0.0, 1.0\]"):
        FewShotEnsemble(paths, temperatures=[0, 1])
    color = _export_fake_few_shot(tmp_path / "color", (28, 28, 3))
    with pytest.raises(ValueError, match=r"same channels: .* takes \(28, 28, 1\), .* takes \(28, 28, 3\)"):
        FewShotEnsemble([paths[0], color])
    flat = _export_fake_few_shot(tmp_path / "flat", (64,))
    with pytest.raises(ValueError, match=r"one shape, or .* takes \(28, 28, 1\), .* takes \(64,\)"):
        FewShotEnsemble([paths[0], flat])
    plain = tf.Module()
    plain.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(plain, str(tmp_path / "plain"), signatures={"serving_default": plain.f})
    with pytest.raises(ValueError, match="has no 'few_shot' signature"):
        FewShotEnsemble([paths[0], str(tmp_path / "plain")])


def _export_pixel_prototypes(base, image_shape):
    """A few_shot SavedModel at `image_shape`: softmax of minus squared pixel distances to class means."""

    def probabilities(support_x, support_y, query_x, ways):
        s = tf.reshape(support_x, [tf.shape(support_x)[0], -1])
        q = tf.reshape(query_x, [tf.shape(query_x)[0], -1])
        prototypes = tf.math.unsorted_segment_mean(s, support_y, ways)
        return tf.nn.softmax(-tf.reduce_sum((q[:, None] - prototypes[None]) ** 2, -1) / 5.0)

    return _export_few_shot_function(base, image_shape, probabilities)


def test_members_of_other_sizes_vote_on_area_resized_images(members, tmp_path):
    """A 14x14 member votes with a 28x28 one: the ensemble takes 28x28 and resizes for it."""
    paths, models = members
    small = _export_pixel_prototypes(tmp_path / "small", (14, 14, 1))
    sx, sy, qx = _episode(seed=5)
    ensemble = FewShotEnsemble([small, paths[0]])
    assert ensemble.input_shape == (28, 28, 1)
    resized = [tf.image.resize(v, (14, 14), method="area").numpy() for v in (sx, qx)]
    p_small = _served(small, resized[0], sy, resized[1])
    p_big = models[0].predict_few_shot(sx, sy, qx)
    assert np.max(np.abs(p_small - 0.2)) > 1e-2  # the small member's vote depends on the images
    expected = (p_small + p_big) / 2
    np.testing.assert_allclose(ensemble.predict_few_shot(sx, sy, qx), expected, atol=1e-5)
    path = ensemble.export(str(tmp_path / "mixed"))
    assert export_lib.read_metadata(path)["input_spec"]["shape"] == [None, 28, 28, 1]
    np.testing.assert_allclose(_served(path, sx, sy, qx), expected, atol=1e-5)


LOAD_AND_SERVE = """
import sys
import numpy as np
import tensorflow as tf
path, episode, out = sys.argv[1:]
e = np.load(episode)
fn = tf.saved_model.load(path).signatures["few_shot"]
p = fn(support_x=tf.constant(e["sx"]), support_y=tf.constant(e["sy"]), query_x=tf.constant(e["qx"]))
np.save(out, p["probabilities"].numpy())
assert "tfmeta" not in sys.modules
"""


def test_in_memory_members_vote_like_their_exports_and_export_alone(members, tmp_path):
    """Learners in memory (no export of their own) are members like SavedModels, and mix with them."""
    paths, models = members
    sx, sy, qx = _episode(seed=6, ways=4, shots=2, queries=5)
    in_memory = FewShotEnsemble(models, weights=[1, 3], temperatures=[0.5, 2.0])
    from_paths = FewShotEnsemble(paths, weights=[1, 3], temperatures=[0.5, 2.0])
    mixed = FewShotEnsemble([models[0], paths[1]], weights=[1, 3], temperatures=[0.5, 2.0])
    expected = from_paths.predict_few_shot(sx, sy, qx)
    np.testing.assert_allclose(in_memory.predict_few_shot(sx, sy, qx), expected, atol=1e-6)
    np.testing.assert_allclose(mixed.predict_few_shot(sx, sy, qx), expected, atol=1e-6)
    assert in_memory.member_paths == [None, None] and in_memory.input_shape == (28, 28, 1)
    assert mixed.member_paths == [None, paths[1]]
    # calibration asks the in-memory members exactly as it asks the exported ones
    x, y = _labelled_images(noise=2.0)
    grid = 2.0 ** np.arange(-4, 6.5, 0.5)
    fitted = in_memory.calibrate(x, y, ways=4, shots=1, queries=3, episodes=10, seed=3, grid=grid)
    assert fitted == from_paths.calibrate(x, y, ways=4, shots=1, queries=3, episodes=10, seed=3, grid=grid)
    expected = in_memory.predict_few_shot(sx, sy, qx)
    # one SavedModel holding both learners' variables, served by TensorFlow alone
    path = in_memory.export(str(tmp_path / "in_memory"))
    np.savez(tmp_path / "episode.npz", sx=sx, sy=sy, qx=qx)
    subprocess.run([sys.executable, "-c", LOAD_AND_SERVE, path, str(tmp_path / "episode.npz"), str(tmp_path / "p.npy")],
                   check=True, timeout=240, env={**os.environ, "PYTHONPATH": ""})
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-6)
    meta = export_lib.read_metadata(path)
    assert [m["learner"] for m in meta["members"]] == ["toy_prototypes", "toy_prototypes"]
    assert [m["path"] for m in meta["members"]] == [None, None]
    assert [m["temperature"] for m in meta["members"]] == pytest.approx(fitted)


def test_in_memory_members_without_an_input_shape_are_named(members):
    paths, models = members

    class NoShape:
        def few_shot_probabilities(self, support_x, support_y, query_x):
            return tf.ones([tf.shape(query_x)[0], 2]) / 2

    with pytest.raises(ValueError, match="NoShape has `few_shot_probabilities` but no input shape"):
        FewShotEnsemble([models[0], NoShape()])
    with pytest.raises(ValueError, match="SavedModel paths or learners with `few_shot_probabilities`; received int"):
        FewShotEnsemble([paths[0], 3])
