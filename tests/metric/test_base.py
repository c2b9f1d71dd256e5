"""The shared episodic machinery: class pooling, batched logits, train/test steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data import EpisodeSampler
from tfmeta.metric.base import (
    EpisodicMetricLearner,
    class_logsumexp,
    class_means,
    pairwise_cosine,
    pairwise_squared_distances,
)
from tfmeta.metric.protonet import PrototypicalNetwork


def test_class_means_ignores_support_order():
    emb = np.array([[0.0, 2.0], [0.0, 0.0], [2.0, 0.0], [4.0, 4.0]], np.float32)
    labels = np.array([1, 0, 0, 2])
    got = class_means(emb, labels, 3).numpy()
    np.testing.assert_allclose(got, [[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    perm = np.array([3, 0, 2, 1])
    np.testing.assert_allclose(class_means(emb[perm], labels[perm], 3).numpy(), got)


def test_pairwise_helpers_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)).astype("f"), rng.normal(size=(5, 3)).astype("f")
    d = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_squared_distances(a, b).numpy(), d, rtol=1e-5)
    cos = (a @ b.T) / np.linalg.norm(a, axis=1)[:, None] / np.linalg.norm(b, axis=1)[None]
    np.testing.assert_allclose(pairwise_cosine(a, b).numpy(), cos, rtol=1e-5, atol=1e-6)
    scores = rng.normal(size=(2, 4)).astype("f")
    labels = np.array([0, 1, 0, 1])
    want = np.stack([np.log(np.exp(scores[:, labels == c]).sum(-1)) for c in (0, 1)], -1)
    np.testing.assert_allclose(class_logsumexp(scores, labels, 2).numpy(), want, rtol=1e-5)


def test_subclass_must_implement_logits(identity_encoder):
    model = EpisodicMetricLearner(identity_encoder())
    with pytest.raises(NotImplementedError):
        model.few_shot_logits(np.zeros((2, 2), "f"), np.array([0, 1]), np.zeros((1, 2), "f"), 2)


def test_encoder_must_be_a_model():
    with pytest.raises(ValueError, match="encoder"):
        PrototypicalNetwork(encoder="conv4")


def test_call_batches_episodes_like_single_episodes(tiny_episode, identity_encoder):
    sx, sy, qx = tiny_episode
    model = PrototypicalNetwork(identity_encoder())
    sx2 = np.stack([sx, sx[::-1] * 2.0])
    sy2 = np.stack([sy, sy[::-1]])
    qx2 = np.stack([qx, qx + 1.0])
    batched = model((sx2, sy2, qx2)).numpy()
    assert batched.shape == (2, 2, 2)
    for t in range(2):
        single = model.few_shot_logits(sx2[t], sy2[t], qx2[t], 2).numpy()
        np.testing.assert_allclose(batched[t], single, rtol=1e-6)


def test_train_and_test_step_report_episode_loss_and_accuracy(tiny_episode, identity_encoder):
    sx, sy, qx = tiny_episode
    qy = np.array([0, 0], np.int32)
    model = PrototypicalNetwork(identity_encoder())
    model.compile(optimizer="sgd")
    logs = model.evaluate(
        x=(sx[None], sy[None], qx[None]), y=qy[None], verbose=0, return_dict=True
    )
    logits = np.array([[-1.0, -2.0], [-4.0, -13.0]])
    want = -np.mean(logits[:, 0] - np.log(np.exp(logits).sum(-1)))
    assert logs["loss"] == pytest.approx(want, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(1.0)


def test_fit_updates_weights_and_works_with_callbacks(digits_split, digits_mlp_encoder_fn):
    (x, y), _ = digits_split
    model = PrototypicalNetwork(digits_mlp_encoder_fn())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [w.copy() for w in model.get_weights()]
    ds = EpisodeSampler(x, y, ways=3, shots=2, queries=3, seed=0).dataset(meta_batch=2)
    hist = model.fit(ds, steps_per_epoch=3, epochs=2, verbose=0,
                     callbacks=[keras.callbacks.History()])
    assert set(hist.history) >= {"loss", "accuracy"} and len(hist.history["loss"]) == 2
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("learner", ["siamese", "siamese_koch", "protonet", "matching", "relation"])
def test_mixed_bfloat16_encoder_gives_float32_scores_close_to_float32(digits, learner):
    """Under `mixed_bfloat16` the encoder computes in bfloat16, but embeddings, distances and
    logits are float32, trainable, and within bfloat16 rounding of the float32 model."""
    x, y = digits
    sampler = EpisodeSampler(x, y, ways=5, shots=1, queries=3, seed=0)
    (sx, sy, qx), qy = next(iter(sampler.dataset(meta_batch=1)))

    def make():
        encoder = tfmeta.backbones.conv4((8, 8, 1), filters=16, blocks=2)
        if learner.startswith("siamese"):
            objective = "koch" if learner == "siamese_koch" else "contrastive"
            return tfmeta.SiameseNetwork(encoder, objective=objective, episode_loss="softmax")
        cls = {"protonet": tfmeta.PrototypicalNetwork, "matching": tfmeta.MatchingNetwork,
               "relation": tfmeta.RelationNetwork}[learner]
        return cls(encoder)

    keras.utils.set_random_seed(0)
    reference = make()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = make()
        assert {layer.compute_dtype for layer in mixed.encoder.layers} >= {"bfloat16"}
        mixed.compile(optimizer=keras.optimizers.Adam(1e-2))
        ref_logits = reference.few_shot_logits(sx[0], sy[0], qx[0], 5)
        mixed.few_shot_logits(sx[0], sy[0], qx[0], 5)  # builds a lazy head (Koch, relation)
        mixed.set_weights(reference.get_weights())
        mixed_logits = mixed.few_shot_logits(sx[0], sy[0], qx[0], 5)
        assert mixed_logits.dtype == tf.float32
        scale = float(tf.reduce_max(tf.abs(ref_logits)))
        np.testing.assert_allclose(mixed_logits.numpy(), ref_logits.numpy(), atol=0.05 * scale)
        history = mixed.fit(sampler.dataset(meta_batch=1), steps_per_epoch=30, epochs=1, verbose=0)
        losses = history.history["loss"]
        assert np.isfinite(losses).all()
        reference.compile(optimizer="adam")
        before = reference.evaluate((sx, sy, qx), qy, verbose=0, return_dict=True)["loss"]
        after = mixed.evaluate((sx, sy, qx), qy, verbose=0, return_dict=True)["loss"]
        assert after < before  # it learns in bfloat16
    finally:
        keras.config.set_dtype_policy(previous)
