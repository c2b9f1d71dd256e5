"""Meta-feature warm starts over a sequence of data sets: best score after 3 trials, with and without.

The data sets are fitted one after the other, as a user's projects would be: digits (as a
table of 64 pixel columns), tips (`time`), taxis (`payment`), then amazon and yelp sentiment
(texts). With warm start, every project reads and then adds to one store
(`AutoModel(warm_start_store=...)`), so each search starts with the best configuration of the
nearest earlier data set whose configurations transfer (tables to tables, texts to texts);
without, the search starts from the built-in defaults. Both run `--trials` trials of `--epochs`
epochs with the same seed and no refit. Prints JSON: per data set the best validation score
(accuracy) of each run, the test accuracy of the best trial's model, the neighbour it started
from and the seconds.

Usage:
    python benchmarks/warm_start_sequence.py [--trials 3] [--epochs 10]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import tempfile
import time

import numpy as np
import pandas as pd

from automodel_real_data import data_dir, score, split  # beside this script, in benchmarks/

SEQUENCE = ("digits", "tips-time", "taxis-payment", "amazon", "yelp")


def load(name: str):
    """`(x, y, target column or None)`: a DataFrame with its target column, or texts."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        frame = pd.DataFrame(digits.data, columns=[f"pixel{i}" for i in range(64)])
        frame["digit"] = digits.target.astype(str)
        return frame, frame["digit"].to_numpy(), "digit"
    if name in ("amazon", "yelp"):
        file = {"amazon": "amazon_cells_labelled.txt", "yelp": "yelp_labelled.txt"}[name]
        rows = [line.rsplit("\t", 1) for line in (data_dir() / "text" / file).read_text(encoding="utf-8").splitlines()
                if line.strip()]
        return np.array([r[0] for r in rows], dtype=object), np.array([int(r[1]) for r in rows]), None
    table, target = name.split("-")
    frame = pd.read_csv(data_dir() / "tables" / f"{table}.csv")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    return frame, frame[target].to_numpy(), target


def run(name: str, store: str | None, args, workdir: str) -> dict:
    x, y, target = load(name)
    x_train, x_test, y_train, y_test = split(x, y, "classification", seed=0)
    start = time.time()
    am = tfmeta.AutoModel(max_trials=args.trials, epochs=args.epochs, seed=0, verbose=0, refit=False,
                          ensemble=False, directory=workdir, project_name=name, overwrite=True,
                          warm_start_store=store)
    if target is not None:
        am.fit(x_train, y=target)
        predicted = am.predict(x_test.drop(columns=[target]))
    else:
        am.fit(x_train, y_train)
        predicted = am.predict(x_test)
    board = [t for t in am.leaderboard() if t["status"] == "completed"]
    return {"best_validation_accuracy": am.best_score_, "test_accuracy": score("classification", y_test, predicted),
            "trial_scores": [t["score"] for t in board],
            "warm_start_from": sorted({t["warm_start_from"] for t in board if "warm_start_from" in t}),
            "seconds": round(time.time() - start, 1)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv)
    result = {"command": "python benchmarks/warm_start_sequence.py " + " ".join(argv or []), "trials": args.trials,
              "epochs": args.epochs, "sequence": list(SEQUENCE)}
    with tempfile.TemporaryDirectory() as workdir:
        store = f"{workdir}/store"
        for name in SEQUENCE:
            result[name] = {"without": run(name, None, args, f"{workdir}/cold"),
                            "with_warm_start": run(name, store, args, f"{workdir}/warm")}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
