"""Relation network: hand-computed relation scores and loss, learning, export round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import EpisodeSampler
from tfmeta.metric.relation import RelationNetwork, relation_encoder


def linear_relation(weights, bias):
    """A relation module `score = w . [class, query] + b` with fixed weights."""
    inputs = keras.Input((len(weights),))
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array(weights, np.float32)[:, None], np.array([bias], np.float32)])
    return model


@pytest.mark.parametrize(
    "pooling, want",
    [
        # class means (1,0), (0,2); queries (1,1), (3,0); score = c1 + 2 c2 + 3 q1 + 4 q2 + .5
        ("mean", [[8.5, 11.5], [10.5, 13.5]]),
        # class sums (2,0), (0,2)
        ("sum", [[9.5, 11.5], [11.5, 13.5]]),
    ],
)
def test_relation_scores_by_hand(tiny_episode, identity_encoder, pooling, want):
    sx, sy, qx = tiny_episode
    model = RelationNetwork(identity_encoder(), relation=linear_relation([1, 2, 3, 4], 0.5),
                            pooling=pooling)
    np.testing.assert_allclose(model.few_shot_logits(sx, sy, qx, 2).numpy(), want, rtol=1e-6)


def test_mse_and_cross_entropy_losses_by_hand(identity_encoder):
    logits = tf.constant([[0.0, 2.0], [1.0, -1.0]])
    qy = tf.constant([1, 0])
    mse = RelationNetwork(identity_encoder(), relation=linear_relation([0, 0, 0, 0], 0.0))
    s = 1 / (1 + np.exp(-np.array([[0.0, 2.0], [1.0, -1.0]])))
    want = np.mean((s - np.array([[0, 1], [1, 0]])) ** 2)
    assert float(mse.episode_loss(logits, qy, 2)) == pytest.approx(want, rel=1e-6)
    ce = RelationNetwork(identity_encoder(), relation=linear_relation([0, 0, 0, 0], 0.0),
                         loss="cross_entropy")
    l = np.array([[0.0, 2.0], [1.0, -1.0]])
    want = -np.mean(l[[0, 1], [1, 0]] - np.log(np.exp(l).sum(1)))
    assert float(ce.episode_loss(logits, qy, 2)) == pytest.approx(want, rel=1e-6)


def test_bad_arguments_raise(identity_encoder):
    with pytest.raises(ValueError, match="pooling"):
        RelationNetwork(identity_encoder(), pooling="max")
    with pytest.raises(ValueError, match="loss"):
        RelationNetwork(identity_encoder(), loss="hinge")
    with pytest.raises(ValueError, match="relation"):
        RelationNetwork(identity_encoder(), relation=lambda x: x)


def test_feature_map_encoder_gets_convolutional_relation_module():
    keras.utils.set_random_seed(0)
    model = RelationNetwork(relation_encoder((8, 8, 1), filters=4))
    assert model.encoder.output_shape == (None, 2, 2, 4)
    assert model.relation.input_shape == (None, 2, 2, 8)
    rng = np.random.default_rng(0)
    sx, qx = rng.random((6, 8, 8, 1)).astype("f"), rng.random((4, 8, 8, 1)).astype("f")
    sy = np.array([0, 1, 2, 0, 1, 2], np.int32)
    assert model.few_shot_logits(sx, sy, qx, 3).shape == (4, 3)
    model.compile(optimizer="adam")
    logs = model.train_on_batch((sx[None], sy[None], qx[None]), np.array([[0, 1, 2, 0]]),
                                return_dict=True)
    assert np.isfinite(logs["loss"])


def test_learns_new_classes_with_other_ways_and_shots(noisy_clusters, clusters_encoder):
    keras.utils.set_random_seed(0)
    (x, y), (xt, yt) = noisy_clusters
    model = RelationNetwork(clusters_encoder())
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    ds = EpisodeSampler(x, y, ways=5, shots=2, queries=5, seed=0).dataset(meta_batch=2)
    model.fit(ds, steps_per_epoch=150, epochs=1, verbose=0)
    one = model.evaluate_episodes(xt, yt, ways=5, shots=1, queries=5, episodes=30)
    five = model.evaluate_episodes(xt, yt, ways=3, shots=5, queries=5, episodes=30)
    # raw-feature nearest prototype gets ~0.44 on 5-way 1-shot, chance 0.2
    assert one["accuracy"] > 0.7, one
    assert five["accuracy"] > 0.85, five  # chance 0.33


def test_export_round_trip_and_keras_save(noisy_clusters, clusters_encoder, tmp_path,
                                          export_round_trip):
    _, (xt, yt) = noisy_clusters
    model = RelationNetwork(clusters_encoder(), pooling="sum")
    ep = EpisodeSampler(xt, yt, ways=4, shots=2, queries=3, seed=2).sample()
    perm = np.random.default_rng(2).permutation(len(ep.support_y))
    ep = ep._replace(support_x=ep.support_x[perm], support_y=ep.support_y[perm])
    want = model.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
    _, out = export_round_trip(model, ep, tmp_path)
    np.testing.assert_allclose(out["probs"], want, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "r.keras")
    loaded = keras.models.load_model(tmp_path / "r.keras")
    assert isinstance(loaded, RelationNetwork) and loaded.pooling == "sum"
    np.testing.assert_allclose(
        loaded.predict_few_shot(ep.support_x, ep.support_y, ep.query_x), want, rtol=1e-5)
