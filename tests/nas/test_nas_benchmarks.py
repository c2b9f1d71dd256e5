"""Tabular NAS-Bench-Macro benchmark: result contract, distinct queries, controller beats random."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tfmeta.nas.benchmarks import run_tabular_search

REPO = Path(__file__).resolve().parents[2]


def test_table_ranks(bench):
    assert len(bench) == 6561
    assert bench.keys_by_rank[0] in ("22212220", "22212202")  # tied best, 93.13%
    assert bench.rank(bench.accuracy(bench.space.from_key("22212220"))) == 1
    assert bench.rank(bench.top_k_threshold(10)) <= 10
    assert bench.rank(0.0) == 6562 - sum(1 for v in bench.table.values() if v["mean_acc"] <= 0.0)


@pytest.mark.parametrize("strategy", ["controller", "evolution", "random"])
def test_result_contract(macro_json, bench, strategy):
    r = run_tabular_search("nasbench-macro", macro_json, strategy, budget=30, seed=3)
    assert json.loads(json.dumps(r)) == r
    assert {"best_arch", "best_accuracy", "trajectory", "queries"} <= set(r)
    assert r["queries"] == len(r["trajectory"]) == 30
    assert len(set(r["queried_archs"])) == 30, "a query was repeated"
    assert np.all(np.diff(r["trajectory"]) >= 0)
    best = max(r["queried_archs"], key=lambda k: bench.table[k]["mean_acc"])
    assert r["best_accuracy"] == pytest.approx(bench.table[best]["mean_acc"]) == r["trajectory"][-1]
    assert r["best_arch"] in bench.table and bench.table[r["best_arch"]]["mean_acc"] == r["best_accuracy"]
    assert r["best_rank"] == bench.rank(r["best_accuracy"])
    assert run_tabular_search("nasbench-macro", macro_json, strategy, 30, 3)["queried_archs"] == r["queried_archs"]
    if strategy == "controller":
        assert r["ms_per_sample"] > 0 and r["ms_per_update"] > 0


def test_controller_finds_better_architectures_than_random(macro_json):
    seeds = range(6)
    # ENAS's tanh constant 1.1: the tabular default 2.5 finds more, but re-samples longer.
    fast = {"tanh_constant": 1.1}
    ctrl = [run_tabular_search("nasbench-macro", macro_json, "controller", 100, s, fast)["best_rank"] for s in seeds]
    rand = [run_tabular_search("nasbench-macro", macro_json, "random", 100, s)["best_rank"] for s in seeds]
    assert sum(r <= 10 for r in ctrl) >= 3
    assert sum(r <= 10 for r in ctrl) > sum(r <= 10 for r in rand)
    assert np.median(ctrl) < np.median(rand)


def test_errors(macro_json, tmp_path):
    with pytest.raises(ValueError, match="strategy"):
        run_tabular_search("nasbench-macro", macro_json, "bayes", 10, 0)
    with pytest.raises(ValueError, match="benchmark"):
        run_tabular_search("nasbench-201", macro_json, "random", 10, 0)
    with pytest.raises(ValueError, match="budget"):
        run_tabular_search("nasbench-macro", macro_json, "random", 0, 0)
    with pytest.raises(ValueError, match="data"):
        run_tabular_search("nasbench-macro", str(tmp_path / "missing.json"), "random", 10, 0)


def test_benchmark_script_side_by_side(macro_json, capsys):
    spec = importlib.util.spec_from_file_location("nas_macro_bench", REPO / "benchmarks" / "nas_macro.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--data", macro_json, "--seeds", "2", "--budget", "20"])
    report = json.loads(capsys.readouterr().out)
    assert set(report["strategies"]) == {"controller", "evolution", "random"}
    # Each row summarises the strategy's own runs (seeds 0 and 1), as `run_tabular_search` gives them.
    for name, entry in report["strategies"].items():
        runs = [run_tabular_search("nasbench-macro", macro_json, name, 20, seed) for seed in (0, 1)]
        ranks = [r["best_rank"] for r in runs]
        assert entry["best_ranks"] == ranks
        assert entry["top10_rate"] == np.mean([rank <= 10 for rank in ranks])
        assert entry["median_best_rank"] == np.median(ranks)
        assert entry["mean_best_accuracy"] == pytest.approx(np.mean([r["best_accuracy"] for r in runs]))
        np.testing.assert_allclose(entry["mean_trajectory"], np.mean([r["trajectory"] for r in runs], axis=0),
                                   atol=5e-4)  # the script rounds to 3 decimals
    assert report["strategies"]["controller"]["ms_per_update"] > 0
