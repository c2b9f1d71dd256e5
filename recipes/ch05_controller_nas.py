"""Chapter 5 recipe: neural architecture search with a controller RNN.

1. NAS-Bench-Macro (tabular, 6,561 architectures trained on CIFAR-10): the controller RNN
   (REINFORCE), regularized evolution and random search, each for `--budget` queries over
   `--seeds` seeds; prints the top-10 hit rate and median best rank, and saves the mean
   best-so-far accuracy against queries as `recipe_outputs/ch05_nas_macro.png`.
2. A real search on scikit-learn digits with `tfmeta.AutoModel`: the controller over the micro
   cell space, each child trained alone for a few epochs on 60% of the images and scored on
   20%; the best cell is stacked deeper (NASNet's "search small, stack deep"), retrained on
   both, tested on the last 20% and exported as a SavedModel (`serving_default`: x ->
   probabilities, classes).
3. The same search with ENAS weight sharing (`weight_sharing=True`): every child is a path
   through one shared supernet, trained with single-path uniform sampling (each batch trains
   a random child, `train_paths="uniform"`), so a child costs `--child-steps` batches instead
   of its own training; `derive()` picks the child that is retrained deeper and exported.
   `recipe_outputs/ch05_digits_search.png` plots each child's validation accuracy against
   its place in the two searches: trained alone, and with the shared weights of the moment
   (that curve climbs as the supernet learns, not because the controller finds better cells).

Usage:
    python recipes/ch05_controller_nas.py [--quick] [--data PATH] [--seeds 50] [--budget 100]
        [--digits-trials 10] [--enas-trials 150] [--child-steps 20]
`--quick` (CI): 3 seeds x 40 queries, 2 tiny children trained alone, 3 tiny children with
sharing, 2 retraining epochs.
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("TFMETA_DATA_DIR", REPO.parent / "shared" / "data")) / "nasbench_macro" / "nas-bench-macro_cifar10.json"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in report["strategies"].items():
        traj = entry["mean_trajectory"]
        ax.plot(range(1, len(traj) + 1), traj,
                label=f"{name} (top-10 in {100 * entry['top10_rate']:.0f}% of runs)")
    ax.axhline(report["config"]["top10_threshold"], color="gray", ls=":", lw=1, label="10th best architecture")
    ax.set_xlabel("queries (distinct architectures)")
    ax.set_ylabel("best mean test accuracy so far (%)")
    ax.set_title(f"NAS-Bench-Macro, mean over {report['config']['seeds']} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_digits_searches(alone: dict, shared: dict, path: Path) -> None:
    """Each child's validation accuracy against its place in the search, for both searches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for result, label in ((alone, "trained alone"), (shared, "shared weights (ENAS)")):
        scores = result["trial_scores"]
        ax.plot(range(1, len(scores) + 1), scores, "o-" if len(scores) <= 20 else "-", ms=3, lw=1,
                label=f"{label}: {result['trials']} children, {result['search_wall_time_s']:.0f} s")
    ax.set_xlabel("child (search order)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Digits cell search: each child's score")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def search_digits(args, weight_sharing: bool, export_dir: str) -> dict:
    """One AutoModel cell search on digits: children scored on a quarter of the 80% training
    pool, the pick retrained deeper on all of it, tested on the held-out 20% and exported."""
    from tfmeta.data.digits import load_digits_splits
    from tfmeta.nas.space import MicroCellSpace

    splits = load_digits_splits(test_size=0.2, seed=0, scaled=True, channel_axis=True)
    if args.quick:  # tiny cells and budgets: the code path, not the figures
        ops = ("sep_conv_3x3", "identity") if weight_sharing else None
        space = MicroCellSpace(num_nodes=2, **({"ops": ops} if ops else {}))
        budget = dict(max_trials=(args.enas_trials or 3) if weight_sharing else (args.digits_trials or 2), epochs=1,
                      filters=8, refit_cells=1, refit_filters=8, refit_epochs=2,
                      child_steps=args.child_steps or 4)
    else:
        space = MicroCellSpace(num_nodes=3)
        budget = dict(max_trials=(args.enas_trials or 150) if weight_sharing else (args.digits_trials or 10),
                      epochs=3, filters=16, refit_cells=2, refit_filters=24, refit_epochs=30,
                      child_steps=args.child_steps or 20)
    name = ("ch05_enas" if weight_sharing else "ch05_digits") + ("_quick" if args.quick else "")
    am = tfmeta.AutoModel(task="classification", space=space, strategy="controller", learning_rate=3e-3,
                          batch_size=64, weight_sharing=weight_sharing, train_paths="uniform", ensemble=False,
                          directory=args.runs_dir, project_name=name, overwrite=True, seed=0, **budget)
    am.fit(*splits["train"], validation_split=0.25)
    in_order = sorted(am.leaderboard(), key=lambda t: int(t["trial"]))
    return {"weight_sharing": weight_sharing, "best_arch": am.best_architecture_,
            "best_val_accuracy": am.best_score_, "trials": len(in_order),
            "trial_scores": [t["score"] for t in in_order], "test_accuracy": am.score(*splits["test"]),
            "final_cells": am.refit_cells, "search_wall_time_s": am.search_time_,
            "retrain_wall_time_s": am.refit_time_, "export_path": am.export(export_dir)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Controller RNN NAS: NAS-Bench-Macro comparison and a digits search.")
    p.add_argument("--quick", action="store_true", help="CI smoke run")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="nas-bench-macro_cifar10.json")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--digits-trials", type=int, default=None, help="children trained alone (section 2)")
    p.add_argument("--enas-trials", type=int, default=None, help="children with weight sharing (section 3)")
    p.add_argument("--child-steps", type=int, default=None, help="shared-weight batches per child (section 3)")
    p.add_argument("--out-dir", default=str(REPO / "recipe_outputs"))
    p.add_argument("--runs-dir", default=str(REPO / "runs"))
    p.add_argument("--export-dir", default=str(REPO / "saved_models" / "ch05_nas_digits"))
    p.add_argument("--enas-export-dir", default=str(REPO / "saved_models" / "ch05_nas_digits_enas"))
    args = p.parse_args(argv)
    seeds = args.seeds or (3 if args.quick else 50)
    budget = args.budget or (40 if args.quick else 100)

    from tfmeta.nas.benchmarks import compare_strategies

    t0 = time.perf_counter()
    report = compare_strategies(args.data, seeds, budget)
    out = Path(args.out_dir)
    plot(report, out / "ch05_nas_macro.png")
    print(f"NAS-Bench-Macro, {budget} queries x {seeds} seeds ({time.perf_counter() - t0:.1f}s):")
    for name, e in report["strategies"].items():
        extra = f", {e['ms_per_sample']:.1f} ms/sample, {e['ms_per_update']:.1f} ms/update" if "ms_per_sample" in e else ""
        print(f"  {name:10s} top-10 found in {100 * e['top10_rate']:5.1f}% of runs, median best rank "
              f"{e['median_best_rank']:5.1f}, mean best {e['mean_best_accuracy']:.2f}%{extra}")

    digits = search_digits(args, weight_sharing=False, export_dir=args.export_dir)
    print(f"Digits search ({digits['trials']} children, {digits['search_wall_time_s']:.1f}s): best "
          f"{digits['best_arch']}\n  retrained with {digits['final_cells']} cells per stage: test accuracy {digits['test_accuracy']:.4f}, exported to "
          f"{digits['export_path']} ({digits['retrain_wall_time_s']:.1f}s)")

    enas = search_digits(args, weight_sharing=True, export_dir=args.enas_export_dir)
    scores = enas["trial_scores"]
    fifth = max(1, len(scores) // 5)
    print(f"ENAS weight sharing ({enas['trials']} children, {enas['search_wall_time_s']:.1f}s against "
          f"{digits['search_wall_time_s']:.1f}s for {digits['trials']} trained alone): shared-weight accuracy "
          f"of the first / last {fifth} children {sum(scores[:fifth]) / fifth:.3f} / {sum(scores[-fifth:]) / fifth:.3f}"
          f"\n  derived {enas['best_arch']}\n  retrained with {enas['final_cells']} cells per stage: test accuracy {enas['test_accuracy']:.4f}, "
          f"exported to {enas['export_path']} ({enas['retrain_wall_time_s']:.1f}s)")
    plot_digits_searches(digits, enas, out / "ch05_digits_search.png")

    summary = {
        "nasbench_macro": {name: {k: e[k] for k in ("top10_rate", "median_best_rank", "mean_best_accuracy")}
                           for name, e in report["strategies"].items()},
        "digits": digits,
        "digits_enas": enas,
        "plots": [str(out / "ch05_nas_macro.png"), str(out / "ch05_digits_search.png")],
        "wall_time_s": time.perf_counter() - t0,
    }
    (out / "ch05_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({"plots": summary["plots"], "wall_time_s": round(summary["wall_time_s"], 1)}))
    return summary


if __name__ == "__main__":
    main()
