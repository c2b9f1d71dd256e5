"""Scores any SavedModel with a `few_shot` signature on Lake's one-shot runs.

Only TensorFlow is needed to load the model: the signature is called as exported.

Example:

>>> evaluate_saved_model("saved_models/omniglot_siamese", "runs/heldout")
{'error_rate': 0.12, 'accuracy': 0.88, 'trials': 400, 'runs': 20}
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfmeta.data.oneshot_runs import load_oneshot_runs
from tfmeta.export import latest_version_dir


def few_shot_signature(model_dir: str):
    """Loads `model_dir` (a version dir, or a base dir: newest version) and its `few_shot` fn."""
    path = latest_version_dir(model_dir)
    loaded = tf.saved_model.load(path)
    if "few_shot" not in loaded.signatures:
        raise ValueError(
            f"`--model` {path} has no 'few_shot' signature; it has {sorted(loaded.signatures)}."
        )
    return loaded, loaded.signatures["few_shot"], path


def evaluate_saved_model(model_dir: str, runs_path: str) -> dict:
    """Runs every one-shot run through the model's `few_shot` signature.

    The runs' images are decoded at the model's input size (read from the signature).

    Returns:
        `{"error_rate", "accuracy", "trials", "runs", "model"}`; trials = query images scored.
    """
    loaded, fn, path = few_shot_signature(model_dir)
    spec = fn.structured_input_signature[1]["support_x"]
    height, width = spec.shape[1], spec.shape[2]
    channels = spec.shape[3] if spec.shape.rank == 4 else None
    size = (height or 28, width or 28)
    correct = trials = 0
    episodes = load_oneshot_runs(runs_path, image_size=size)
    for ep in episodes:
        sx, qx = ep.support_x, ep.query_x
        if channels and channels != sx.shape[-1]:
            sx, qx = np.repeat(sx, channels, -1), np.repeat(qx, channels, -1)
        probs = fn(
            support_x=tf.constant(sx), support_y=tf.constant(ep.support_y), query_x=tf.constant(qx)
        )["probabilities"].numpy()
        correct += int(np.sum(probs.argmax(-1) == ep.query_y))
        trials += len(ep.query_y)
    accuracy = correct / trials
    return {
        "error_rate": 1.0 - accuracy,
        "accuracy": accuracy,
        "trials": trials,
        "runs": len(episodes),
        "model": path,
    }
