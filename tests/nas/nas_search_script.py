"""Subprocess entry for the resume and distributed tests: a tabular NAS-Bench-Macro search.

Usage: python nas_search_script.py DATA DIR PROJECT STRATEGY MAX_TRIALS [--kill-after N] [--sleep S]
Prints one line `RAN <trial-architecture> <tuner id>` per evaluated architecture.
"""

import argparse
import json
import os
import sys
import time

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)
from tfmeta.nas.benchmarks import load_benchmark
from tfmeta.nas.search import ArchitectureSearch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("directory")
    p.add_argument("project")
    p.add_argument("strategy")
    p.add_argument("max_trials", type=int)
    p.add_argument("--kill-after", type=int, default=None, help="hard exit while evaluating trial N+1")
    p.add_argument("--sleep", type=float, default=0.0)
    args = p.parse_args()
    bench = load_benchmark("nasbench-macro", args.data)
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "local")
    count = {"n": 0}

    def evaluate(arch):
        if args.kill_after is not None and count["n"] >= args.kill_after:
            os._exit(17)  # killed mid-trial: no cleanup, no oracle update
        count["n"] += 1
        time.sleep(args.sleep)
        print(f"RAN {arch} {tuner_id}", flush=True)
        return bench.accuracy(arch)

    kwargs = {"units": 16, "learning_rate": 0.01} if args.strategy == "controller" else {}
    search = ArchitectureSearch(
        bench.space, evaluate=evaluate, strategy=args.strategy, objective="accuracy",
        max_trials=args.max_trials, directory=args.directory, project_name=args.project,
        overwrite=False, seed=0, strategy_kwargs=kwargs,
    )
    search.search(verbose=0)
    if tuner_id in ("chief", "local"):
        strategy = search.oracle.strategy
        summary = {
            "trials": len(search.oracle.trials),
            "completed": len(search.completed()),
            "updates": strategy.stats["updates"],
            "history_archs": [str(bench.space.decode(h["indices"])) for h in strategy.history],
        }
        if args.strategy == "controller":
            summary["controller_updates"] = strategy.controller.num_updates
            summary["baseline"] = strategy.controller.baseline
        print("SUMMARY " + json.dumps(summary), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
