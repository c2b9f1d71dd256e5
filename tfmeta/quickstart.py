"""`tfmeta quickstart`: the main job on scikit-learn's digits, end to end.

Search a small budget of architectures with AutoModel, train the best, export it to
`saved_models/quickstart/<version>/`, reload the SavedModel with `tf.saved_model.load` alone and
measure its test accuracy through the reloaded signature. The pieces are the shared ones: the
digits loader of `tfmeta.data.digits`, `tfmeta.AutoModel`, and its classifier export
(`tfmeta.export.export_classifier`: `serving_default: x -> {"probabilities", "classes"}`).

Example:

>>> result = run_quickstart(max_trials=1, epochs=2)                 # doctest: +SKIP
>>> result["test_accuracy"], result["export_path"]                # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np

from tfmeta.data.digits import load_digits_splits


def load_digits_split(seed: int = 0, test_size: float = 0.25):
    """scikit-learn's digits, 8 x 8 values 0..16: `(x_train, x_test, y_train, y_test)`.

    The split of `tfmeta.data.digits.load_digits_splits(test_size, seed=seed)`.
    """
    splits = load_digits_splits(test_size=test_size, seed=seed)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return x_train, x_test, y_train, y_test


def run_quickstart(
    output: str = "saved_models/quickstart",
    max_trials: int = 3,
    epochs: int = 10,
    seed: int = 0,
    directory: str = "runs",
    strategy: str = "controller",
    verbose: int = 1,
) -> dict:
    """Runs the quickstart and returns what it measured."""
    import tensorflow as tf

    from tfmeta.automodel import AutoModel

    start = time.time()
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    am = AutoModel(
        task="classification", max_trials=max_trials, epochs=epochs, strategy=strategy, seed=seed,
        directory=directory, project_name="quickstart", overwrite=True, verbose=verbose,
    )
    am.fit(x_train, y_train)
    path = am.export(output)
    serving = tf.saved_model.load(path).signatures["serving_default"]
    classes = serving(x=tf.constant(x_test))["classes"].numpy()
    accuracy = float(np.mean(classes == y_test))
    return {
        "test_accuracy": accuracy,
        "keras_test_accuracy": float(am.score(x_test, y_test)),
        "best_architecture": am.best_architecture_,
        "leaderboard": am.leaderboard(),
        "export_path": path,
        "wall_time_s": time.time() - start,
    }
