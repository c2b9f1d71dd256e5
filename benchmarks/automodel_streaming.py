"""AutoModel on a CSV file larger than it should hold in memory: peak memory and rows per second.

Writes a CSV of `--rows` rows (default 1,000,000) and a dozen mixed columns (numbers with
blanks, integers, true/false strings, categories with 5 and 2,000 levels, datetimes, a
missing-heavy column), in chunks, then fits `tfmeta.AutoModel` on the file path in a fresh
process with a small budget and reports that process's peak resident memory and its
throughput. Prints JSON.

Usage:

    python benchmarks/automodel_streaming.py                      # 1,000,000 rows
    python benchmarks/automodel_streaming.py --rows 20000 --keep DIR
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: TensorFlow's environment defaults)

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

CHUNK = 100_000


def write_csv(path: str, rows: int, seed: int = 0) -> None:
    """A mixed-type table whose label depends on several columns, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    with open(path, "w") as f:
        for offset in range(0, rows, CHUNK):
            n = min(CHUNK, rows - offset)
            amount = rng.gamma(2.0, 20.0, n)
            visits = rng.poisson(3, n)
            plan = rng.choice(["basic", "plus", "pro", "team", "free"], n)
            city = rng.integers(0, 2000, n)
            when = start + pd.to_timedelta(rng.integers(0, 365 * 24 * 3600, n), unit="s")
            hour = when.hour.to_numpy()
            score = (np.log1p(amount) - 3.3) + 0.3 * (visits - 3) + np.where(plan == "pro", 1.0, 0.0) \
                + np.where((hour >= 18) | (hour < 6), 0.7, -0.3) + (city % 7 == 0) * 0.8
            frame = pd.DataFrame({
                "amount": np.where(rng.random(n) < 0.03, "", np.round(amount, 2).astype(str)),
                "visits": visits,
                "tenure_days": rng.integers(0, 3000, n),
                "discount": np.round(rng.random(n) * 0.3, 3),
                "premium": rng.choice(["true", "false"], n),
                "plan": plan,
                "city": [f"city{c}" for c in city],
                "signup": when.strftime("%Y-%m-%d %H:%M:%S"),
                "rating": np.where(rng.random(n) < 0.4, np.nan, rng.integers(1, 6, n)),
                "channel": rng.choice(["web", "app", "phone", ""], n),
                "age": np.where(rng.random(n) < 0.1, np.nan, rng.normal(40, 12, n).round()),
                "score_noise": rng.normal(0, 1, n).round(4),
                "label": np.where(score + rng.normal(0, 0.5, n) > 0, "churn", "stay"),
            })
            frame.to_csv(f, header=offset == 0, index=False)


def fit_in_this_process(path: str, max_trials: int, epochs: int, workdir: str) -> dict:
    """Fits on `path` and reports this process's peak resident memory and throughput.

    `prepare` is typing (a sample), the one statistics pass and reading the target; the
    refit's throughput counts every row of every refit epoch.
    """

    start = time.time()
    am = tfmeta.AutoModel(task="classification", max_trials=max_trials, epochs=epochs, seed=0, verbose=1,
                          directory=workdir, project_name="streaming", ensemble=False)
    am.fit(path, y="label")
    fit_s = time.time() - start
    rows = am.raw_task_.rows
    prepare_s = fit_s - am.search_time_ - am.refit_time_
    score_start = time.time()
    accuracy = am.evaluate(path, y="label")["accuracy"]
    return {
        "rows": rows, "fit_wall_time_s": fit_s, "search_time_s": am.search_time_, "refit_time_s": am.refit_time_,
        "prepare_time_s": prepare_s, "prepare_rows_per_s": rows / prepare_s,
        # The refit trains on every row for `refit_epochs_` epochs (its first reads the CSV).
        "refit_rows_per_s": rows * am.refit_epochs_ / am.refit_time_,
        "training_accuracy": accuracy, "evaluate_rows_per_s": rows / (time.time() - score_start),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "best": am.best_architecture_,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--max-trials", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--keep", default=None, help="folder to keep the CSV in (default: a temporary one)")
    parser.add_argument("--child", nargs=2, metavar=("CSV", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(fit_in_this_process(args.child[0], args.max_trials, args.epochs, args.child[1])))
        return {}
    folder = args.keep or tempfile.mkdtemp()
    path = os.path.join(folder, f"table_{args.rows}.csv")
    start = time.time()
    if not os.path.exists(path):
        write_csv(path, args.rows)
    written = time.time() - start
    with tempfile.TemporaryDirectory() as workdir:
        out = subprocess.run([sys.executable, __file__, "--child", path, workdir, "--max-trials", str(args.max_trials),
                              "--epochs", str(args.epochs)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(csv_mib=os.path.getsize(path) / 2**20, csv_write_s=written, max_trials=args.max_trials,
                  epochs=args.epochs)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
