"""Zoph & Le's layer-wise space on digits: the controller RNN against random search, same trials.

Each strategy proposes `--budget` architectures of `LayerwiseSpace(num_layers=--layers)` (per
layer: filter height and width in {1, 3, 5, 7}, filters in {24, 36, 48, 64}, stride 1 or 2,
and a skip connection from every earlier layer on or off); each child trains `--epochs` on
scikit-learn's 8x8 digits (60% of the images) and is scored on the validation split (20%);
the best child, as trained in the search, is tested on the test split (20%). Every strategy
runs with seeds `--seed` .. `--seed + --seeds - 1` (`tfmeta.nas.digits_search.run_digits_search`,
the function behind `tfmeta search --space layerwise`).

Prints JSON: per strategy the mean best validation accuracy, its mean best-so-far trajectory
over the trials, the mean test accuracy of the best child, the wall time, and every run.

Usage:
    python benchmarks/nas_layerwise_digits.py [--budget 12] [--seeds 3] [--layers 4] [--epochs 3]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import sys
import time

import numpy as np

from tfmeta.nas.digits_search import run_digits_search
from tfmeta.nas.space import LayerwiseSpace


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", nargs="+", default=["controller", "random"])
    p.add_argument("--budget", type=int, default=12, help="trials per search")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3, help="training epochs of every child")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    space = LayerwiseSpace(num_layers=args.layers)
    out = {}
    for strategy in args.strategies:
        runs = []
        for seed in range(args.seed, args.seed + args.seeds):
            runs.append(run_digits_search(space, strategy, args.budget, seed=seed, epochs=args.epochs))
            print(json.dumps({k: runs[-1][k] for k in ("strategy", "seed", "best_arch", "best_val_accuracy",
                                                       "test_accuracy", "wall_time_s")}),
                  file=sys.stderr, flush=True)  # progress
        shortest = min(len(r["trajectory"]) for r in runs)  # a failed trial shortens a run
        out[strategy] = {
            "best_val_accuracy_mean": float(np.mean([r["best_val_accuracy"] for r in runs])),
            "test_accuracy_mean": float(np.mean([r["test_accuracy"] for r in runs])),
            "trajectory_mean": np.mean([r["trajectory"][:shortest] for r in runs], axis=0).round(4).tolist(),
            "wall_time_s_mean": float(np.mean([r["wall_time_s"] for r in runs])),
            "runs": runs,
        }
    result = {"space": space.get_config(), "strategies": out, "total_wall_time_s": time.perf_counter() - t0,
              "settings": vars(args)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
