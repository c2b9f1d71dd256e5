"""NAS-Bench-Macro: every search strategy side by side, unconstrained and under a FLOPs budget.

Strategies: random, regularized evolution, the controller RNN (its tabular defaults and its
previous ones, `--controller-previous`), TPE, the predictor-guided strategy and PNAS. Each runs
`--seeds` searches of `--budget` queries (a query = one distinct architecture looked up);
architectures are ranked by `mean_acc` among all 6,561 (rank 1 = best).

The constrained part searches with MnasNet's hard-budget reward, the budget being the median
FLOPs of the table (proposals over budget are rejected before they are queried), and reports
how often the best architecture found within the budget is one of the 10 most accurate
architectures within the budget (`feasible_top10_rate`). Prints JSON:

    {"unconstrained": {"config": {...}, "strategies": {"pnas": {"top10_rate",
      "median_best_rank", "mean_trajectory", ...}, ...}},
     "flops_budget": {"config": {...}, "strategies": {"pnas": {"feasible_top10_rate",
      "median_feasible_rank", ...}, ...}}}

Usage:
    python benchmarks/nas_strategies.py --data ../shared/data/nasbench_macro/nas-bench-macro_cifar10.json \
        --seeds 50 --budget 100 [--out recipe_outputs/nas_strategies.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)
from tfmeta.nas.benchmarks import compare_strategies

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nas_macro import DEFAULT_DATA, print_report  # noqa: E402

STRATEGIES = ("random", "evolution", "controller", "controller_previous=controller", "tpe", "predictor", "pnas")
# Under the budget, proposals over it are rejected before a query; the controller gets no
# reward from a rejected sample, so it is left out of the constrained comparison by default.
FLOPS_STRATEGIES = ("random", "evolution", "tpe", "predictor", "pnas")
#: The controller's previous tabular settings (ENAS's tanh constant 1.1), for comparison.
CONTROLLER_PREVIOUS = {"learning_rate": 0.01, "baseline_decay": 0.9, "tanh_constant": 1.1}
FLOPS_BUDGET = {"cost": "flops", "target": "median", "hard": True}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seed-offset", type=int, default=0)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--controller-previous", default=json.dumps(CONTROLLER_PREVIOUS),
                   help="JSON settings of the `controller_previous` entry")
    p.add_argument("--flops-strategies", default=",".join(FLOPS_STRATEGIES),
                   help="strategies of the FLOPs-constrained runs ('' skips them)")
    p.add_argument("--out", default=None, help="also write the JSON report here")
    args = p.parse_args(argv)
    strategies = tuple(args.strategies.split(","))
    overrides = {"controller_previous": json.loads(args.controller_previous)}
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    report = {"unconstrained": compare_strategies(args.data, args.seeds, args.budget, strategies, overrides,
                                                  seed_offset=args.seed_offset, log=log)}
    if args.flops_strategies:
        log("-- FLOPs budget: the median FLOPs of the table")
        report["flops_budget"] = compare_strategies(args.data, args.seeds, args.budget,
                                                    tuple(args.flops_strategies.split(",")), overrides,
                                                    seed_offset=args.seed_offset, log=log, cost_reward=FLOPS_BUDGET)
    print_report(report, args.out, parts=tuple(report))
    return report


if __name__ == "__main__":
    main()
