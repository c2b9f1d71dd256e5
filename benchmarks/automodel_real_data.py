"""tfmeta.AutoModel on real tables and texts, raw, against AutoKeras and the classical reference.

On the same split and the same budget (`--max-trials` trials x `--epochs` epochs), each system
is scored on the held-out rows:

- `tfmeta`: `tfmeta.AutoModel` on the raw DataFrame (target named) or the raw strings;
- `autokeras`: AutoKeras 3.0's `StructuredDataClassifier` / `StructuredDataRegressor` /
  `TextClassifier`, with what it needs done by hand: its structured-data input is a numeric
  array (it encodes no categories), so dates become hour and weekday, categories integer codes
  and missing numbers the median; and its classification head's numpy-int `Dense(units)` cast;
- `reference`: what a practitioner tries first: scikit-learn's `HistGradientBoosting*` with
  native categorical support (dates turned into hour and weekday) for tables, TF-IDF
  (unigrams and bigrams) + logistic regression for text.

Data sets (from `$TFMETA_DATA_DIR`): taxis `payment` (classification; rows without a payment
left out), taxis `fare` (regression), tips `tip` (regression), yelp + amazon sentiment (text).
Every system runs on each of `--split-seeds` 80/20 splits (the test sets are small: 49 rows for
tips, 400 texts), one after the other on the same machine. Prints JSON: per data set and
system, the test accuracy (R^2 for regression) and wall time of every split, and their means.

Usage:

    python benchmarks/automodel_real_data.py                       # everything (AutoKeras takes longest)
    python benchmarks/automodel_real_data.py --systems tfmeta,reference --datasets tips-tip --split-seeds 0
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: TensorFlow's environment defaults)

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from autokeras_compat import patch_autokeras_dense  # beside this script, in benchmarks/

DATASETS = ("taxis-payment", "taxis-fare", "tips-tip", "sentiment")
SYSTEMS = ("tfmeta", "autokeras", "reference")


def data_dir() -> Path:
    return Path(os.environ.get("TFMETA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load(name: str) -> tuple[object, object, str, str | None]:
    """`(features, targets, task, target column)`: a DataFrame with its target column, or texts."""
    if name == "sentiment":
        rows = []
        for file in ("yelp_labelled.txt", "amazon_cells_labelled.txt"):
            for line in (data_dir() / "text" / file).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    text, label = line.rsplit("\t", 1)
                    rows.append((text, int(label)))
        return np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows]), "classification", None
    table, target = {"taxis-payment": ("taxis", "payment"), "taxis-fare": ("taxis", "fare"),
                     "tips-tip": ("tips", "tip")}[name]
    frame = pd.read_csv(data_dir() / "tables" / f"{table}.csv")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    task = "regression" if pd.api.types.is_numeric_dtype(frame[target]) else "classification"
    return frame, frame[target].to_numpy(), task, target


def split(x, y, task: str, seed: int):
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=0.2, random_state=seed,
                                   stratify=y if task == "classification" else None)
    take = (lambda rows: x.iloc[rows].reset_index(drop=True)) if isinstance(x, pd.DataFrame) else (lambda rows: x[rows])
    return take(train), take(test), y[train], y[test]


def score(task: str, truth, predicted) -> float:
    truth, predicted = np.asarray(truth), np.asarray(predicted).reshape(-1)
    if task == "classification":
        if truth.dtype.kind in "iuf":  # labels predicted as text or floats ("1", 1.0)
            predicted = predicted.astype(float).astype(truth.dtype)
        return float(np.mean(truth.astype(str) == predicted.astype(str)))
    predicted = predicted.reshape(-1).astype(float)
    return float(1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2))


# ------------------------------------------------------------------------- the systems
def run_tfmeta(data, task, target, args, workdir) -> dict:
    x_train, x_test, y_train, y_test = data
    start = time.time()
    am = tfmeta.AutoModel(task=task, max_trials=args.max_trials, epochs=args.epochs, seed=args.seed, verbose=0,
                          directory=workdir, project_name="tfmeta")
    if target is not None:
        am.fit(x_train, y=target)
        predicted = am.predict(x_test.drop(columns=[target]))
    else:
        am.fit(list(x_train), y_train)
        predicted = am.predict(list(x_test))
    wall = time.time() - start
    return {"score": score(task, y_test, predicted), "wall_time_s": wall,
            "best": am.best_architecture_, "trials": len(am.leaderboard())}


def _numeric_matrix(frame: pd.DataFrame, prepared: dict | None = None) -> tuple[np.ndarray, dict]:
    """AutoKeras 3.0's structured-data input is a numeric array: dates become hour and weekday,
    categories their integer codes (-1 unseen), missing numbers the training median."""
    frame, categories = _hgb_frame(frame, (prepared or {}).get("categories"))
    for column in categories:
        frame[column] = frame[column].cat.codes.astype(float)
    medians = (prepared or {}).get("medians") or {c: float(frame[c].median()) for c in frame.columns}
    frame = frame.fillna(medians)
    return frame.to_numpy(dtype=np.float32), {"categories": categories, "medians": medians}


def run_autokeras(data, task, target, args, workdir) -> dict:
    import autokeras as ak

    patch_autokeras_dense()
    x_train, x_test, y_train, y_test = data
    start = time.time()
    common = dict(max_trials=args.max_trials, overwrite=True, seed=args.seed, directory=workdir, project_name="ak")
    if target is None:
        model = ak.TextClassifier(**common)
        model.fit(np.asarray(x_train, dtype=str), y_train, epochs=args.epochs, verbose=0)
        predicted = model.predict(np.asarray(x_test, dtype=str), verbose=0)
    else:
        train, prepared = _numeric_matrix(x_train.drop(columns=[target]))
        test, _ = _numeric_matrix(x_test.drop(columns=[target]), prepared)
        cls = ak.StructuredDataClassifier if task == "classification" else ak.StructuredDataRegressor
        model = cls(**common)
        model.fit(train, y_train if task == "regression" else y_train.astype(str), epochs=args.epochs, verbose=0)
        predicted = model.predict(test, verbose=0)
    wall = time.time() - start
    return {"score": score(task, y_test, np.asarray(predicted).reshape(-1)), "wall_time_s": wall,
            "workarounds": ["Dense(units=int(units)) patch"] + ([] if target is None else [
                "tables made numeric by hand (AutoKeras 3.0 encodes no categories): dates to hour and weekday, "
                "categories to integer codes, missing numbers to the median"])}


def _hgb_frame(frame: pd.DataFrame, categories: dict | None = None) -> tuple[pd.DataFrame, dict]:
    frame = frame.copy()
    for column in list(frame.columns):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            parsed = pd.to_datetime(frame[column], errors="coerce", format="%Y-%m-%d %H:%M:%S")
            if parsed.notna().mean() > 0.9:
                frame[column + "_hour"] = parsed.dt.hour
                frame[column + "_weekday"] = parsed.dt.dayofweek
                frame = frame.drop(columns=[column])
    categories = categories or {c: sorted(frame[c].dropna().astype(str).unique()) for c in frame.columns
                                if not pd.api.types.is_numeric_dtype(frame[c])}
    for column, levels in categories.items():
        frame[column] = pd.Categorical(frame[column].astype(object).where(frame[column].notna()), categories=levels)
    return frame, categories


def run_reference(data, task, target, args, workdir) -> dict:
    x_train, x_test, y_train, y_test = data
    start = time.time()
    if target is None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000))
        model.fit(list(x_train), y_train)
        predicted = model.predict(list(x_test))
        name = "tfidf+logistic regression"
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        train, categories = _hgb_frame(x_train.drop(columns=[target]))
        test, _ = _hgb_frame(x_test.drop(columns=[target]), categories)
        cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
        model = cls(categorical_features="from_dtype", random_state=args.seed)
        model.fit(train, y_train)
        predicted = model.predict(test)
        name = cls.__name__
    return {"score": score(task, y_test, predicted), "wall_time_s": time.time() - start, "model": name}


RUNNERS = {"tfmeta": run_tfmeta, "autokeras": run_autokeras, "reference": run_reference}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--max-trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of every system's search")
    parser.add_argument("--split-seeds", default="0,1,2",
                        help="seeds of the 80/20 train/test splits (every system runs on each; means reported)")
    args = parser.parse_args(argv)
    seeds = [int(v) for v in args.split_seeds.split(",")]
    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "max_trials": args.max_trials, "epochs": args.epochs,
              "seed": args.seed, "split_seeds": seeds, "results": {}}
    for name in args.datasets.split(","):
        x, y, task, target = load(name)
        metric = "accuracy" if task == "classification" else "r2"
        rows = result["results"].setdefault(name, {"task": task, "metric": metric})
        for split_seed in seeds:
            data = split(x, y, task, split_seed)
            rows.update(train_rows=len(data[2]), test_rows=len(data[3]))
            for system in args.systems.split(","):
                with tempfile.TemporaryDirectory() as workdir:
                    run = RUNNERS[system](data, task, target, args, workdir)
                entry = rows.setdefault(system, {"runs": []})
                entry["runs"].append({"split_seed": split_seed, **run})
                print(f"{name} split {split_seed} {system}: {metric} {run['score']:.4f} in {run['wall_time_s']:.0f} s",
                      flush=True)
        for system in args.systems.split(","):
            runs = rows[system]["runs"]
            rows[system].update(mean_score=float(np.mean([r["score"] for r in runs])),
                                mean_wall_time_s=float(np.mean([r["wall_time_s"] for r in runs])))
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
