"""Small shared fixtures for the metric-learner tests (keep them cheap)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """sklearn digits as float32 images `[1797, 8, 8, 1]` in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    return x, d.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits_split(digits):
    """Digits split by class: train on 0-5, hold out 6-9 (classes never seen in training)."""
    x, y = digits
    train = y < 6
    return (x[train], y[train]), (x[~train], y[~train])


# ---- fixtures for the episodic metric learners (protonet, matching, relation) ----


@pytest.fixture
def identity_encoder():
    """Factory of an encoder that returns its input (embeddings = raw feature vectors)."""
    import keras

    def make(dim: int = 2):
        inputs = keras.Input((dim,))
        return keras.Model(inputs, keras.layers.Identity()(inputs), name="identity")

    return make


@pytest.fixture
def tiny_episode():
    """A 2-way episode in 2-D, support deliberately not grouped by class.

    Class 0: (0, 0) and (2, 0) -> prototype (1, 0); class 1: (0, 2) -> prototype (0, 2).
    Queries: (1, 1) and (3, 0).
    """
    support_x = np.array([[0.0, 2.0], [0.0, 0.0], [2.0, 0.0]], np.float32)
    support_y = np.array([1, 0, 0], np.int32)
    query_x = np.array([[1.0, 1.0], [3.0, 0.0]], np.float32)
    return support_x, support_y, query_x


@pytest.fixture(scope="session")
def digits_mlp_encoder_fn():
    """Factory of a small MLP encoder for 8x8 digits (fast to train on 2 CPU cores)."""
    from tfmeta.backbones import mlp

    def make():
        return mlp((8, 8, 1), hidden=(64, 32), name="digits_mlp")

    return make


@pytest.fixture(scope="session")
def noisy_clusters():
    """A small few-shot problem whose raw-feature metric is poor but a learned one is good.

    Each class is a Gaussian blob in 8 informative dimensions, hidden among 16 dimensions of
    large per-example noise. Train classes 0-39, held-out classes 40-59 (new blob centres),
    20 examples each. Nearest-prototype in raw features is near chance; an embedding that
    learns to ignore the noise dimensions transfers to the new classes.
    """
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 8)) * 1.0
    y = np.repeat(np.arange(60), 20)
    signal = centres[y] + 0.25 * rng.normal(size=(len(y), 8))
    noise = 1.5 * rng.normal(size=(len(y), 16))
    x = np.concatenate([signal, noise], axis=1).astype(np.float32)
    train = y < 40
    return (x[train], y[train]), (x[~train], y[~train] - 40)


@pytest.fixture(scope="session")
def clusters_encoder():
    """Factory of a small MLP encoder for `noisy_clusters` (24 features -> 16-d)."""
    import keras

    def make():
        inputs = keras.Input((24,))
        h = keras.layers.Dense(32, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(16)(h), name="clusters_mlp")

    return make


@pytest.fixture(scope="module")
def trained_protonet(noisy_clusters, clusters_encoder):
    """A prototypical network trained 50 steps on 5-way 2-shot episodes of the 40 training
    classes of `noisy_clusters` (one per test module; tests must not train it further)."""
    import keras

    from tfmeta.data import EpisodeSampler
    from tfmeta.metric.protonet import PrototypicalNetwork

    keras.utils.set_random_seed(0)
    (x, y), _ = noisy_clusters
    model = PrototypicalNetwork(clusters_encoder())
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    ds = EpisodeSampler(x, y, ways=5, shots=2, queries=5, seed=0).dataset(meta_batch=2)
    model.fit(ds, steps_per_epoch=50, epochs=1, verbose=0)
    return model


LOAD_WITHOUT_TFMETA = r"""
import sys, numpy as np, tensorflow as tf
path, npz = sys.argv[1], sys.argv[2]
d = np.load(npz)
loaded = tf.saved_model.load(path)
out = loaded.signatures["few_shot"](support_x=tf.constant(d["sx"]),
    support_y=tf.constant(d["sy"]), query_x=tf.constant(d["qx"]))["probabilities"].numpy()
emb = loaded.signatures["serving_default"](x=tf.constant(d["qx"]))["embeddings"].numpy()
assert "tfmeta" not in sys.modules
np.savez(npz.replace(".npz", "_out.npz"), probs=out, emb=emb)
"""


@pytest.fixture
def export_round_trip():
    """`fn(model, episode, tmp_path) -> (path, outputs)`: exports `model`, reloads it in a
    subprocess that never imports tfmeta, and returns its `few_shot` probabilities and
    `serving_default` embeddings on the episode."""
    return _export_round_trip


def _export_round_trip(model, episode, tmp_path):
    import os
    import subprocess
    import sys

    path = model.export(str(tmp_path / "export"))
    assert os.path.basename(path) == "1"
    npz = str(tmp_path / "ep.npz")
    np.savez(npz, sx=episode.support_x, sy=episode.support_y.astype(np.int32),
             qx=episode.query_x)
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_TFMETA)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    subprocess.run([sys.executable, str(script), path, npz], check=True, env=env,
                   cwd=str(tmp_path), timeout=120)
    return path, np.load(npz.replace(".npz", "_out.npz"))
