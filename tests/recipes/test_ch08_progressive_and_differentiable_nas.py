"""recipes/ch08_progressive_and_differentiable_nas.py --quick: strategies, the FLOPs front, DARTS, transfer."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_ch08_quick(run_recipe, check_plot, data_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_recipe("ch08_progressive_and_differentiable_nas.py", "--quick", "--out-dir", str(out), timeout=600)
    assert all(f"== {name}" in proc.stdout for name in ("macro", "flops", "darts", "transfer"))
    summary = json.loads((out / "ch08_summary.json").read_text())
    macro = summary["macro"]["strategies"]
    assert set(macro) == {"pnas", "predictor", "tpe", "controller", "evolution", "random"}
    for name, entry in macro.items():
        curve = entry["mean_best_rank_by_query"]
        assert len(curve) == 40 and all(a >= b for a, b in zip(curve, curve[1:])), name  # best-so-far
        assert curve[-1] == np.mean(entry["best_ranks"])
    # The model-based strategies beat random search already at 40 queries.
    assert macro["tpe"]["median_best_rank"] < macro["random"]["median_best_rank"]
    assert macro["predictor"]["median_best_rank"] < macro["random"]["median_best_rank"]

    from tfmeta.nas.benchmarks import load_benchmark

    bench = load_benchmark("nasbench-macro", str(data_dir / "nasbench_macro" / "nas-bench-macro_cifar10.json"))
    flops = summary["flops"]
    assert flops["target_flops"] == bench.median_cost("flops")
    soft = {w: [s for s in flops["soft"] if s["weight"] == w] for w in (0.0, -0.3)}
    # A cost-aware reward moves the picks to cheaper architectures.
    assert np.mean([s["flops"] for s in soft[-0.3]]) < np.mean([s["flops"] for s in soft[0.0]])
    for picks in soft.values():
        for s in picks:
            assert s["accuracy"] == bench.table[s["arch"]]["mean_acc"]
            dominated = any(v["flops"] <= s["flops"] and v["mean_acc"] > s["accuracy"] for v in bench.table.values())
            assert not (s["on_front"] and dominated)
    ranks = flops["hard_budget"]["feasible_ranks"]
    assert len(ranks) == 3 and all(r is not None for r in ranks)
    darts = summary["darts"]
    for weights in darts["darts"]["mean_op_weight"].values():  # a softmax per edge, averaged
        assert abs(sum(weights.values()) - 1.0) < 1e-3
    # The derived cell, retrained deeper, classifies held-out digits.
    assert darts["darts"]["test_accuracy"] > 0.85 and "controller" not in darts
    omniglot = summary["transfer"]["omniglot"]
    assert summary["transfer"]["search_on_digits"]["arch_json"] == darts["darts"]["arch_json"]  # the DARTS cell
    assert omniglot["classes"] == 242 and omniglot["searched_cell"]["params"] > 0
    assert omniglot["searched_cell"]["test_accuracy"] > 2 / omniglot["classes"]  # learning, after one epoch
    for name in ("ch08_best_rank.png", "ch08_flops_front.png", "ch08_darts_weights.png", "ch08_transfer.png"):
        check_plot(out / name)
