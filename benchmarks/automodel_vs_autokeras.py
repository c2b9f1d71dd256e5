"""tfmeta.AutoModel against autokeras.ImageClassifier on scikit-learn's digits, side by side.

Same split (75/25, stratified, `--split-seed`, 0 by default), same `max_trials` and epochs per
trial. Prints JSON with each one's test accuracy and wall time.

Usage:
    python benchmarks/automodel_vs_autokeras.py --max-trials 3 --epochs 10 [--skip-autokeras]

AutoKeras 3.0.0 needs two workarounds under Keras 3.15, applied here and reported in the JSON:
its classification head passes a numpy integer as `Dense(units=...)` (we cast `units` to int),
and it imports `tensorboard` (a tfmeta dependency, since KerasTuner needs it too).
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np

from autokeras_compat import patch_autokeras_dense  # beside this script, in benchmarks/


def run_tfmeta(data, max_trials, epochs, seed, workdir, strategy):
    x_train, x_test, y_train, y_test = data
    start = time.time()
    am = tfmeta.AutoModel(task="classification", max_trials=max_trials, epochs=epochs, seed=seed,
                          strategy=strategy, directory=workdir, project_name="tfmeta", overwrite=True, verbose=1)
    am.fit(x_train, y_train)
    fit_s = time.time() - start
    acc = float(am.score(x_test, y_test))
    # Each averaged member on its own (refit model first, then the best trial's model).
    members = [float(np.mean(am.classes_[m.predict(x_test, verbose=0).argmax(-1)] == y_test))
               for m in am.members_]
    return {"test_accuracy": acc, "wall_time_s": fit_s, "best_architecture": am.best_architecture_,
            "member_test_accuracies": members, "leaderboard": am.leaderboard()}


def run_autokeras(data, max_trials, epochs, seed, workdir):
    try:
        import tensorboard  # noqa: F401
    except ImportError as e:
        raise SystemExit("autokeras needs tensorboard: pip install tensorboard") from e
    import autokeras as ak

    patch_autokeras_dense()
    x_train, x_test, y_train, y_test = data
    start = time.time()
    clf = ak.ImageClassifier(max_trials=max_trials, overwrite=True, seed=seed, directory=workdir,
                             project_name="autokeras")
    clf.fit(x_train[..., None], y_train, epochs=epochs, validation_split=0.2, verbose=0)
    fit_s = time.time() - start
    pred = np.asarray(clf.predict(x_test[..., None], verbose=0)).reshape(-1).astype(int)
    # Some AutoKeras trials start from ImageNet weights (EfficientNet); without network access
    # they fail and AutoKeras goes on with the others, so report how many trials really ran.
    statuses = [str(t.status) for t in clf.tuner.oracle.trials.values()]
    return {"test_accuracy": float(np.mean(pred == y_test)), "wall_time_s": fit_s,
            "trials": {status: statuses.count(status) for status in sorted(set(statuses))},
            "workarounds": ["Dense(units=int(units)) patch", "tensorboard installed"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="search seed of both AutoML systems")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the 75/25 train/test split")
    parser.add_argument("--strategy", default="controller")
    parser.add_argument("--skip-autokeras", action="store_true")
    args = parser.parse_args()

    from tfmeta.quickstart import load_digits_split

    data = load_digits_split(args.split_seed)
    workdir = tempfile.mkdtemp(prefix="tfmeta_vs_ak_")
    result = {"dataset": "sklearn digits 8x8, 1347 train / 450 test", "split_seed": args.split_seed,
              "seed": args.seed, "max_trials": args.max_trials,
              "epochs": args.epochs, "cpu_count": os.cpu_count(), "load_avg_before": os.getloadavg()}
    try:
        result["tfmeta"] = run_tfmeta(data, args.max_trials, args.epochs, args.seed, workdir, args.strategy)
        if not args.skip_autokeras:
            result["autokeras"] = run_autokeras(data, args.max_trials, args.epochs, args.seed, workdir)
            result["speedup"] = result["autokeras"]["wall_time_s"] / result["tfmeta"]["wall_time_s"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
