"""Chapter 5 recipe: neural architecture search with a controller RNN.

1. NAS-Bench-Macro (tabular, 6,561 architectures trained on CIFAR-10): the controller RNN
   (REINFORCE), regularized evolution and random search, each for `--budget` queries over
   `--seeds` seeds; prints the top-10 hit rate and median best rank, and saves the mean
   best-so-far accuracy against queries as `recipe_outputs/ch05_nas_macro.png`.
2. A short real search on scikit-learn digits: controller over the micro cell space, each
   child trained alone for a few epochs; the best cell is stacked deeper, retrained, tested and
   exported as a SavedModel (`serving_default`: x -> probabilities, classes).
3. The same search with ENAS weight sharing (`tfmeta.nas.enas.WeightSharingSearch`): every
   child is a path through one shared supernet, trained with single-path uniform sampling
   (each batch trains a random child, `train_paths="uniform"`), so a child costs `--child-steps`
   batches instead of its own training; `derive()` picks the child to retrain and export.
   `recipe_outputs/ch05_digits_search.png` plots each child's validation accuracy against
   its place in the two searches: trained alone, and with the shared weights of the moment
   (that curve climbs as the supernet learns, not because the controller finds better cells).

Usage:
    python recipes/ch05_controller_nas.py [--quick] [--data PATH] [--seeds 50] [--budget 100]
        [--digits-trials 10] [--enas-trials 150] [--child-steps 20]
`--quick` (CI, about 2 minutes on 2 cores): 3 seeds x 40 queries, 2 tiny children trained
alone, 3 tiny children with sharing, 1-2 retraining epochs.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Controller RNN NAS: NAS-Bench-Macro comparison and a digits search.")
    p.add_argument("--quick", action="store_true", help="CI smoke run (about 2 minutes on 2 cores)")
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
    from tfmeta.nas.digits import search_digits

    t0 = time.perf_counter()
    report = compare_strategies(args.data, seeds, budget)
    out = Path(args.out_dir)
    plot(report, out / "ch05_nas_macro.png")
    print(f"NAS-Bench-Macro, {budget} queries x {seeds} seeds ({time.perf_counter() - t0:.1f}s):")
    for name, e in report["strategies"].items():
        extra = f", {e['ms_per_sample']:.1f} ms/sample, {e['ms_per_update']:.1f} ms/update" if "ms_per_sample" in e else ""
        print(f"  {name:10s} top-10 found in {100 * e['top10_rate']:5.1f}% of runs, median best rank "
              f"{e['median_best_rank']:5.1f}, mean best {e['mean_best_accuracy']:.2f}%{extra}")

    t1 = time.perf_counter()
    if args.quick:
        digits = search_digits("controller", max_trials=args.digits_trials or 2, epochs=1, final_epochs=2,
                               num_nodes=2, filters=8, final_cells=1, final_filters=8,
                               directory=args.runs_dir, project_name="ch05_digits_quick", overwrite=True,
                               export_dir=args.export_dir, seed=0)
    else:
        digits = search_digits("controller", max_trials=args.digits_trials or 10, epochs=3, final_epochs=30,
                               num_nodes=3, directory=args.runs_dir, project_name="ch05_digits", overwrite=True,
                               export_dir=args.export_dir, seed=0)
    print(f"Digits search ({digits['trials']} children, {digits['search_wall_time_s']:.1f}s): best "
          f"{digits['best_arch']}\n  retrained test accuracy {digits['test_accuracy']:.4f}, exported to "
          f"{digits['export_path']} ({time.perf_counter() - t1:.1f}s)")

    t2 = time.perf_counter()
    enas_common = dict(directory=args.runs_dir, overwrite=True, export_dir=args.enas_export_dir, seed=0,
                       weight_sharing=True, train_paths="uniform")
    if args.quick:
        enas = search_digits("controller", max_trials=args.enas_trials or 3, final_epochs=1, num_nodes=2,
                             ops=("sep_conv_3x3", "identity"), filters=8, final_cells=1, final_filters=8,
                             project_name="ch05_enas_quick", child_steps=args.child_steps or 4, **enas_common)
    else:
        enas = search_digits("controller", max_trials=args.enas_trials or 150, final_epochs=30, num_nodes=3,
                             project_name="ch05_enas", child_steps=args.child_steps or 20, **enas_common)
    scores = enas["trial_scores"]
    fifth = max(1, len(scores) // 5)
    print(f"ENAS weight sharing ({enas['trials']} children, {enas['search_wall_time_s']:.1f}s against "
          f"{digits['search_wall_time_s']:.1f}s for {digits['trials']} trained alone): shared-weight accuracy "
          f"of the first / last {fifth} children {sum(scores[:fifth]) / fifth:.3f} / {sum(scores[-fifth:]) / fifth:.3f}"
          f"\n  derived {enas['best_arch']}\n  retrained test accuracy {enas['test_accuracy']:.4f}, exported to "
          f"{enas['export_path']} ({time.perf_counter() - t2:.1f}s)")
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
