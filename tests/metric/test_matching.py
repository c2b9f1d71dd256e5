"""Matching network: hand-computed attention, FCE, learning, ways/shots, export round trip."""

import keras
import numpy as np
import pytest

from tfmeta.data import EpisodeSampler
from tfmeta.metric.matching import MatchingNetwork


def test_cosine_attention_logits_by_hand(identity_encoder):
    # support (not grouped): (1,1) class 1, (1,0) class 0, (0,1) class 1; query (1,0), (0,3)
    sx = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    sy = np.array([1, 0, 1], np.int32)
    qx = np.array([[1.0, 0.0], [0.0, 3.0]], np.float32)
    model = MatchingNetwork(identity_encoder(), temperature=0.5)
    r = 1 / np.sqrt(2)
    cos = np.array([[r, 1.0, 0.0], [r, 0.0, 1.0]])
    a = np.exp(cos / 0.5)
    a /= a.sum(1, keepdims=True)  # attention over the support set
    p = np.stack([a[:, 1], a[:, 0] + a[:, 2]], axis=1)  # P(y=c|x) = sum_i a_i [y_i = c]
    logits = model.few_shot_logits(sx, sy, qx, 2).numpy()
    np.testing.assert_allclose(logits, np.log(p), rtol=1e-5)
    np.testing.assert_allclose(model.predict_few_shot(sx, sy, qx), p, rtol=1e-5)


def test_bad_arguments_raise(identity_encoder):
    with pytest.raises(ValueError, match="temperature"):
        MatchingNetwork(identity_encoder(), temperature=-1.0)
    with pytest.raises(ValueError, match="processing_steps"):
        MatchingNetwork(identity_encoder(), full_context=True, processing_steps=0)
    conv = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="flat embeddings"):
        MatchingNetwork(conv)


def test_full_context_embeddings_give_normalised_log_probabilities(identity_encoder):
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(6, 4)).astype("f")
    sy = np.array([2, 0, 1, 0, 2, 1], np.int32)
    qx = rng.normal(size=(3, 4)).astype("f")
    model = MatchingNetwork(identity_encoder(4), full_context=True, processing_steps=2)
    plain = MatchingNetwork(identity_encoder(4))
    logits = model.few_shot_logits(sx, sy, qx, 3).numpy()
    assert logits.shape == (3, 3)
    np.testing.assert_allclose(np.exp(logits).sum(1), 1.0, rtol=1e-5)
    # the LSTMs change the embeddings, so FCE differs from plain cosine attention
    assert not np.allclose(logits, plain.few_shot_logits(sx, sy, qx, 3).numpy(), atol=1e-3)
    names = {w.path.split("/")[0] for w in model.trainable_weights}
    assert {"g_bilstm", "f_attlstm"} <= names


@pytest.mark.parametrize("full_context", [False, True])
def test_learns_new_classes_with_other_ways_and_shots(
    noisy_clusters, clusters_encoder, full_context
):
    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = noisy_clusters
    model = MatchingNetwork(clusters_encoder(), full_context=full_context)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    steps = 20 if full_context else 50
    ds = EpisodeSampler(x, y, ways=5, shots=2, queries=5, seed=0).dataset(meta_batch=2)
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    one = model.evaluate_episodes(xt, yt, ways=5, shots=1, queries=5, episodes=30)
    five = model.evaluate_episodes(xt, yt, ways=3, shots=5, queries=5, episodes=30)
    # raw-feature nearest prototype gets ~0.44 on 5-way 1-shot, chance 0.2
    assert one["accuracy"] > (0.6 if full_context else 0.75), one
    assert five["accuracy"] > (0.7 if full_context else 0.85), five  # chance 0.33


def test_export_round_trip_and_config(noisy_clusters, clusters_encoder, tmp_path,
                                      export_round_trip):
    _, (xt, yt) = noisy_clusters
    model = MatchingNetwork(clusters_encoder(), temperature=0.2)
    ep = EpisodeSampler(xt, yt, ways=4, shots=3, queries=2, seed=1).sample()
    perm = np.random.default_rng(1).permutation(len(ep.support_y))
    ep = ep._replace(support_x=ep.support_x[perm], support_y=ep.support_y[perm])
    want = model.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    _, out = export_round_trip(model, ep, tmp_path)
    np.testing.assert_allclose(out["probs"], want, rtol=1e-5, atol=1e-6)
    clone = MatchingNetwork.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert clone.temperature == 0.2 and clone.full_context is False
    np.testing.assert_allclose(
        clone.predict_few_shot(ep.support_x, ep.support_y, ep.query_x), want, rtol=1e-5)
