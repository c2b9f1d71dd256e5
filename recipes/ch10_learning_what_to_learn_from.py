"""Chapter 10 recipe: learning what to learn from: example weights and augmentation, learned.

1. Learned example weights (Ren et al. 2018, `tfmeta.ReweightedModel`) on scikit-learn's
   digits with 40% symmetric label noise and with a 10:1 class imbalance, a clean set of 10
   examples per class set aside: the same MLP trained on the corrupted set plainly, on the
   clean set alone, and reweighted by the clean set's meta-gradient, scored on the test set.
   `recipe_outputs/ch10_reweighting.png`: the test accuracies, and the weights the trained
   reweighted model gives the training examples whose label the noise changed against the
   others (mislabelled examples should get little or nothing).
2. Learned augmentation (`tfmeta.augmentation_search.PolicySearch`): AutoAugment-style
   policies over Keras's preprocessing layers, searched by regularised evolution with a small
   child network's validation accuracy as reward; the found policy then trains a larger
   network, against no augmentation, tfmeta's hand-set distortions and Keras's RandAugment.
   `recipe_outputs/ch10_augmentation.png`: each trial's reward, and the final test accuracies.

Both sections run the benchmark code (`benchmarks/reweighting_digits.py`,
`benchmarks/augmentation_policy_digits.py`), so the recipe's figures are the benchmarks'.

Usage:
    python recipes/ch10_learning_what_to_learn_from.py [--quick] [--out-dir recipe_outputs]
`--quick` (CI): one seed, short trainings, 4 policies.
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # the experiments are the benchmarks' own code

import augmentation_policy_digits as augmentation_bench  # noqa: E402
import reweighting_digits as reweighting_bench  # noqa: E402


def weights_over_training(epochs: int) -> dict:
    """The mean learned weight of the mislabelled and of the correctly labelled training examples
    (40% noise, seed 0) after each epoch of the reweighted model's training (1 = the batch mean)."""
    data = reweighting_bench.corrupted_digits("noise40", seed=0)
    x, y = data["train"]
    flipped = data["flipped"]
    model = reweighting_bench.train("reweighted", data, seed=0, epochs=1)
    curves = {"mislabelled": [], "correct": []}
    for epoch in range(epochs):
        if epoch:
            model.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=True)
        weights = np.concatenate([model.example_weights(x[i:i + 64], y[i:i + 64]).numpy() * len(x[i:i + 64])
                                  for i in range(0, len(x), 64)])
        curves["mislabelled"].append(float(weights[flipped].mean()))
        curves["correct"].append(float(weights[~flipped].mean()))
    return curves


def reweighting_section(seeds: int, epochs: int) -> dict:
    """Test accuracies per setting and method, and the learned weights of the noisy set."""
    report = {setting: reweighting_bench.compare(setting, seeds, epochs) for setting in reweighting_bench.SETTINGS}
    report["weights"] = weights_over_training(epochs)
    for setting in reweighting_bench.SETTINGS:
        print(f"[reweighting] {setting}: " + "  ".join(f"{m}={v['mean']:.3f}" for m, v in report[setting].items()))
    weights = report["weights"]
    print(f"[reweighting] mean weight over training of mislabelled examples {np.mean(weights['mislabelled']):.3f}, "
          f"of correct ones {np.mean(weights['correct']):.3f} (1 = the batch mean)")
    return report


def augmentation_section(trials: int, child_epochs: int, epochs: int, seeds: int) -> dict:
    splits = augmentation_bench.digits(0)
    search = augmentation_bench.search_policy(splits, trials, child_epochs, "evolution", seed=0)
    policy = search.best_policy()
    report = {"found_policy": policy.describe(), "policy_config": policy.get_config()["sub_policies"],
              "trials": [r["score"] for r in sorted(search.results(), key=lambda r: int(r["trial"]))]}
    for name in augmentation_bench.AUGMENTATIONS:
        runs = [augmentation_bench.final_accuracy(
            splits, augmentation_bench.augmentation_layer(name, policy.get_config(), seed), epochs, seed)
            for seed in range(seeds)]
        report[name] = {"mean": float(np.mean(runs)), "runs": runs}
    print(f"[augmentation] found {report['found_policy']}")
    print("[augmentation] test accuracy: " + "  ".join(f"{n}={report[n]['mean']:.3f}"
                                                       for n in augmentation_bench.AUGMENTATIONS))
    return report


def _bars(ax, groups: dict, title: str) -> None:
    names = list(next(iter(groups.values())))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(np.arange(len(groups)) + i * width, [groups[g][name]["mean"] for g in groups], width, label=name)
    ax.set_xticks(np.arange(len(groups)) + width * (len(names) - 1) / 2, list(groups))
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")


def plot(reweighting: dict, augmentation: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _bars(left, {s: reweighting[s] for s in reweighting_bench.SETTINGS}, "digits, corrupted training sets")
    weights = reweighting["weights"]
    epochs = range(1, len(weights["correct"]) + 1)
    right.plot(epochs, weights["correct"], "o-", label="correct label")
    right.plot(epochs, weights["mislabelled"], "o-", label="mislabelled")
    right.axhline(1.0, color="gray", ls=":", lw=1)
    right.set_xlabel("epoch")
    right.set_ylabel("mean learned weight (1 = the batch mean)")
    right.set_title("40% label noise: the learned weights")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "ch10_reweighting.png", dpi=100)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    trials = augmentation["trials"]
    left.plot(range(1, len(trials) + 1), trials, "o-", label="policy trial")
    left.plot(range(1, len(trials) + 1), np.maximum.accumulate(trials), "--", label="best so far")
    left.axhline(trials[0], color="gray", ls=":", label="no augmentation (trial 1)")
    left.set_xlabel("trial")
    left.set_ylabel("child validation accuracy")
    left.set_title("policy search (evolution)")
    left.legend(fontsize=8)
    _bars(right, {"digits": {n: augmentation[n] for n in augmentation_bench.AUGMENTATIONS}}, "larger network, same budget")
    fig.tight_layout()
    fig.savefig(out_dir / "ch10_augmentation.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="CI: one seed, short trainings, 4 policies")
    p.add_argument("--out-dir", default="recipe_outputs")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40, help="reweighting: training epochs")
    p.add_argument("--trials", type=int, default=12, help="augmentation: policies tried")
    p.add_argument("--child-epochs", type=int, default=8)
    p.add_argument("--final-epochs", type=int, default=30)
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.trials, args.child_epochs, args.final_epochs = 1, 8, 4, 2, 4
    start = time.time()
    reweighting = reweighting_section(args.seeds, args.epochs)
    augmentation = augmentation_section(args.trials, args.child_epochs, args.final_epochs, args.seeds)
    out_dir = Path(args.out_dir)
    plot(reweighting, augmentation, out_dir)
    summary = {"reweighting": reweighting, "augmentation": augmentation, "quick": args.quick,
               "seconds": round(time.time() - start, 1)}
    (out_dir / "ch10_summary.json").write_text(json.dumps(summary))
    print(f"plots and summary in {out_dir}/  ({summary['seconds']:.0f}s)")
    return summary


if __name__ == "__main__":
    main()
