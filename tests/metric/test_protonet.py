"""Prototypical network: hand-computed logits, learning, ways/shots, export round trip."""

import os

import keras
import numpy as np
import pytest

import tfmeta
from tfmeta.data import EpisodeSampler
from tfmeta.metric.protonet import PrototypicalNetwork


def test_euclidean_logits_by_hand(tiny_episode, identity_encoder):
    sx, sy, qx = tiny_episode
    model = PrototypicalNetwork(identity_encoder())
    # prototypes (1, 0) and (0, 2); query (1, 1): d = 1, 2; query (3, 0): d = 4, 13.
    logits = model.few_shot_logits(sx, sy, qx, 2).numpy()
    np.testing.assert_allclose(logits, [[-1.0, -2.0], [-4.0, -13.0]], rtol=1e-6)
    probs = model.predict_few_shot(sx, sy, qx)
    e = np.exp([[-1.0, -2.0], [-4.0, -13.0]])
    np.testing.assert_allclose(probs, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_cosine_logits_by_hand(tiny_episode, identity_encoder):
    sx, sy, qx = tiny_episode
    model = PrototypicalNetwork(identity_encoder(), distance="cosine", temperature=0.5)
    # prototypes (1, 0), (0, 2): cos((1,1), .) = 1/sqrt2 both; cos((3,0), .) = 1, 0.
    logits = model.few_shot_logits(sx, sy, qx, 2).numpy()
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(logits, [[r / 0.5, r / 0.5], [2.0, 0.0]], rtol=1e-5, atol=1e-6)


def test_transductive_refinement_by_hand(tiny_episode, identity_encoder):
    sx, sy, qx = tiny_episode
    model = PrototypicalNetwork(identity_encoder(), refine_steps=2)
    # numpy soft k-means: prototypes updated with the queries' softmax assignments, twice.
    onehot = np.eye(2)[sy]
    sums, counts = onehot.T @ sx, onehot.sum(0)
    protos = sums / counts[:, None]
    for _ in range(2):
        d = ((qx[:, None] - protos[None]) ** 2).sum(-1)
        p = np.exp(-d) / np.exp(-d).sum(1, keepdims=True)
        protos = (sums + p.T @ qx) / (counts + p.sum(0))[:, None]
    want = -((qx[:, None] - protos[None]) ** 2).sum(-1)
    np.testing.assert_allclose(model.few_shot_logits(sx, sy, qx, 2).numpy(), want, rtol=1e-5)
    # Query (3, 0) pulls class 0's prototype from (1, 0) towards it.
    assert protos[0, 0] > 1.3
    # Training (the episode loss) is the inductive model's.
    plain = PrototypicalNetwork(identity_encoder())
    emb = (sx, sy, qx)
    np.testing.assert_allclose(
        model.logits_from_embeddings(*emb, 2, training=True).numpy(),
        plain.logits_from_embeddings(*emb, 2, training=True).numpy(),
    )


def test_bad_arguments_raise(identity_encoder):
    with pytest.raises(ValueError, match="distance"):
        PrototypicalNetwork(identity_encoder(), distance="manhattan")
    with pytest.raises(ValueError, match="temperature"):
        PrototypicalNetwork(identity_encoder(), temperature=0)
    with pytest.raises(ValueError, match="refine_steps.*received -1"):
        PrototypicalNetwork(identity_encoder(), refine_steps=-1)


def test_learns_and_generalises_to_new_classes_with_other_ways_and_shots(
    trained_protonet, noisy_clusters, identity_encoder
):
    _, (xt, yt) = noisy_clusters
    # trained 5-way 2-shot; tested 5-way 1-shot, 10-way 1-shot and 3-way 5-shot on the 20
    # held-out classes. Raw features (the same learner, untrained identity embedding) give
    # about 0.44 on 5-way 1-shot; chance is 0.2.
    raw = PrototypicalNetwork(identity_encoder(24)).evaluate_episodes(
        xt, yt, ways=5, shots=1, queries=5, episodes=40)
    one = trained_protonet.evaluate_episodes(xt, yt, ways=5, shots=1, queries=5, episodes=40)
    ten = trained_protonet.evaluate_episodes(xt, yt, ways=10, shots=1, queries=5, episodes=20)
    five = trained_protonet.evaluate_episodes(xt, yt, ways=3, shots=5, queries=5, episodes=40)
    assert raw["accuracy"] < 0.55, raw
    assert one["accuracy"] > 0.75, one
    assert ten["accuracy"] > 0.55, ten  # chance 0.1
    assert five["accuracy"] > 0.9, five  # chance 0.33
    assert (five["ways"], five["shots"], ten["ways"]) == (3, 5, 10)


def test_keras_save_and_config_round_trip(trained_protonet, noisy_clusters, tmp_path):
    _, (xt, yt) = noisy_clusters
    ep = EpisodeSampler(xt, yt, ways=4, shots=1, queries=3, seed=3).sample()
    want = trained_protonet.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    trained_protonet.save(tmp_path / "p.keras")
    loaded = keras.models.load_model(tmp_path / "p.keras")
    assert isinstance(loaded, PrototypicalNetwork) and loaded.distance == "euclidean"
    got = loaded.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lazy_top_level_name():
    assert tfmeta.PrototypicalNetwork is PrototypicalNetwork


def test_export_round_trip_identical_outputs(trained_protonet, noisy_clusters, tmp_path,
                                             export_round_trip):
    import json

    _, (xt, yt) = noisy_clusters
    ep = EpisodeSampler(xt, yt, ways=3, shots=2, queries=4, seed=5).sample()
    perm = np.random.default_rng(0).permutation(len(ep.support_y))  # any support order
    ep = ep._replace(support_x=ep.support_x[perm], support_y=ep.support_y[perm])
    path, out = export_round_trip(trained_protonet, ep, tmp_path)
    want = trained_protonet.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    np.testing.assert_allclose(out["probs"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        out["emb"], trained_protonet.encoder.predict(ep.query_x, verbose=0), rtol=1e-5,
        atol=1e-5)
    meta = json.load(open(os.path.join(path, "tfmeta.json")))
    assert meta["learner"] == "prototypical_network"
    assert set(meta["signatures"]) == {"few_shot", "serving_default"}


def test_refined_model_exports_and_saves_with_its_refinement(
    trained_protonet, noisy_clusters, tmp_path, export_round_trip
):
    _, (xt, yt) = noisy_clusters
    ep = EpisodeSampler(xt, yt, ways=5, shots=1, queries=5, seed=6).sample()
    refined = PrototypicalNetwork(trained_protonet.encoder, refine_steps=3)
    want = refined.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    plain = trained_protonet.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    assert np.abs(want - plain).max() > 1e-3  # the queries moved the prototypes
    _, out = export_round_trip(refined, ep, tmp_path)
    np.testing.assert_allclose(out["probs"], want, rtol=1e-5, atol=1e-6)
    refined.save(tmp_path / "r.keras")
    loaded = keras.models.load_model(tmp_path / "r.keras")
    assert loaded.refine_steps == 3
    np.testing.assert_allclose(
        loaded.predict_few_shot(ep.support_x, ep.support_y, ep.query_x), want, rtol=1e-5,
        atol=1e-6,
    )
