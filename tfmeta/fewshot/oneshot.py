"""Scores any SavedModel with a `few_shot` signature on Lake's one-shot runs.

Only TensorFlow is needed to load the model: the signature is called as exported. The runs
are scored by the one episode evaluator (`tfmeta.fewshot.evaluation.score_episodes`), one run
per episode.

Example:

>>> evaluate_saved_model("saved_models/omniglot_siamese", "runs/heldout")
{'error_rate': 0.12, 'accuracy': 0.88, 'trials': 400, 'runs': 20, 'model': '...'}
"""

from __future__ import annotations

import numpy as np

from tfmeta.data.episodes import Episode
from tfmeta.data.oneshot_runs import load_oneshot_runs
from tfmeta.export import few_shot_function, few_shot_input_shape, load_few_shot_signature
from tfmeta.fewshot.evaluation import EpisodeList, score_episodes


def _with_channels(episode: Episode, channels: int | None) -> Episode:
    """The episode's images repeated to `channels` channels when the model wants more."""
    if not channels or channels == episode.support_x.shape[-1]:
        return episode
    return episode._replace(
        support_x=np.repeat(episode.support_x, channels, -1),
        query_x=np.repeat(episode.query_x, channels, -1),
    )


def evaluate_saved_model(model_dir: str, runs_path: str) -> dict:
    """Runs every one-shot run through the model's `few_shot` signature.

    The runs' images are decoded at the model's input size (read from the signature).

    Returns:
        `{"error_rate", "accuracy", "trials", "runs", "model"}`; trials = query images scored.
    """
    _, signature, path = load_few_shot_signature(model_dir)
    shape = few_shot_input_shape(signature)
    size = (shape[0] or 28, shape[1] or 28)
    channels = shape[2] if len(shape) == 3 else None
    runs = [_with_channels(ep, channels) for ep in load_oneshot_runs(runs_path, image_size=size)]
    trials = int(sum(len(ep.query_y) for ep in runs))
    # Every run has the same number of queries (20), so the mean of the runs' accuracies is
    # the accuracy over all trials.
    result = score_episodes(few_shot_function(signature), EpisodeList(runs), episodes=len(runs), meta_batch=1)
    correct = round(result["accuracy"] * trials) if len({len(ep.query_y) for ep in runs}) == 1 else None
    accuracy = correct / trials if correct is not None else result["accuracy"]
    return {
        "error_rate": 1.0 - accuracy,
        "accuracy": accuracy,
        "trials": trials,
        "runs": len(runs),
        "model": path,
    }


def few_shot_signature(model_dir: str):
    """Deprecated: use `tfmeta.export.load_few_shot_signature`."""
    return load_few_shot_signature(model_dir)
