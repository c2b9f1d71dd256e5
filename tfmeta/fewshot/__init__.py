"""The few-shot protocol, its one evaluator, ensembles and Lake's one-shot runs.

- `protocol`: `FewShotMixin`, what every few-shot learner implements
  (`few_shot_logits` for one episode) and gets (`few_shot_probabilities`,
  `predict_few_shot`, `evaluate_episodes`, export with the `few_shot` signature).
- `evaluation`: `score_episodes`, the one loop that scores learners, ensembles and
  SavedModels on a sampler's episodes; `score_grid` for the papers' N-way K-shot tables.
- `ensemble`: `FewShotEnsemble`, soft voting over `few_shot` models, served as one.
- `oneshot`: `evaluate_saved_model`, a `few_shot` SavedModel scored on Lake's runs.

Example:

>>> from tfmeta.fewshot import score_episodes
>>> score_episodes(learner, EpisodeSampler(x, y, ways=5, shots=1, queries=15, seed=1), episodes=600)
"""

from __future__ import annotations

import importlib

from tfmeta.fewshot.protocol import FewShotMixin

_LAZY = {
    "score_episodes": "evaluation",
    "score_grid": "evaluation",
    "evaluate_on_arrays": "evaluation",
    "mean_confidence_interval": "evaluation",
    "EpisodeList": "evaluation",
    "STANDARD_SETTINGS": "evaluation",
    "FewShotEnsemble": "ensemble",
    "temper": "ensemble",
    "evaluate_saved_model": "oneshot",
}

__all__ = ["FewShotMixin", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"tfmeta.fewshot.{_LAZY[name]}"), name)
    if name in {"protocol", "evaluation", "ensemble", "oneshot"}:
        return importlib.import_module(f"tfmeta.fewshot.{name}")
    raise AttributeError(f"module 'tfmeta.fewshot' has no attribute {name!r}")
