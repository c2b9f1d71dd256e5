"""A long AutoModel search stays healthy: resident memory per trial over a 30-trial table search.

Each trial builds, trains and discards a model; if graphs or models were kept, memory would grow
from trial to trial. This runs `--trials` trials (controller strategy) on a generated
mixed-type table, records the process's resident memory after every trial (a search callback)
and prints JSON: the memory after each trial, the growth from the first trial to the last, and
the failed trials.

Usage:

    python benchmarks/automodel_long_search.py                 # 30 trials x 3 epochs, 5,000 rows
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: TensorFlow's environment defaults)

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from automodel_streaming import write_csv  # noqa: E402  (the same generated table)


def resident_mib() -> float:
    """This process's resident memory now (Linux: /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class MemoryPerTrial:
    """A search callback recording resident memory after each trial."""

    def __init__(self):
        self.rows = []

    def on_trial_end(self, search, record):
        self.rows.append({"trial": record["trial_id"], "status": record["status"], "rss_mib": resident_mib(),
                          "seconds": record["seconds"]})


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args(argv)
    from tfmeta.automodel import raw_data
    from tfmeta.nas import search as search_module

    memory = MemoryPerTrial()
    original = search_module.ArchitectureSearch.__init__

    def with_memory(self, *a, **k):  # the AutoModel's search gets one more callback
        original(self, *a, **k)
        self.callbacks.append(memory)

    search_module.ArchitectureSearch.__init__ = with_memory
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/table.csv"
        write_csv(path, args.rows)
        frame = pd.read_csv(path)
        before = resident_mib()
        start = time.time()
        am = tfmeta.AutoModel(task="classification", max_trials=args.trials, epochs=args.epochs, seed=0, verbose=0,
                              directory=folder, project_name="long", refit=False)
        am.fit(frame, y="label")
        elapsed = time.time() - start
    del raw_data
    rss = [row["rss_mib"] for row in memory.rows]
    settled = rss[min(3, len(rss) - 1)]
    result = {
        "trials": len(memory.rows), "epochs": args.epochs, "rows": args.rows, "wall_time_s": elapsed,
        "rss_before_fit_mib": before, "rss_after_first_trial_mib": rss[0], "rss_after_last_trial_mib": rss[-1],
        "growth_first_to_last_mib": rss[-1] - rss[0],
        "growth_per_trial_after_the_fourth_mib": (rss[-1] - settled) / max(1, len(rss) - 1 - min(3, len(rss) - 1)),
        "failed_trials": [r for r in am.leaderboard() if r["status"] == "failed"],
        "per_trial": memory.rows,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
