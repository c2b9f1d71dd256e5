"""MAML test-time augmentation (`test_time_views`): the support set is adapted on every view,
query probabilities are averaged over views, in evaluation, `predict_few_shot` and the export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import classification_batch, tiny_convnet, tiny_regressor


@pytest.fixture(scope="module")
def pair():
    """A MAML with 4 test-time views and a plain one sharing the same network."""
    keras.utils.set_random_seed(0)
    net = tiny_convnet(ways=3)
    views = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, eval_steps=2, test_time_views=4, test_time_seed=5)
    plain = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, eval_steps=2)
    return views, plain


def _warped(x, transforms):
    """[V * N, ...] view-major copies of `x` [N, H, W, C] under each transform."""
    return np.concatenate(
        [keras.ops.image.affine_transform(x, np.tile(t, (len(x), 1))).numpy() for t in transforms]
    )


def test_views_equal_adapting_on_the_warped_support_and_averaging_queries(pair):
    views, plain = pair
    (sx, sy, qx), _ = classification_batch(tasks=1, ways=3, shots=1, queries=2, seed=1)
    sx, sy, qx = sx[0].numpy(), sy[0].numpy(), qx[0].numpy()
    transforms = views.test_time_transforms
    assert transforms.shape == (4, 8)
    np.testing.assert_array_equal(transforms[0], [1, 0, 0, 0, 1, 0, 0, 0])  # the image itself
    # By hand: a plain MAML adapts on the 4 x 3 warped supports and answers the 4 x 6 warped
    # queries in one pass; the views' probabilities are then averaged per query.
    probs = plain.predict_few_shot(_warped(sx, transforms), np.tile(sy, 4), _warped(qx, transforms))
    expected = probs.reshape(4, len(qx), 3).mean(axis=0)
    got = views.predict_few_shot(sx, sy, qx)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(got - plain.predict_few_shot(sx, sy, qx)).max() > 1e-4


def test_evaluation_and_export_use_the_same_views(pair, tmp_path):
    views, _ = pair
    (sx, sy, qx), qy = classification_batch(tasks=3, ways=3, shots=1, queries=4, seed=2)
    accuracy = views.score_episode_batch(sx, sy, qx, qy)
    by_episode = [
        np.mean(np.argmax(views.predict_few_shot(sx[t], sy[t], qx[t]), -1) == qy[t].numpy())
        for t in range(3)
    ]
    np.testing.assert_allclose(accuracy, by_episode, atol=1e-6)
    path = views.export(str(tmp_path / "maml_views"))
    served = tf.saved_model.load(path).signatures["few_shot"](
        support_x=sx[0], support_y=sy[0], query_x=qx[0]
    )["probabilities"].numpy()
    np.testing.assert_allclose(served, views.predict_few_shot(sx[0], sy[0], qx[0]), atol=1e-5)
    # XLA (TPU readiness): the in-graph views + adaptation compile with jit_compile=True.
    plain = tf.function(views.few_shot_core)(sx[0], sy[0], qx[0]).numpy()
    xla = tf.function(views.few_shot_core, jit_compile=True)(sx[0], sy[0], qx[0]).numpy()
    np.testing.assert_allclose(xla, plain, atol=1e-5)


def test_evaluation_batches_fewer_tasks_when_views_make_them_large(pair, monkeypatch):
    """25 tasks of 20-way 16-view episodes overflowed TensorFlow; the batch now shrinks."""
    views, plain = pair
    rng = np.random.default_rng(0)
    x = rng.random((60, 8, 8, 1)).astype("float32")
    y = np.repeat(np.arange(6), 10)
    sampler = tfmeta.data.EpisodeSampler(x, y, ways=3, shots=1, queries=4, seed=3)
    # A task holds 3 x 5 images of 64 values: 960 plain, 3,840 with 4 views.
    monkeypatch.setattr(tfmeta.gradient.learner, "EVAL_PIXEL_BUDGET", 10_000)
    assert plain.eval_meta_batch(sampler) == 10
    assert views.eval_meta_batch(sampler) == 2
    assert views.eval_meta_batch(object()) == 25  # no image shape known (e.g. sinusoids)
    # The batch size does not change the scores: the same episodes, 2 or 25 at a time.
    auto = views.evaluate_tasks(sampler, episodes=30, seed=3)
    fixed = views.evaluate_tasks(sampler, episodes=30, seed=3, meta_batch=25)
    assert auto["episodes"] == fixed["episodes"] == 30
    np.testing.assert_allclose(auto["accuracy"], fixed["accuracy"], atol=1e-6)
    np.testing.assert_allclose(auto["ci95"], fixed["ci95"], atol=1e-6)


def test_bad_test_time_views_are_named():
    with pytest.raises(ValueError, match="`test_time_views` must be"):
        tfmeta.MAML(tiny_convnet(ways=3), test_time_views=0)
    with pytest.raises(ValueError, match="`test_time_views` > 1 needs a model of fixed-size images"):
        tfmeta.MAML(tiny_regressor(), test_time_views=4)
