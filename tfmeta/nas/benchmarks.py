"""Tabular NAS objectives (NAS-Bench-Macro) and the fast benchmark loop behind `tfmeta search`.

NAS-Bench-Macro (Su et al. 2021) trained all 3^8 = 6,561 architectures of an 8-layer macro
space on CIFAR-10. Its JSON maps an 8-digit key (0 identity, 1 MobileNetV2 k3 e3, 2 MobileNetV2
k5 e6) to `{test_acc: [3 runs], mean_acc, std, params, flops}`. A query looks an architecture
up instead of training it, so strategies can be compared in seconds.

Conventions: accuracies are in **percent** (the table's `mean_acc` units); a query is one
*distinct* architecture evaluated (strategies never re-query), and the budget counts queries.
Architectures are ranked by `mean_acc` (rank 1 = best; ties share the best rank).

Example:

>>> result = run_tabular_search("nasbench-macro", "nas-bench-macro_cifar10.json",
...                             strategy="random", budget=100, seed=0)
>>> sorted(result)[:4]
['best_accuracy', 'best_arch', 'best_rank', 'budget']
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

import numpy as np

from tfmeta.nas.space import Architecture, MacroSpace
from tfmeta.nas.strategies import make_strategy

BENCHMARKS = ("nasbench-macro",)

# Strategy settings used for NAS-Bench-Macro (100 queries, 6,561 architectures). ENAS
# defaults are in ControllerRNN (LSTM 64, tanh 1.1, entropy 1e-4, baseline decay 0.99, lr
# 0.0035); for this small space and budget a controller that learns faster and forgets old
# rewards sooner finds top-10 architectures more often, and ENAS's macro-search logit range
# (tanh constant 2.5) lets it commit to the best layers (it then re-samples known architectures
# more often, each a REINFORCE step without a query, so a run takes longer). The candidates
# were compared on seeds 0-19 with `benchmarks/nas_macro.py --seeds 20 --strategies controller
# --controller '{...}'` and the choice is reported on seeds 0-49 by
# `benchmarks/nas_strategies.py` (docs/results.md). Rewards are mean_acc in percent.
TABULAR_DEFAULTS: dict[str, dict[str, Any]] = {
    "controller": {"learning_rate": 0.01, "baseline_decay": 0.9, "tanh_constant": 2.5},
    "evolution": {"population_size": 20, "sample_size": 5},
    "random": {},
    "predictor": {"batch_size": 5},  # 5 proposals per predictor fit: 5x fewer fits per run
    "pnas": {"beam_size": 10},
    "tpe": {},
}


class NASBenchMacro:
    """The NAS-Bench-Macro table as an objective.

    Args:
        path: The `nas-bench-macro_cifar10.json` file.

    Example:

    >>> bench = NASBenchMacro("nas-bench-macro_cifar10.json")
    >>> bench.query(bench.space.from_key("22212220"))["mean_acc"] > 93
    True
    """

    def __init__(self, path: str):
        path = os.fspath(path)
        if os.path.isdir(path):  # the folder that holds the table
            path = os.path.join(path, "nas-bench-macro_cifar10.json")
        if not os.path.isfile(path):
            raise ValueError(
                f"`data` must be the NAS-Bench-Macro JSON file or its folder; received {path!r} (not found)."
            )
        with open(path) as f:
            table = json.load(f)
        if not isinstance(table, dict) or not table:
            raise ValueError(f"`data` {path!r} does not hold a NAS-Bench-Macro table (a JSON object).")
        lengths = {len(k) for k in table}
        if len(lengths) != 1:
            raise ValueError(f"NAS-Bench-Macro keys must have one length; found {sorted(lengths)}.")
        num_layers = lengths.pop()
        for key, value in list(table.items())[:5]:
            if "mean_acc" not in value:
                raise ValueError(f"NAS-Bench-Macro entry {key!r} has no 'mean_acc'; received keys {sorted(value)}.")
        self.path = path
        self.table: dict[str, dict] = table
        self.space = MacroSpace(num_layers=num_layers)
        accs = np.array([v["mean_acc"] for v in table.values()])
        self._sorted_accs = np.sort(accs)[::-1]
        self.keys_by_rank = sorted(table, key=lambda k: -table[k]["mean_acc"])

    def __len__(self) -> int:
        return len(self.table)

    def query(self, arch: Architecture) -> dict:
        """The table entry of an architecture."""
        key = self.space.key(arch)
        if key not in self.table:
            raise ValueError(f"Architecture {key!r} is not in the NAS-Bench-Macro table.")
        return self.table[key]

    def accuracy(self, arch: Architecture) -> float:
        """Mean test accuracy over the 3 runs, in percent."""
        return float(self.query(arch)["mean_acc"])

    def rank(self, accuracy: float) -> int:
        """1-based rank of an accuracy among all architectures (ties share the best rank)."""
        return int(np.sum(self._sorted_accs > accuracy + 1e-9)) + 1

    def cost(self, arch: Architecture, name: str) -> float:
        """A cost of an architecture from the table: `"flops"` or `"params"`."""
        entry = self.query(arch)
        if name not in ("flops", "params") or name not in entry:
            raise ValueError(f"`cost` must be 'flops' or 'params' (table entries); received {name!r}.")
        return float(entry[name])

    def median_cost(self, name: str) -> float:
        """The median of a cost over the whole table (the constrained search's budget)."""
        return float(np.median([v[name] for v in self.table.values()]))

    def rank_within_budget(self, accuracy: float, cost: str, budget: float) -> int:
        """1-based rank of an accuracy among the architectures whose `cost` is within `budget`."""
        accs = np.array([v["mean_acc"] for v in self.table.values() if v[cost] <= budget])
        return int(np.sum(accs > accuracy + 1e-9)) + 1

    def top_k_threshold(self, k: int) -> float:
        """The mean accuracy of the k-th best architecture."""
        return float(self._sorted_accs[k - 1])


_CACHE: dict[str, NASBenchMacro] = {}


def load_benchmark(benchmark: str, data: str) -> NASBenchMacro:
    """Loads (and caches per path) a tabular benchmark."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"`benchmark` must be one of {list(BENCHMARKS)}; received {benchmark!r}.")
    key = os.path.abspath(os.fspath(data))
    if key not in _CACHE:
        _CACHE[key] = NASBenchMacro(key)
    return _CACHE[key]


_CONTROLLERS: dict[str, Any] = {}
_CONTROLLER_ARGS = ("units", "tanh_constant", "temperature", "entropy_weight", "baseline_decay", "learning_rate")


def _reused_controller(space, kwargs: Mapping[str, Any]) -> dict:
    """Strategy kwargs with a cached `ControllerRNN` (one per config, reset per run)."""
    from tfmeta.nas.controller import ControllerRNN

    ctrl_kwargs = {k: v for k, v in kwargs.items() if k in _CONTROLLER_ARGS}
    key = json.dumps([space.num_choices, sorted(ctrl_kwargs.items())])
    if key not in _CONTROLLERS:
        _CONTROLLERS[key] = ControllerRNN(space.num_choices, seed=0, **ctrl_kwargs)
    rest = {k: v for k, v in kwargs.items() if k not in _CONTROLLER_ARGS}
    return {**rest, "controller": _CONTROLLERS[key]}


def run_tabular_search(
    benchmark: str,
    data: str,
    strategy: str,
    budget: int,
    seed: int,
    strategy_kwargs: Mapping[str, Any] | None = None,
    cost_reward: Mapping[str, Any] | None = None,
) -> dict:
    """Runs one search strategy against a tabular benchmark.

    Args:
        benchmark: `"nasbench-macro"`.
        data: Path of the benchmark file (`nas-bench-macro_cifar10.json`).
        strategy: `"controller"`, `"evolution"` or `"random"`.
        budget: Number of queries (distinct architectures looked up).
        seed: Seed of the strategy.
        strategy_kwargs: Overrides of `TABULAR_DEFAULTS[strategy]` (e.g. controller
            `learning_rate`, `temperature`, `entropy_weight`, `tanh_constant`).
        cost_reward: A cost-aware reward (`tfmeta.nas.cost.CostAwareReward`) instead of the
            accuracy: `{"cost": "flops" | "params", "target": number or "median", "weight":
            w, "hard": bool}`. The result then also holds `best_feasible_arch`,
            `best_feasible_accuracy` and `feasible_rank` (rank among the architectures within
            the target; with `hard`, the budget).

    Returns:
        A JSON-ready dict: `best_arch` (the 8-digit key), `best_accuracy` (mean test accuracy
        in **percent**, the table's `mean_acc`), `trajectory` (best-so-far accuracy after each
        query, percent), `queries` (number of distinct architectures evaluated),
        `queried_archs` (their keys, in order), `best_rank`
        (1 = the best of the table), `samples` (architectures drawn, duplicates included),
        `strategy`, `seed`, `budget`, `wall_time_s`, and for the controller `ms_per_sample`
        and `ms_per_update` (medians over the run, milliseconds).

    Example:

    >>> r = run_tabular_search("nasbench-macro", "nas-bench-macro_cifar10.json", "evolution", 50, 1)
    >>> len(r["trajectory"]), r["queries"]
    (50, 50)
    """
    if strategy not in TABULAR_DEFAULTS:
        raise ValueError(f"`strategy` must be one of {sorted(TABULAR_DEFAULTS)}; received {strategy!r}.")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"`budget` must be a positive int; received {budget!r}.")
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an int; received {seed!r}.")
    bench = load_benchmark(benchmark, data)
    kwargs = {**TABULAR_DEFAULTS[strategy], **dict(strategy_kwargs or {})}
    t0 = time.perf_counter()
    if strategy == "controller":
        search = make_strategy(strategy, bench.space, seed=int(seed), **_reused_controller(bench.space, kwargs))
    else:
        search = make_strategy(strategy, bench.space, seed=int(seed), **kwargs)
    reward_fn, cost_name, cost_config = _cost_reward(bench, cost_reward)
    if reward_fn is not None and reward_fn.hard:
        # The table's costs are known before a query (like FLOPs from an architecture), so a
        # hard budget also filters the proposals; the reward still penalises any overrun.
        search.constraint = lambda arch: bench.cost(arch, cost_name) <= reward_fn.target
    trajectory: list[float] = []
    queried: list[str] = []
    best_acc, best_arch = -np.inf, None
    feasible_acc, feasible_arch = -np.inf, None
    for _ in range(min(int(budget), len(bench))):
        arch = search.propose()
        if arch is None:
            break
        acc = bench.accuracy(arch)
        if reward_fn is None:
            search.observe(arch, acc)
        else:
            cost = bench.cost(arch, cost_name)
            search.observe(arch, reward_fn(acc, cost))
            if reward_fn.within_budget(cost) and acc > feasible_acc:
                feasible_acc, feasible_arch = acc, arch
        queried.append(str(arch))
        if acc > best_acc:
            best_acc, best_arch = acc, arch
        trajectory.append(float(best_acc))
    wall = time.perf_counter() - t0
    result = {
        "best_arch": str(best_arch),
        "best_accuracy": float(best_acc),
        "best_rank": bench.rank(best_acc),
        "trajectory": trajectory,
        "queries": len(trajectory),
        "queried_archs": queried,
        "samples": int(search.stats["samples"]),
        "strategy": strategy,
        "seed": int(seed),
        "budget": int(budget),
        "benchmark": benchmark,
        "accuracy_units": "percent (mean_acc)",
        "strategy_kwargs": kwargs,
        "wall_time_s": wall,
    }
    if reward_fn is not None:
        result["cost_reward"] = cost_config
        result["best_feasible_arch"] = None if feasible_arch is None else str(feasible_arch)
        result["best_feasible_accuracy"] = None if feasible_arch is None else float(feasible_acc)
        result["feasible_rank"] = (None if feasible_arch is None
                                   else bench.rank_within_budget(feasible_acc, cost_name, reward_fn.target))
    if strategy == "controller":
        # Medians: robust to the one-off TF tracing of a fresh controller and to CPU contention.
        result["ms_per_sample"] = 1000.0 * float(np.median(search.sample_times))
        result["ms_per_update"] = 1000.0 * float(np.median(search.update_times)) if search.update_times else None
        result["reinforce_updates"] = int(search.stats["reinforce_updates"])
    return result


def _cost_reward(bench: NASBenchMacro, config: Mapping[str, Any] | None):
    """`(CostAwareReward or None, cost name, resolved config)` of a `cost_reward` argument."""
    if config is None:
        return None, None, None
    from tfmeta.nas.cost import CostAwareReward

    config = dict(config)
    unknown = set(config) - {"cost", "target", "weight", "hard", "over_budget_weight"}
    if unknown:
        raise ValueError(f"`cost_reward` has unknown keys {sorted(unknown)}; expected cost, target, weight, hard.")
    cost = config.pop("cost", "flops")
    target = config.pop("target", "median")
    if target == "median":
        target = bench.median_cost(cost)
    bench.cost(bench.space.decode([0] * len(bench.space)), cost)  # validates the cost name
    reward = CostAwareReward(target=target, **config)
    return reward, cost, {"cost": cost, **reward.get_config()}


def summarize_runs(runs: list[dict]) -> dict:
    """Statistics of `run_tabular_search` results of one strategy over seeds.

    `top10_rate`, `top1_rate`, `median_best_rank`, `mean_best_accuracy` (percent),
    `best_ranks`, `mean_trajectory` (mean best-so-far accuracy after each query),
    `mean_samples_per_run`; for the controller `ms_per_sample`, `ms_per_update`; with a cost
    reward `feasible_top10_rate` (a top-10 architecture within the budget found) and
    `median_feasible_rank`.
    """
    ranks = np.array([r["best_rank"] for r in runs])
    width = min(len(r["trajectory"]) for r in runs)
    trajs = np.array([r["trajectory"][:width] for r in runs])
    entry = {
        "top10_rate": float(np.mean(ranks <= 10)),
        "top1_rate": float(np.mean(ranks <= 1)),
        "median_best_rank": float(np.median(ranks)),
        "mean_best_accuracy": float(np.mean([r["best_accuracy"] for r in runs])),
        "best_ranks": ranks.tolist(),
        "mean_trajectory": trajs.mean(axis=0).tolist(),
        "mean_samples_per_run": float(np.mean([r["samples"] for r in runs])),
    }
    if runs[0]["strategy"] == "controller":
        entry["ms_per_sample"] = float(np.median([r["ms_per_sample"] for r in runs]))
        entry["ms_per_update"] = float(np.median([r["ms_per_update"] for r in runs]))
    if "feasible_rank" in runs[0]:
        feasible = np.array([np.inf if r["feasible_rank"] is None else r["feasible_rank"] for r in runs])
        entry["feasible_top10_rate"] = float(np.mean(feasible <= 10))
        entry["median_feasible_rank"] = float(np.median(feasible))
        entry["feasible_ranks"] = [None if not np.isfinite(f) else int(f) for f in feasible]
    return entry


def compare_strategies(data: str, seeds: int, budget: int, strategies=("controller", "evolution", "random"),
            overrides: dict | None = None, seed_offset: int = 0, log=None,
            cost_reward: Mapping[str, Any] | None = None) -> dict:
    """Runs every strategy for `seeds` seeds (`seed_offset ...`) of `budget` queries each.

    `strategies` holds names, or `label=name` entries to run one strategy under several
    settings (e.g. `"controller_tuned=controller"` with `overrides["controller_tuned"]`).

    Returns:
        `{"config": {...}, "strategies": {label: {"settings", "wall_time_s", and the
        statistics of `summarize_runs`}}}`.
    """
    bench = load_benchmark("nasbench-macro", data)
    report = {"config": {"benchmark": "nasbench-macro", "data": data, "seeds": seeds, "budget": budget,
                         "architectures": len(bench), "rank_by": "mean_acc", "accuracy_units": "percent",
                         "top10_threshold": bench.top_k_threshold(10)},
              "strategies": {}}
    if cost_reward is not None:
        report["config"]["cost_reward"] = _cost_reward(bench, cost_reward)[2]
    for item in strategies:
        label, _, name = item.partition("=")
        name = name or label
        kwargs = {**TABULAR_DEFAULTS[name], **(overrides or {}).get(label, {})}
        t0 = time.perf_counter()
        runs = [run_tabular_search("nasbench-macro", data, name, budget, seed_offset + s, kwargs, cost_reward)
                for s in range(seeds)]
        entry = {"strategy": name, "settings": kwargs, **summarize_runs(runs), "wall_time_s": time.perf_counter() - t0}
        report["strategies"][label] = entry
        if log:
            extra = f", feasible top10 {entry['feasible_top10_rate']:.2f}" if cost_reward is not None else ""
            log(f"{label}: top10 {entry['top10_rate']:.2f}, median rank {entry['median_best_rank']}{extra}, "
                f"{entry['wall_time_s']:.1f}s")
    return report
