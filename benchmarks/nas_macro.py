"""NAS-Bench-Macro: controller RNN vs regularized evolution vs random search, side by side.

Each strategy runs `--seeds` independent searches of `--budget` queries (a query = one
distinct architecture looked up in the table; strategies never re-query). Architectures are
ranked by `mean_acc` over all 6,561 (rank 1 = best). Prints JSON:

    {"config": {...}, "strategies": {"random": {"top10_rate", "median_best_rank",
      "mean_best_accuracy", "mean_trajectory", "ms_per_sample", "ms_per_update", ...}, ...}}

Usage:
    python benchmarks/nas_macro.py --data ../shared/data/nasbench_macro/nas-bench-macro_cifar10.json \
        --seeds 50 --budget 100 [--out recipe_outputs/nas_macro.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)
from tfmeta.nas.benchmarks import compare_strategies

DEFAULT_DATA = str(Path(os.environ.get("TFMETA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
                   / "nasbench_macro" / "nas-bench-macro_cifar10.json")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seed-offset", type=int, default=0, help="first seed (seeds are offset .. offset+seeds-1)")
    p.add_argument("--strategies", default="controller,evolution,random")
    p.add_argument("--controller", default="{}", help="JSON overrides of the controller settings")
    p.add_argument("--evolution", default="{}", help="JSON overrides of the evolution settings")
    p.add_argument("--out", default=None, help="also write the JSON report here")
    args = p.parse_args(argv)
    overrides = {"controller": json.loads(args.controller), "evolution": json.loads(args.evolution)}
    report = compare_strategies(args.data, args.seeds, args.budget, tuple(args.strategies.split(",")), overrides,
                                seed_offset=args.seed_offset,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    print_report(report, args.out)
    return report


def print_report(report: dict, out: str | None = None, parts: tuple = ()) -> None:
    """Prints a `compare_strategies` report (or the reports under the keys `parts`) as JSON,
    trajectories rounded, and also writes it to `out` when given."""
    slim = json.loads(json.dumps(report))
    for part in [slim[p] for p in parts] or [slim]:
        for entry in part["strategies"].values():
            entry["mean_trajectory"] = [round(v, 3) for v in entry["mean_trajectory"]]
    text = json.dumps(slim, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
