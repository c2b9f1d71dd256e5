"""PolicySearch(reward_seeds=k): a policy's score is the mean over k differently seeded children."""

import numpy as np
import pytest

import tfmeta  # noqa: F401  (environment defaults before TensorFlow)

from tfmeta.augmentation_search import PolicySearch, policy_space, small_convnet


def test_a_policy_is_scored_by_the_mean_of_its_seeded_children(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1)).astype("float32"), rng.integers(0, 3, 64)
    children = []

    def build(policy):
        children.append((small_convnet(policy, (8, 8, 1), 3), policy.seed))
        return children[-1][0]

    space = policy_space(operations=("flip",), sub_policies=1, steps=1, probabilities=(0.0, 0.5), magnitudes=(5,))
    search = PolicySearch(build, space=space, strategy="random", max_trials=1, seed=3, reward_seeds=2,
                          directory=str(tmp_path), project_name="seeds")
    search.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=2, batch_size=16)
    assert [seed for _, seed in children] == [3, 4]  # one child per seed, the policy's draws seeded alike
    first, second = (model.get_weights()[0] for model, _ in children)
    assert not np.allclose(first, second)
    best = [max(model.history.history["val_accuracy"]) for model, _ in children]
    assert search.results()[0]["score"] == pytest.approx(np.mean(best))
    with pytest.raises(ValueError, match="`reward_seeds` must be an integer >= 1; received 0"):
        PolicySearch(build, reward_seeds=0)
