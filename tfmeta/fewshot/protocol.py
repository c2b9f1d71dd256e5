"""The few-shot learner protocol shared by Siamese, prototypical, matching, relation and MAML.

A learner implements `few_shot_logits(support_x, support_y, query_x, ways)` for one episode
(no task axis, traceable in a `tf.function`). This mixin turns that into probabilities,
episodic evaluation and the `few_shot` SavedModel signature from DESIGN.md:

    few_shot(support_x: float32[S, ...], support_y: int32[S], query_x: float32[Q, ...])
        -> {"probabilities": float32[Q, N]}      # N = max(support_y) + 1
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta import export as export_lib
from tfmeta.data.validation import check_support_set
from tfmeta.fewshot.evaluation import compiled_probabilities, evaluate_on_arrays


class FewShotMixin:
    """Adds probabilities, evaluation and export to a `keras.Model` few-shot learner.

    Subclasses implement `few_shot_logits` and may override `serving_endpoints` to add their
    own `serving_default` (the default serves embeddings of `x` from `self.encoder`).
    """

    #: Short learner name written to tfmeta.json.
    learner_name = "few_shot"

    def few_shot_logits(self, support_x, support_y, query_x, ways):
        """Returns `[Q, ways]` logits for one episode. Subclasses implement this."""
        raise NotImplementedError

    def few_shot_probabilities(self, support_x, support_y, query_x):
        """Returns `[Q, N]` class probabilities for one episode, `N = max(support_y) + 1`."""
        support_y = tf.cast(support_y, tf.int32)
        ways = tf.reduce_max(support_y) + 1
        logits = self.few_shot_logits(support_x, support_y, query_x, ways)
        return tf.nn.softmax(logits, axis=-1)

    def predict_few_shot(self, support_x, support_y, query_x) -> np.ndarray:
        """Validates an episode given as arrays and returns `[Q, N]` probabilities (numpy)."""
        support_x, support_y, query_x, _ = check_support_set(support_x, support_y, query_x)
        return compiled_probabilities(self)(support_x, support_y, query_x).numpy()

    def evaluate_episodes(
        self, x, y, ways: int, shots: int, queries: int = 15, episodes: int = 600, seed: int = 1234
    ) -> dict:
        """Mean accuracy and 95% CI over `episodes` N-way K-shot episodes from `(x, y)`.

        Scored by `tfmeta.fewshot.evaluation.score_episodes`, the loop every learner shares:
        the same arguments give the same episodes to every learner.
        """
        return evaluate_on_arrays(self, x, y, ways, shots, queries, episodes, seed)

    # ----------------------------------------------------------------- export
    def _example_spec(self) -> tuple:
        shape = tuple(self.encoder.input_shape[1:])
        return shape

    def serving_endpoints(self) -> dict:
        """Signatures besides `few_shot`. Default: `serving_default` returns embeddings."""
        spec = self._example_spec()

        def embed(x):
            return {"embeddings": self.encoder(x, training=False)}

        return {"serving_default": (embed, [tf.TensorSpec((None,) + spec, tf.float32, name="x")])}

    def few_shot_endpoint(self):
        """`(fn, input_signature)` of the `few_shot` signature."""
        return export_lib.few_shot_endpoint(self.few_shot_probabilities, self._example_spec())

    def export(
        self, base_dir: str, metadata: dict[str, Any] | None = None, version: int | None = None
    ) -> str:
        """Exports `serving_default` + `few_shot` to `base_dir/<next version>/` atomically.

        Returns:
            The version directory written.
        """
        endpoints = dict(self.serving_endpoints())
        endpoints["few_shot"] = self.few_shot_endpoint()
        meta = {
            "task": "few_shot",
            "learner": self.learner_name,
            "input_spec": {"shape": [None, *self._example_spec()], "dtype": "float32"},
            "class_names": None,
            "metrics": {},
        }
        meta.update(metadata or {})
        return export_lib.export_endpoints(base_dir, self, endpoints, meta, version=version)
