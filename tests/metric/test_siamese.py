"""SiameseNetwork: distances, pair outputs, learning on held-out classes, few-shot, export."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.metric.siamese import PairAccuracy, SiameseNetwork, koch_features, pair_distance


def tiny_encoder(shape=(8, 8, 1)):
    return tfmeta.backbones.conv4(shape, filters=16, blocks=2)


def np_distance(a, b, kind):
    if kind == "l1":
        return np.abs(a - b).sum(-1)
    if kind == "euclidean":
        return np.sqrt(((a - b) ** 2).sum(-1))
    na = a / np.linalg.norm(a, axis=-1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 1.0 - (na * nb).sum(-1)


@pytest.mark.parametrize("kind", ["l1", "euclidean", "cosine"])
def test_distances_match_numpy_with_broadcasting(kind):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 1, 7)).astype(np.float32)
    b = rng.normal(size=(1, 4, 7)).astype(np.float32)
    got = pair_distance(a, b, kind).numpy()
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, np_distance(a, b, kind), rtol=1e-5, atol=1e-6)
    # Weighting Koch's features by 1 gives the negated distance (squared for Euclidean,
    # cosine similarity = 1 - cosine distance).
    feats = koch_features(a, b, kind).numpy().sum(-1)
    expected = {"l1": -np_distance(a, b, "l1"), "euclidean": -np_distance(a, b, "euclidean") ** 2,
                "cosine": 1.0 - np_distance(a, b, "cosine")}[kind]
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)


def test_euclidean_gradient_finite_for_identical_pairs():
    e = tf.Variable(np.ones((2, 3), np.float32))
    with tf.GradientTape() as tape:
        d = tf.reduce_sum(pair_distance(e, tf.ones((2, 3)), "euclidean"))
    assert np.all(np.isfinite(tape.gradient(d, e).numpy()))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"objective": "triplet"}, "objective"),
        ({"distance": "l2"}, "distance"),
        ({"margin": 0.0}, "margin"),
        ({"margin": "wide"}, "margin"),
        ({"encoder": "conv4"}, "encoder"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        SiameseNetwork(**kwargs)


def test_default_encoder_is_conv4_and_outputs_are_consistent():
    model = SiameseNetwork()  # conv4 on 28x28x1, Koch + L1
    assert model.encoder.name == "conv4"
    x = np.random.default_rng(0).random((6, 28, 28, 1)).astype(np.float32)
    logits = model((x[:3], x[3:]), training=False).numpy()
    assert logits.shape == (3,)
    np.testing.assert_allclose(model.similarity(x[:3], x[3:]), 1 / (1 + np.exp(-logits)), rtol=1e-5)
    assert model.embed(x).shape == (6, 64)
    with pytest.raises(ValueError, match="`x2`"):
        model.similarity(x[:3], x[:2, :14])
    with pytest.raises(ValueError, match="same number"):
        model.similarity(x[:3], x[:2])


@pytest.mark.parametrize("distance", ["l1", "euclidean", "cosine"])
def test_contrastive_output_is_distance_of_embeddings(distance):
    model = SiameseNetwork(tiny_encoder(), objective="contrastive", distance=distance, margin=2.0)
    x = np.random.default_rng(1).random((8, 8, 8, 1)).astype(np.float32)
    e = model.embed(x)
    d = np_distance(e[:4], e[4:], distance)
    np.testing.assert_allclose(model((x[:4], x[4:]), training=False).numpy(), d, rtol=1e-4, atol=1e-5)
    # Similarity = 2 ** (-2 d / margin): 0.5 at the decision threshold d = margin / 2.
    np.testing.assert_allclose(model.similarity(x[:4], x[4:]), 2.0 ** (-2.0 * d / 2.0), rtol=1e-4)


def test_pair_accuracy_thresholds():
    koch = PairAccuracy("koch")
    koch.update_state([1.0, 0.0, 1.0, 0.0], [2.0, -1.0, -0.5, 0.1])
    assert float(koch.result()) == pytest.approx(0.5)
    con = PairAccuracy("contrastive", margin=1.0)
    con.update_state([1.0, 0.0, 1.0, 0.0], [0.4, 0.6, 0.7, 0.2])
    assert float(con.result()) == pytest.approx(0.5)


def test_episode_targets_are_balanced():
    sy = tf.constant([[0, 1, 2]])
    qy = tf.constant([[0, 0, 1, 2]])
    same, w = SiameseNetwork._episode_targets(sy, qy)
    same, w = same.numpy(), w.numpy()
    np.testing.assert_array_equal(same.reshape(4, 3), [[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    # Same and different pairs carry equal total weight; the weights average to 1.
    assert w[same == 1].sum() == pytest.approx(w[same == 0].sum())
    assert w.mean() == pytest.approx(1.0)


def auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float(np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))


def nuisance_classes(n_classes, per_class, seed, informative=4, nuisance=28):
    """Classes that differ only in a few informative features, buried in large nuisance noise.

    Raw-input distances barely separate them; a Siamese network must learn which features
    matter. Held-out classes are new random prototypes in the same informative subspace.
    """
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(n_classes, informative))
    y = np.repeat(np.arange(n_classes), per_class)
    signal = protos[y] + 0.15 * rng.normal(size=(len(y), informative))
    noise = 2.0 * rng.normal(size=(len(y), nuisance))
    x = np.concatenate([signal, noise], axis=1).astype(np.float32)
    return x, y.astype(np.int64)


@pytest.mark.parametrize(
    "objective, distance, data, nonneg",
    [
        ("koch", "l1", "pairs", False),
        ("contrastive", "euclidean", "pairs", False),
        ("koch", "l1", "episodes", True),
        ("contrastive", "euclidean", "softmax", False),
    ],
)
def test_learns_to_compare_held_out_classes(objective, distance, data, nonneg):
    xtr, ytr = nuisance_classes(40, 20, seed=0)
    xte, yte = nuisance_classes(10, 20, seed=1)  # new classes, never trained on
    encoder = tfmeta.backbones.mlp((32,), hidden=(64, 16))
    model = SiameseNetwork(
        encoder, input_shape=(32,), objective=objective, distance=distance, margin=3.0,
        nonneg_weights=nonneg, episode_loss="softmax" if data == "softmax" else "pairs",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    if data in ("episodes", "softmax"):
        ds = EpisodeSampler(xtr, ytr, ways=20, shots=2, queries=4, seed=0).dataset(meta_batch=2)
    else:
        ds = PairSampler(xtr, ytr, seed=0).dataset(batch_size=128)
    (a, b), same = PairSampler(xte, yte, seed=5).sample(400, seed=5)
    before = auc(model.similarity(a, b), same)
    chance = model.evaluate_episodes(xte, yte, ways=5, shots=1, queries=5, episodes=40)["accuracy"]
    history = model.fit(ds, steps_per_epoch=100, epochs=2, verbose=0)
    metric = "episode_accuracy" if data == "softmax" else "pair_accuracy"
    assert set(history.history) >= {"loss", metric}
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = auc(model.similarity(a, b), same)
    # Similarity now ranks same pairs of unseen classes far above different pairs ...
    assert after > 0.8 and after > before + 0.2, (before, after)
    # ... and 5-way one-shot accuracy on unseen classes is far above chance (0.2).
    result = model.evaluate_episodes(xte, yte, ways=5, shots=1, queries=5, episodes=40)
    assert result["accuracy"] > 0.5 and result["accuracy"] > chance + 0.25, (chance, result)


def manual_class_logits(model, sx, sy, qx, ways):
    """Per-class mean pair logit via the public pair API (log-odds or -distance)."""
    q = np.repeat(qx, len(sx), axis=0)
    s = np.tile(sx, (len(qx),) + (1,) * (sx.ndim - 1))
    sim = model.similarity(q, s).astype(np.float64)
    if model.objective == "koch":
        pair = np.log(sim) - np.log1p(-sim)
    else:
        pair = np.log(sim) * model.margin / (2 * np.log(2))  # = -d
    pair = pair.reshape(len(qx), len(sx))
    return np.stack([pair[:, sy == c].mean(1) for c in range(ways)], axis=1)


@pytest.mark.parametrize("objective", ["koch", "contrastive"])
def test_few_shot_probabilities_are_softmax_of_mean_pair_logits(digits, objective):
    x, y = digits
    model = SiameseNetwork(tiny_encoder(), objective=objective, distance="l1", margin=3.0)
    ep = EpisodeSampler(x, y, ways=5, shots=3, queries=2, seed=0).sample(seed=0)
    probs = model.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    assert probs.shape == (10, 5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert np.all(probs >= 0)
    logits = manual_class_logits(model, ep.support_x, ep.support_y, ep.query_x, 5)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=2e-3, atol=1e-5)
    with pytest.raises(ValueError, match="support_y"):
        model.predict_few_shot(ep.support_x, ep.support_y + 1, ep.query_x)


def test_config_round_trip_and_keras_save(tmp_path):
    model = SiameseNetwork(tiny_encoder(), objective="contrastive", distance="cosine", margin=0.5)
    x = np.random.default_rng(2).random((4, 8, 8, 1)).astype(np.float32)
    ref = model.similarity(x[:2], x[2:])
    path = str(tmp_path / "siamese.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SiameseNetwork)
    assert (loaded.objective, loaded.distance, loaded.margin) == ("contrastive", "cosine", 0.5)
    np.testing.assert_allclose(loaded.similarity(x[:2], x[2:]), ref, rtol=1e-5)


LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    d = np.load(sys.argv[2])
    m = tf.saved_model.load(sys.argv[1])
    sim = m.signatures["serving_default"](x1=tf.constant(d["x1"]), x2=tf.constant(d["x2"]))
    fs = m.signatures["few_shot"](support_x=tf.constant(d["sx"]), support_y=tf.constant(d["sy"]),
                                  query_x=tf.constant(d["qx"]))
    assert not any(k.startswith("tfmeta") for k in sys.modules), "tfmeta was imported"
    print(json.dumps({"similarity": sim["similarity"].numpy().tolist(),
                      "probabilities": fs["probabilities"].numpy().tolist()}))
    """
)


