"""Cost-aware rewards (MnasNet) and the FLOPs-constrained search on NAS-Bench-Macro."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfmeta.nas.benchmarks import run_tabular_search
from tfmeta.nas.cost import CostAwareMetric, CostAwareReward, count_flops, mnas_reward


def test_mnas_reward_values():
    assert mnas_reward(0.8, 100, 100) == pytest.approx(0.8)
    assert mnas_reward(0.9, 200, 100, weight=-0.07) == pytest.approx(0.9 * 2 ** -0.07)
    assert mnas_reward(0.9, 50, 100, weight=-0.07) == pytest.approx(0.9 * 0.5 ** -0.07)
    soft = CostAwareReward(target=1e6, weight=-0.07)
    # Soft: double the cost is worth ~4.7% relative accuracy.
    assert soft(0.95, 2e6) < soft(0.95, 1e6) < soft(0.95, 0.5e6)
    assert soft(0.95 * 2 ** 0.07, 2e6) == pytest.approx(soft(0.95, 1e6))
    hard = CostAwareReward(target=1e6, hard=True)
    assert hard(0.9, 1e6) == 0.9 and hard(0.9, 1) == 0.9  # within the budget: the accuracy
    assert hard(0.9, 1.5e6) == pytest.approx(0.6)  # beyond: acc * (cost / target) ** -1
    with pytest.raises(ValueError, match="target"):
        CostAwareReward(target=0)
    with pytest.raises(ValueError, match="weight"):
        CostAwareReward(target=1, weight=0.5)


def test_flops_constrained_search_finds_the_best_within_budget(bench, macro_json):
    budget = bench.median_cost("flops")
    feasible = sorted((v["mean_acc"] for v in bench.table.values() if v["flops"] <= budget), reverse=True)
    constrained = {"cost": "flops", "target": "median", "hard": True}
    ranks, over = [], 0
    for seed in range(3):
        r = run_tabular_search("nasbench-macro", macro_json, "evolution", 100, seed, cost_reward=constrained)
        assert r["cost_reward"]["target"] == budget
        assert bench.cost(bench.space.from_key(r["best_feasible_arch"]), "flops") <= budget
        assert r["feasible_rank"] == 1 + sum(a > r["best_feasible_accuracy"] + 1e-9 for a in feasible)
        ranks.append(r["feasible_rank"])
        over += sum(bench.table[k]["flops"] > budget for k in r["queried_archs"][50:])
    plain = [run_tabular_search("nasbench-macro", macro_json, "evolution", 100, s)["best_arch"] for s in range(3)]
    assert all(bench.table[k]["flops"] > budget for k in plain)  # unconstrained: over budget
    assert np.median(ranks) <= 10, ranks
    assert over < 0.25 * 150  # the search stays mostly within the budget once it has learned


def test_cost_aware_metric_uses_parameters_and_flops():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert count_flops(model) == 2 * 4 * 3 or count_flops(model) == 2 * 4 * 3 + 3
    metric = CostAwareMetric(CostAwareReward(target=15, weight=-0.5), cost="params", monitor="mae")
    model.compile("sgd", "mse", metrics=["mae"])
    history = model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=1, verbose=0, callbacks=[metric])
    logs = history.history
    assert logs["cost"] == [15.0]
    assert logs["cost_aware_mae"][0] == pytest.approx(logs["mae"][0]) and metric.cost == 15.0
    with pytest.raises(ValueError, match="cost"):
        CostAwareMetric(CostAwareReward(target=1), cost="watts")
