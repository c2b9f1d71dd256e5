"""Training, adaptation, evaluation with CI, and the few_shot export (incl. XLA)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import tfmeta
from conftest import classification_batch, tiny_convnet
from tfmeta.data import EpisodeSampler
from tfmeta.data.sinusoid import SinusoidTasks


def test_maml_learns_sinusoids_with_fit():
    keras.utils.set_random_seed(0)
    net = tfmeta.backbones.mlp((1,), (40, 40), 1)
    maml = tfmeta.MAML(net, inner_lr=0.01, inner_steps=1)
    maml.compile(keras.optimizers.Adam(3e-3))
    tasks = SinusoidTasks(shots=10, queries=10, seed=0)
    before = maml.evaluate_tasks(tasks, episodes=100)
    maml.fit(tasks.dataset(meta_batch=10), steps_per_epoch=300, epochs=1, verbose=0)
    after = maml.evaluate_tasks(tasks, episodes=100)
    assert set(after) == {"mse", "ci95", "episodes"}
    assert after["mse"] < 0.75 * before["mse"], (before, after)
    adapted = maml.adapt(*tasks.sample(seed=5)[2:4], steps=5)
    assert isinstance(adapted, keras.Model)
    assert adapted.predict(np.zeros((3, 1), np.float32), verbose=0).shape == (3, 1)


def _trained_classifier():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(12, 8, 8, 1)).astype(np.float32)
    y = np.repeat(np.arange(12), 6)
    x = protos[y] + 0.4 * rng.normal(size=(len(y), 8, 8, 1)).astype(np.float32)
    maml = tfmeta.MAML(tiny_convnet(ways=3), inner_lr=0.4, inner_steps=1, eval_steps=2)
    maml.compile(keras.optimizers.Adam(3e-3))
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=0)
    maml.fit(sampler.dataset(meta_batch=4), steps_per_epoch=30, epochs=1, verbose=0)
    return maml, x, y


def test_classification_export_xla_and_reload(tmp_path):
    maml, x, y = _trained_classifier()
    result = maml.evaluate_episodes(x, y, ways=3, shots=1, queries=3, episodes=30)
    assert result["accuracy"] > 0.6 and result["ci95"] > 0 and result["episodes"] == 30
    ep = EpisodeSampler(x, y, ways=3, shots=1, queries=3, seed=1).sample(seed=3)
    sx, sy, qx = (tf.constant(a) for a in (ep.support_x, ep.support_y, ep.query_x))
    direct = maml.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    # XLA (TPU readiness): the in-graph adaptation compiles with jit_compile=True, same numbers.
    plain = tf.function(maml.few_shot_core)(sx, sy, qx).numpy()
    xla = tf.function(maml.few_shot_core, jit_compile=True)(sx, sy, qx).numpy()
    np.testing.assert_allclose(xla, plain, atol=1e-5)
    np.testing.assert_allclose(plain[:, :3], direct, atol=1e-6)
    # adapt() gives a Keras model with the same adapted weights.
    adapted = maml.adapt(ep.support_x, ep.support_y)
    assert adapted.predict(ep.query_x, verbose=0).shape == (len(ep.query_x), 3)

    path = maml.export(str(tmp_path / "maml"))
    meta = json.load(open(os.path.join(path, "tfmeta.json")))
    assert meta["adaptation"]["inner_steps"] == 2 and meta["adaptation"]["inner_lr"] == 0.4
    assert meta["learner"] == "maml"
    np.savez(tmp_path / "ep.npz", sx=ep.support_x, sy=ep.support_y, qx=ep.query_x)
    code = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({path!r}); d = np.load({str(tmp_path / 'ep.npz')!r})\n"
        "p = m.signatures['few_shot'](support_x=tf.constant(d['sx']), support_y=tf.constant(d['sy']),"
        " query_x=tf.constant(d['qx']))['probabilities'].numpy()\n"
        "assert 'tfmeta' not in sys.modules\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), direct, atol=1e-5)


def test_generic_path_wraps_any_keras_model():
    """A model the vectorised path does not cover (Dropout, LayerNorm) runs via stateless_call."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.LayerNormalization(),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    maml = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1)
    assert not maml.fast_path
    batch = classification_batch(tasks=2)
    maml.compile(keras.optimizers.Adam(1e-3))
    logs = maml.train_on_batch(batch[0], batch[1], return_dict=True)
    assert np.isfinite(logs["loss"]) and 0 <= logs["accuracy"] <= 1