@pytest.mark.parametrize("objective, fresh_interpreter", [("koch", True), ("contrastive", False)])
def test_export_round_trip_identical_outputs(tmp_path, digits, objective, fresh_interpreter):
    x, y = digits
    model = SiameseNetwork(tiny_encoder(), input_shape=(8, 8, 1), objective=objective, distance="euclidean")
    model.compile(optimizer="adam")
    model.fit(PairSampler(x, y, seed=0).dataset(32), steps_per_epoch=3, epochs=1, verbose=0)
    path = model.export(str(tmp_path / "siamese"))
    assert path.endswith(os.sep + "1")
    meta = json.load(open(os.path.join(path, "tfmeta.json")))
    assert meta["learner"] == "siamese" and meta["objective"] == objective
    assert set(meta["signatures"]) == {"serving_default", "few_shot"}

    (x1, x2), _ = PairSampler(x, y, seed=1).sample(10, seed=1)
    ep = EpisodeSampler(x, y, ways=4, shots=2, queries=3, seed=0).sample(seed=3)
    want_sim = model.similarity(x1, x2)
    want_probs = model.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)

    loaded = tf.saved_model.load(path)
    sig = loaded.signatures["serving_default"]
    got_sim = sig(x1=tf.constant(x1), x2=tf.constant(x2))["similarity"].numpy()
    assert got_sim.shape == (10,)
    np.testing.assert_allclose(got_sim, want_sim, rtol=1e-5, atol=1e-6)
    got_probs = loaded.signatures["few_shot"](
        support_x=tf.constant(ep.support_x), support_y=tf.constant(ep.support_y),
        query_x=tf.constant(ep.query_x),
    )["probabilities"].numpy()
    np.testing.assert_allclose(got_probs, want_probs, rtol=1e-5, atol=1e-6)

    if not fresh_interpreter:
        return
    # A fresh interpreter that never imports tfmeta gives the same numbers.
    arrays = tmp_path / "inputs.npz"
    np.savez(arrays, x1=x1, x2=x2, sx=ep.support_x, sy=ep.support_y, qx=ep.query_x)
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    out = subprocess.run(
        [sys.executable, str(script), path, str(arrays)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(res["similarity"], want_sim, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res["probabilities"], want_probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("objective", ["koch", "contrastive"])
def test_softmax_episode_loss_is_cross_entropy_of_few_shot_logits(digits, objective):
    x, y = digits
    model = SiameseNetwork(
        tiny_encoder(), objective=objective, distance="euclidean", episode_loss="softmax"
    )
    model.compile(optimizer="adam")
    sampler = EpisodeSampler(x, y, ways=5, shots=2, queries=3, seed=0)
    (sx, sy, qx), qy = next(iter(sampler.dataset(meta_batch=2)))
    got = model.evaluate((sx, sy, qx), qy, batch_size=2, verbose=0, return_dict=True)
    losses, hits = [], []
    for t in range(2):  # by hand, one task at a time, through the public few-shot API
        logits = model.few_shot_logits(sx[t], sy[t], qx[t], 5).numpy().astype(np.float64)
        m = logits.max(1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
        losses.append(-logp[np.arange(15), qy[t].numpy()])
        hits.append(logits.argmax(1) == qy[t].numpy())
    assert got["loss"] == pytest.approx(np.concatenate(losses).mean(), rel=1e-4)
    assert got["episode_accuracy"] == pytest.approx(np.concatenate(hits).mean())


def test_softmax_episode_loss_errors():
    with pytest.raises(ValueError, match="episode_loss"):
        SiameseNetwork(tiny_encoder(), episode_loss="triplet")
    x = np.zeros((8, 8, 8, 1), np.float32)
    model = SiameseNetwork(tiny_encoder(), episode_loss="softmax")
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="episode_loss='softmax'.*pair data"):
        model.fit((x, x), np.ones(8, np.float32), epochs=1, verbose=0)
