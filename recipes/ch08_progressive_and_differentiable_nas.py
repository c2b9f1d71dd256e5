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
3. `darts`: differentiable search (DARTS) of the 3-node ENAS cell on scikit-learn's digits,
   against the controller's best child found in the same wall time, both cells then retrained
   deeper (`benchmarks/nas_darts_digits.py`). `ch08_darts_weights.png` shows the mean softmax
   weight of each operation above or below uniform: where DARTS puts its mass, and whether
   identity takes over.
4. `transfer`: search small, transfer deep. The cell DARTS derived on 8x8 digits, stacked
   deeper on Omniglot character classification (28x28, every background character a class),
   against a random cell and conv4 with the same training (`benchmarks/nas_transfer_omniglot.py`).
   `ch08_transfer.png` shows the three test accuracies.

Usage:
    python recipes/ch08_progressive_and_differentiable_nas.py [--quick] [--data PATH]
        [--seeds 50] [--budget 100] [--front-seeds 10] [--sections macro,flops,darts,transfer]
`--quick` (CI): 3 seeds x 40 queries, 2 reward weights, 2 DARTS epochs (no
controller beside it), 1 transfer epoch.
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # the DARTS and transfer experiments are the benchmarks' own code
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


# -- 3. DARTS on digits -------------------------------------------------------------------------
def section_darts(args, out: Path) -> dict:
    """DARTS against the controller at DARTS's wall time; the mean weight of each operation."""
    import nas_darts_digits

    quick = ["--darts-epochs", "2", "--final-epochs", "3", "--retrain-seeds", "1", "--no-controller"] if args.quick else []
    result = nas_darts_digits.main(quick)
    plt, fig, ax = _axes((7, 3.5))
    for offset, (kind, weights) in zip((-0.2, 0.2), result["darts"]["mean_op_weight"].items()):
        uniform = 1.0 / len(weights)
        ax.bar(np.arange(len(weights)) + offset, [w - uniform for w in weights.values()], width=0.4,
               label=f"{kind} cell")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(weights)), list(weights), rotation=30, ha="right")
    ax.set_ylabel("mean softmax weight - uniform")
    ax.set_title("DARTS on digits: where the architecture weights go")
    ax.legend()
    _save(plt, fig, out / "ch08_darts_weights.png")
    args.darts_arch_json = result["darts"]["arch_json"]
    for name in ("darts", "controller"):
        if name in result:
            print(f"{name}: search {result[name]['search_wall_time_s']:.0f} s, retrained test accuracy "
                  f"{result[name]['test_accuracy']:.4f}", flush=True)
    return result


# -- 4. search small, transfer deep ---------------------------------------------------------------
def section_transfer(args, out: Path) -> dict:
    """The cell derived on digits (or a short controller search's) stacked deeper on Omniglot."""
    import nas_transfer_omniglot

    found = ["--arch", args.darts_arch_json] if getattr(args, "darts_arch_json", None) else ["--search-time", "60"]
    quick = ["--epochs", "1", "--cells", "1", "--filters", "8", "--seeds", "1", "--batch-size", "64"] if args.quick else []
    result = nas_transfer_omniglot.main(found + quick)
    omniglot = result["omniglot"]
    names = ["searched_cell", "random_cell", "conv4"]
    plt, fig, ax = _axes((5, 3.5))
    ax.bar(names, [omniglot[n]["test_accuracy"] for n in names], color=["C0", "C7", "C1"])
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Omniglot, {omniglot['classes']} characters, same training")
    _save(plt, fig, out / "ch08_transfer.png")
    print("  ".join(f"{n} {omniglot[n]['test_accuracy']:.4f}" for n in names), flush=True)
    return result


SECTIONS = {"macro": section_macro, "flops": section_flops, "darts": section_darts, "transfer": section_transfer}


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
