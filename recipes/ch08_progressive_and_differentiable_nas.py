"""Chapter 8 recipe: progressive and predictor-guided architecture search, and its cost.

Each section is one function `section_<name>(args, out) -> dict` listed in `SECTIONS`; `main`
runs the ones chosen with `--sections` and writes their results to `ch08_summary.json`.

1. `macro`: on NAS-Bench-Macro (6,561 architectures trained on CIFAR-10, looked up in a
   table), PNAS (layer by layer, a predictor ranking the expansions), the predictor-guided
   strategy, TPE, the controller RNN, regularized evolution and random search, each for
   `--budget` queries over `--seeds` seeds. Prints the top-10 hit rate and the median best
   rank; `ch08_best_rank.png` plots the best rank found (1 = the best of the table) against
   queries, averaged over seeds.
2. `flops`: the accuracy/FLOPs trade-off. The table's Pareto front against what the
   predictor-guided search finds with MnasNet's soft reward `acc * (flops / T) ** w` for
   several `w`, and the hard budget (at most the median FLOPs): how often the best
   architecture within the budget is found. `ch08_flops_front.png` shows all three.

Usage:
    python recipes/ch08_progressive_and_differentiable_nas.py [--quick] [--data PATH]
        [--seeds 50] [--budget 100] [--front-seeds 10] [--sections macro,flops]
`--quick` (CI): 3 seeds x 40 queries, 2 reward weights.
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (Path(os.environ.get("TFMETA_DATA_DIR", REPO.parent / "shared" / "data")) / "nasbench_macro"
                / "nas-bench-macro_cifar10.json")
MACRO_STRATEGIES = ("pnas", "predictor", "tpe", "controller", "evolution", "random")


def _axes(figsize=(6, 4)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=figsize)


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- 1. strategies on NAS-Bench-Macro -----------------------------------------------------------
def section_macro(args, out: Path) -> dict:
    """Every strategy for `budget` queries x `seeds` seeds: top-10 rate, best rank against queries."""
    from tfmeta.nas.benchmarks import TABULAR_DEFAULTS, load_benchmark, run_tabular_search, summarize_runs

    bench = load_benchmark("nasbench-macro", args.data)
    results = {}
    for name in MACRO_STRATEGIES:
        t0 = time.perf_counter()
        runs = [run_tabular_search("nasbench-macro", args.data, name, args.budget, seed)
                for seed in range(args.seeds)]
        ranks = np.array([[bench.rank(acc) for acc in r["trajectory"]] for r in runs])
        entry = summarize_runs(runs)
        results[name] = {"settings": TABULAR_DEFAULTS[name], "mean_best_rank_by_query": ranks.mean(axis=0).tolist(),
                         "wall_time_s": time.perf_counter() - t0,
                         **{k: entry[k] for k in ("top10_rate", "median_best_rank", "mean_best_accuracy", "best_ranks")}}
        print(f"  {name:10s} top-10 in {100 * entry['top10_rate']:5.1f}% of runs, median best rank "
              f"{entry['median_best_rank']:6.1f} ({results[name]['wall_time_s']:.1f}s)", flush=True)
    plt, fig, ax = _axes()
    for name, entry in results.items():
        curve = entry["mean_best_rank_by_query"]
        ax.plot(range(1, len(curve) + 1), curve, label=f"{name} (top-10 in {100 * entry['top10_rate']:.0f}%)")
    ax.axhline(10, color="gray", ls=":", lw=1, label="rank 10")
    ax.set_yscale("log")
    ax.set_xlabel("queries (distinct architectures)")
    ax.set_ylabel("best rank found (mean over seeds, of 6,561)")
    ax.set_title(f"NAS-Bench-Macro, {args.seeds} seeds")
    ax.legend(fontsize=7)
    _save(plt, fig, out / "ch08_best_rank.png")
    return {"strategies": results, "plot": str(out / "ch08_best_rank.png")}


# -- 2. accuracy against FLOPs --------------------------------------------------------------------
def pareto_front(flops: np.ndarray, accs: np.ndarray) -> np.ndarray:
    """Indices of the architectures no cheaper-or-equal architecture beats, by FLOPs."""
    front, best = [], -np.inf
    for i in np.lexsort((-accs, flops)):
        if accs[i] > best:
            front.append(i)
            best = accs[i]
    return np.array(front)


def section_flops(args, out: Path) -> dict:
    """The table's accuracy/FLOPs front, the soft-reward searches and the hard-budget search."""
    from tfmeta.nas.benchmarks import load_benchmark, run_tabular_search
    from tfmeta.nas.cost import CostAwareReward

    bench = load_benchmark("nasbench-macro", args.data)
    keys = list(bench.table)
    flops = np.array([bench.table[k]["flops"] for k in keys], dtype=float)
    accs = np.array([bench.table[k]["mean_acc"] for k in keys])
    front = pareto_front(flops, accs)
    target = bench.median_cost("flops")
    weights = (0.0, -0.3) if args.quick else (0.0, -0.07, -0.15, -0.3, -0.6)
    soft = []
    for w in weights:
        reward = CostAwareReward(target=target, weight=w)
        for seed in range(args.front_seeds):
            r = run_tabular_search("nasbench-macro", args.data, "predictor", args.budget, seed,
                                   cost_reward={"cost": "flops", "target": target, "weight": w})
            best = max(r["queried_archs"], key=lambda k: reward(bench.table[k]["mean_acc"], bench.table[k]["flops"]))
            soft.append({"weight": w, "seed": seed, "arch": best, "flops": bench.table[best]["flops"],
                         "accuracy": bench.table[best]["mean_acc"],
                         "on_front": best in {keys[i] for i in front}})
    hard = [run_tabular_search("nasbench-macro", args.data, "pnas", args.budget, seed,
                               cost_reward={"cost": "flops", "target": "median", "hard": True})
            for seed in range(args.seeds)]
    hard_ranks = [r["feasible_rank"] for r in hard]
    hard_rate = float(np.mean([r is not None and r <= 10 for r in hard_ranks]))
    print(f"  soft reward: {sum(s['on_front'] for s in soft)} of {len(soft)} picks on the table's front; "
          f"hard budget ({target:.3g} FLOPs): a top-10 architecture within it in {100 * hard_rate:.0f}% of runs")

    plt, fig, ax = _axes()
    ax.scatter(flops / 1e6, accs, s=2, c="lightgray", label="all architectures")
    ax.plot(flops[front] / 1e6, accs[front], "k-", lw=1, label="Pareto front of the table")
    for w in weights:
        picks = [s for s in soft if s["weight"] == w]
        ax.scatter([p["flops"] / 1e6 for p in picks], [p["accuracy"] for p in picks], s=18, label=f"w = {w}")
    hard_best = [bench.table[r["best_feasible_arch"]] for r in hard if r["best_feasible_arch"]]
    ax.scatter([h["flops"] / 1e6 for h in hard_best], [h["mean_acc"] for h in hard_best], marker="x", s=30,
               c="red", label="hard budget (PNAS)")
    ax.axvline(target / 1e6, color="red", ls=":", lw=1)
    ax.set_ylim(min(np.percentile(accs, 5), *(s["accuracy"] for s in soft)) - 0.2, accs.max() + 0.2)
    ax.set_xlabel("MFLOPs")
    ax.set_ylabel("mean test accuracy (%)")
    ax.set_title("Accuracy against FLOPs: the predictor with acc * (FLOPs / T)^w")
    ax.legend(fontsize=7, loc="lower right")
    _save(plt, fig, out / "ch08_flops_front.png")
    return {"target_flops": target, "front_size": int(len(front)), "soft": soft,
            "hard_budget": {"feasible_ranks": hard_ranks, "feasible_top10_rate": hard_rate},
            "plot": str(out / "ch08_flops_front.png")}


SECTIONS = {"macro": section_macro, "flops": section_flops}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="nas-bench-macro_cifar10.json")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--front-seeds", type=int, default=None, help="searches per reward weight (flops section)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {list(SECTIONS)}")
    p.add_argument("--out-dir", default=str(REPO / "recipe_outputs"))
    args = p.parse_args(argv)
    args.seeds = args.seeds or (3 if args.quick else 50)
    args.budget = args.budget or (40 if args.quick else 100)
    args.front_seeds = args.front_seeds or (args.seeds if args.quick else 10)
    chosen = [s for s in args.sections.split(",") if s]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        p.error(f"--sections: unknown {unknown}; choose from {list(SECTIONS)}")
    out = Path(args.out_dir)
    t0 = time.perf_counter()
    summary = {"config": {"seeds": args.seeds, "budget": args.budget, "quick": args.quick}}
    for name in chosen:
        print(f"== {name}", flush=True)
        summary[name] = SECTIONS[name](args, out)
    summary["wall_time_s"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    (out / "ch08_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({"sections": chosen, "wall_time_s": round(summary["wall_time_s"], 1)}))
    return summary


if __name__ == "__main__":
    main()
