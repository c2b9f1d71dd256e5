"""The one episode evaluator: same episodes whatever the batch, learners and functions alike."""

import numpy as np
import pytest

from tfmeta.data import EpisodeSampler
from tfmeta.data.episodes import Episode
from tfmeta.fewshot.evaluation import (
    EpisodeList,
    evaluate_on_arrays,
    mean_confidence_interval,
    score_episodes,
    score_grid,
)


@pytest.fixture(scope="module")
def blobs():
    """Ten well-separated classes of 2-D points (a nearest-mean classifier is near perfect)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (10, 2))
    y = np.repeat(np.arange(10), 20)
    x = (centres[y] + rng.normal(0, 0.5, (200, 2))).astype("float32")
    return x, y


def nearest_mean(support_x, support_y, query_x):
    """One-episode probabilities of a nearest-class-mean classifier (numpy, no learning)."""
    support_x, support_y, query_x = (np.asarray(a) for a in (support_x, support_y, query_x))
    ways = int(support_y.max()) + 1
    means = np.stack([support_x[support_y == k].mean(0) for k in range(ways)])
    logits = -((query_x[:, None] - means[None]) ** 2).sum(-1)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class BatchedNearestMean:
    """The same classifier through the batched interface (as MAML provides one)."""

    score_name = "accuracy"

    def __init__(self):
        self.batches = []

    def score_episode_batch(self, sx, sy, qx, qy):
        self.batches.append(int(sx.shape[0]))
        return [float(np.mean(nearest_mean(a, b, c).argmax(-1) == np.asarray(d)))
                for a, b, c, d in zip(sx, sy, qx, qy)]


def test_batched_and_episode_scorers_see_the_same_episodes(blobs):
    x, y = blobs
    sampler = EpisodeSampler(x, y, ways=5, shots=1, queries=3, seed=7)
    one = score_episodes(nearest_mean, sampler, episodes=23, seed=7)
    batched = BatchedNearestMean()
    many = score_episodes(batched, sampler, episodes=23, seed=7, meta_batch=5)
    assert batched.batches == [5, 5, 5, 5, 3]  # 23 episodes, the last batch cut to 3
    assert one["episodes"] == many["episodes"] == 23
    assert many["accuracy"] == pytest.approx(one["accuracy"], abs=1e-12)
    assert one["ways"] == 5 and one["shots"] == 1
    # Well-separated classes: the classifier is far above 5-way chance, a random one is not.
    assert one["accuracy"] > 0.9
    rng = np.random.default_rng(0)
    chance = score_episodes(lambda sx, sy, qx: rng.random((len(qx), 5)), sampler, episodes=200, seed=7)
    assert abs(chance["accuracy"] - 0.2) < 0.1


def test_another_seed_draws_other_episodes_and_the_ci_shrinks(blobs):
    x, y = blobs
    noisy = lambda sx, sy, qx: nearest_mean(sx, sy, np.asarray(qx) + 4.0)  # noqa: E731
    a = evaluate_on_arrays(noisy, x, y, ways=5, shots=1, queries=2, episodes=50, seed=1)
    b = evaluate_on_arrays(noisy, x, y, ways=5, shots=1, queries=2, episodes=50, seed=2)
    c = evaluate_on_arrays(noisy, x, y, ways=5, shots=1, queries=2, episodes=400, seed=2)
    assert a["accuracy"] != b["accuracy"]
    assert c["ci95"] < b["ci95"]


def test_mean_confidence_interval_is_196_standard_errors():
    mean, ci = mean_confidence_interval([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5
    assert ci == pytest.approx(1.96 * np.std([0, 1, 0, 1], ddof=1) / 2)
    assert np.isnan(mean_confidence_interval([1.0])[1])


def test_episode_list_scores_fixed_episodes_in_order():
    episodes = [
        Episode(np.eye(3, dtype="float32"), np.arange(3, dtype="int32"),
                np.eye(3, dtype="float32")[[k, (k + 1) % 3]], np.array([k, (k + 1) % 3], "int32"))
        for k in range(3)
    ]
    runs = EpisodeList(episodes)
    assert (runs.ways, runs.shots, len(runs)) == (3, 1, 3)
    seen = []

    def fn(sx, sy, qx):
        seen.append(int(np.asarray(qx)[0].argmax()))
        return nearest_mean(sx, sy, qx)

    result = score_episodes(fn, runs, episodes=3)
    assert seen == [0, 1, 2] and result["accuracy"] == 1.0
    with pytest.raises(ValueError, match="at least one episode"):
        EpisodeList([])


def test_score_grid_scores_every_setting_it_can(blobs):
    x, y = blobs
    table = score_grid(nearest_mean, {"all": (x, y), "few": (x[y < 6], y[y < 6])},
                       settings=[(5, 1), (8, 1)], queries=2, episodes=10)
    assert set(table["all"]) == {"5w1s", "8w1s"}
    assert set(table["few"]) == {"5w1s"}  # 6 classes cannot give 8-way episodes
    assert table["all"]["5w1s"]["accuracy"] > 0.9


def test_bad_episodes_and_models_are_named(blobs):
    x, y = blobs
    sampler = EpisodeSampler(x, y, ways=5, shots=1, queries=1, seed=0)
    with pytest.raises(ValueError, match="`episodes`"):
        score_episodes(nearest_mean, sampler, episodes=0)
    with pytest.raises(TypeError, match="`model`"):
        score_episodes(42, sampler, episodes=2)


def test_old_spellings_warn_and_give_the_same_numbers(blobs):
    x, y = blobs
    with pytest.warns(DeprecationWarning, match="tfmeta.fewshot.evaluation"):
        from tfmeta.evaluation import evaluate_episodes
    old = evaluate_episodes(nearest_mean, x, y, ways=5, shots=1, queries=2, episodes=20, seed=3)
    new = evaluate_on_arrays(nearest_mean, x, y, ways=5, shots=1, queries=2, episodes=20, seed=3)
    assert old == new
    with pytest.warns(DeprecationWarning, match="tfmeta.test_time_augmentation"):
        import tfmeta.backbones

        old_fn = tfmeta.backbones.with_test_time_shifts
    import tfmeta.test_time_augmentation

    assert old_fn is tfmeta.test_time_augmentation.with_test_time_shifts
