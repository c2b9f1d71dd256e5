"""What MAML and Reptile share: Reptile by composition, and the one episode evaluator."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from conftest import tiny_convnet, tiny_regressor
from tfmeta.data import EpisodeSampler
from tfmeta.data.sinusoid import SinusoidTasks
from tfmeta.fewshot.evaluation import score_episodes
from tfmeta.gradient.learner import GradientLearner


def _images(seed=0):
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(8, 8, 8, 1)).astype(np.float32)
    y = np.repeat(np.arange(8), 5)
    return protos[y] + 0.4 * rng.normal(size=(len(y), 8, 8, 1)).astype(np.float32), y


def test_reptile_is_not_a_maml_yet_adapts_evaluates_and_exports_like_one(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = _images()
    reptile = tfmeta.Reptile(tiny_convnet(ways=3), inner_lr=0.1, inner_steps=2, eval_steps=3)
    assert not isinstance(reptile, tfmeta.MAML) and isinstance(reptile, GradientLearner)
    assert reptile.inner.lr_vars == [] and not reptile.inner.per_step_bn
    reptile.compile(keras.optimizers.SGD(0.5))
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=0)
    reptile.fit(sampler.dataset(meta_batch=2), steps_per_epoch=3, epochs=1, verbose=0)

    ep = sampler.sample(seed=4)
    probs = reptile.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    adapted = reptile.adapt(ep.support_x, ep.support_y)  # eval_steps = 3 steps on the support set
    by_hand = reptile.inner_loop(tf.constant(ep.support_x[None]), tf.constant(ep.support_y[None]), 3, 0).params
    for var, p in zip(adapted.trainable_variables, by_hand):
        np.testing.assert_allclose(var.numpy(), p[0].numpy(), rtol=1e-5, atol=1e-6)

    result = reptile.evaluate_episodes(x, y, ways=3, shots=1, queries=2, episodes=6, seed=2)
    assert set(result) == {"accuracy", "ci95", "episodes", "ways", "shots"} and result["episodes"] == 6

    path = reptile.export(str(tmp_path / "reptile"))
    meta = json.load(open(os.path.join(path, "tfmeta.json")))
    assert meta["learner"] == "reptile"
    assert meta["adaptation"]["inner_steps"] == 3 and meta["adaptation"]["inner_lr"] == 0.1
    served = tf.saved_model.load(path).signatures["few_shot"](
        support_x=tf.constant(ep.support_x), support_y=tf.constant(ep.support_y),
        query_x=tf.constant(ep.query_x),
    )["probabilities"].numpy()
    np.testing.assert_allclose(served, probs, atol=1e-5)


@pytest.mark.parametrize(
    "option, value",
    [("order", 2), ("meta_sgd", True), ("multi_step_loss", True), ("per_step_bn", True),
     ("bn_test_stats", "running"), ("msl_anneal_steps", 5)],
)
def test_reptile_refuses_maml_options_by_name(option, value):
    with pytest.raises(ValueError, match=f"`{option}` is a MAML option; Reptile does not take it"):
        tfmeta.Reptile(tiny_regressor(), **{option: value})
    tfmeta.Reptile(tiny_regressor(), meta_sgd=False, bn_test_stats="batch")  # off: accepted


def test_score_episodes_equals_evaluate_tasks_for_classification_and_regression():
    keras.utils.set_random_seed(1)
    x, y = _images(1)
    maml = tfmeta.MAML(tiny_convnet(ways=3), inner_lr=0.4, inner_steps=1, eval_steps=2)
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=3, seed=3)
    assert maml.score_name == "accuracy"
    direct = score_episodes(maml, sampler, episodes=11, seed=3, meta_batch=4)
    short = maml.evaluate_tasks(sampler, episodes=11, seed=3, meta_batch=4)
    assert set(short) == {"accuracy", "ci95", "episodes"}
    assert {k: direct[k] for k in short} == short
    assert maml.evaluate_episodes(x, y, 3, 1, queries=3, episodes=11, seed=3) == score_episodes(
        maml, EpisodeSampler(x, y, ways=3, shots=1, queries=3, seed=3), episodes=11, seed=3
    )

    sinusoid = tfmeta.MAML(tfmeta.backbones.mlp((1,), (8,), 1), inner_lr=0.01)  # task="auto"
    tasks = SinusoidTasks(shots=5, queries=5, seed=0)
    assert sinusoid.score_name == "mse"
    direct = score_episodes(sinusoid, tasks, episodes=9, seed=4)
    short = sinusoid.evaluate_tasks(tasks, episodes=9, seed=4)
    assert set(short) == {"mse", "ci95", "episodes"} and short["mse"] > 0
    assert {k: direct[k] for k in short} == short


def test_score_name_follows_the_task_and_auto_never_misnames_a_score():
    """With task="auto" the labels decide: a regressor with 2 outputs cannot be told from a
    classifier before its labels are seen, so scoring it by name asks for `task=`."""
    keras.utils.set_random_seed(2)
    net = tfmeta.backbones.mlp((1,), (8,), 2)
    rng = np.random.default_rng(0)
    sx, qx = (tf.constant(rng.normal(size=(2, 4, 1)).astype(np.float32)) for _ in range(2))
    sy, qy = tf.concat([sx, -sx], -1), tf.concat([qx, -qx], -1)
    auto = tfmeta.MAML(net, inner_lr=0.1)
    assert auto.score_name == "accuracy"
    with pytest.raises(ValueError, match="`task`='auto' decides by the labels.*task='regression'"):
        auto.score_episode_batch(sx, sy, qx, qy)
    regression = tfmeta.MAML(net, inner_lr=0.1, task="regression")
    assert regression.score_name == "mse"
    np.testing.assert_allclose(
        regression.score_episode_batch(sx, sy, qx, qy),
        regression.inner_loop(sx, sy, 1, 0, query_x=qx, query_y=qy).query_losses[-1].numpy(),
        rtol=1e-6,
    )


def test_setting_eval_steps_takes_effect_in_evaluation():
    """The sinusoid recipe scores one model after 1, 5 and 10 steps by setting `eval_steps`."""
    keras.utils.set_random_seed(3)
    net = tfmeta.backbones.mlp((1,), (8,), 1)
    maml = tfmeta.MAML(net, inner_lr=0.05, inner_steps=1)
    tasks = SinusoidTasks(shots=5, queries=5, seed=0)
    one = maml.evaluate_tasks(tasks, episodes=5, seed=1)
    maml.eval_steps = 5
    five = maml.evaluate_tasks(tasks, episodes=5, seed=1)
    built_so = tfmeta.MAML(net, inner_lr=0.05, inner_steps=1, eval_steps=5)
    assert five == built_so.evaluate_tasks(tasks, episodes=5, seed=1)
    assert five["mse"] != one["mse"]


def test_a_smaller_last_batch_keeps_the_generic_path_working():
    """The per-task loop needs a static task axis: 5 episodes 2 at a time end with a batch of
    1, which gets its own trace and scores as it does alone."""
    keras.utils.set_random_seed(4)
    net = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.LayerNormalization(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    with pytest.warns(UserWarning, match="per-task loop"):
        maml = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1)
    x, y = _images(4)
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=3)
    in_twos = maml.evaluate_tasks(sampler, episodes=5, seed=3, meta_batch=2)
    alone = maml.evaluate_tasks(sampler, episodes=5, seed=3, meta_batch=1)
    assert in_twos["episodes"] == alone["episodes"] == 5
    np.testing.assert_allclose(in_twos["accuracy"], alone["accuracy"], atol=1e-6)
