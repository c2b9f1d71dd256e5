"""The papers' N-way K-shot tables: each setting scored with its own query count."""

import numpy as np
import pytest

from tfmeta.fewshot.evaluation import evaluate_on_arrays
from tfmeta.fewshot.grids import queries_per_class, score_settings


def test_queries_follow_the_omniglot_tables():
    assert [queries_per_class(w, s) for w, s in ((5, 1), (5, 5), (20, 1), (20, 5))] == [15, 15, 5, 5]
    assert queries_per_class(5, 18) == 2  # never more than the drawings the shots leave
    assert queries_per_class(5, 1, examples_per_class=10) == 9
    with pytest.raises(ValueError, match="`shots` must be below `examples_per_class` \\(20\\)"):
        queries_per_class(5, 20)


@pytest.fixture(scope="module")
def clusters():
    """30 classes of 20 noisy copies of a class pattern, 28 x 28 x 1: easy to tell apart."""
    rng = np.random.default_rng(0)
    patterns = rng.random((30, 28, 28, 1)).astype("float32")
    x = np.repeat(patterns, 20, axis=0) + 0.1 * rng.standard_normal((600, 28, 28, 1)).astype("float32")
    return x, np.repeat(np.arange(30), 20)


def test_each_setting_is_scored_as_alone_on_the_same_episodes(toy_few_shot_model, clusters, capsys):
    x, y = clusters
    table = score_settings(toy_few_shot_model, {"toy": (x, y), "first half": (x[:300], y[:300])},
                           episodes=4, seed=7, label="[toy] ")
    assert list(table) == ["toy", "first half"]
    assert list(table["toy"]) == ["5w1s", "5w5s", "20w1s", "20w5s"]
    assert list(table["first half"]) == ["5w1s", "5w5s"]  # 15 classes cannot make 20-way episodes
    for setting, (ways, shots) in {"5w1s": (5, 1), "20w5s": (20, 5)}.items():
        alone = evaluate_on_arrays(toy_few_shot_model, x, y, ways, shots, queries_per_class(ways, shots),
                                   episodes=4, seed=7)
        assert table["toy"][setting] == {**alone, "queries": queries_per_class(ways, shots)}
    assert table["toy"]["5w1s"]["accuracy"] > 0.9  # far above the 20% chance of 5 ways
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6 and printed[0].startswith("[toy] toy: 5w1s ")


def test_one_query_count_for_every_setting(toy_few_shot_model, clusters):
    x, y = clusters
    table = score_settings(toy_few_shot_model, {"toy": (x, y)}, [(20, 1)], episodes=2, queries=15)
    assert table["toy"]["20w1s"]["queries"] == 15
    assert table["toy"]["20w1s"] == {
        **evaluate_on_arrays(toy_few_shot_model, x, y, 20, 1, 15, episodes=2), "queries": 15}
