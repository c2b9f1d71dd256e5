"""Soft-voting ensembles of exported few-shot models, served as one SavedModel.

Any SavedModel with the `few_shot` signature from DESIGN.md can be a member: Siamese,
prototypical, matching, relation and MAML exports alike (a MAML member adapts inside its own
graph). For an episode, the ensemble returns the weighted mean of the members' class
probabilities. `FewShotEnsemble.export` writes it as a new SavedModel in TF Serving layout whose
`few_shot` (and `serving_default`) signature runs every member in one graph, so the ensemble
serves, and is scored by `tfmeta oneshot-eval`, like any single few-shot model.

Independently trained networks make different mistakes, so averaging their probabilities
usually scores above the best member; it costs one member's inference per member.

Example:

>>> ensemble = FewShotEnsemble(["runs/maml_a/1", "runs/maml_b/1"])
>>> ensemble.predict_few_shot(support_x, support_y, query_x).shape
(75, 5)
>>> ensemble.export("saved_models/omniglot_maml_ensemble")
'saved_models/omniglot_maml_ensemble/1'
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfmeta import export as export_lib
from tfmeta.data.validation import check_support_set
from tfmeta.evaluation import evaluate_episodes
from tfmeta.oneshot import few_shot_signature


def _input_shape(fn) -> tuple:
    """The `support_x` shape (without the example axis) of a loaded `few_shot` signature."""
    return tuple(fn.structured_input_signature[1]["support_x"].shape[1:])


def _member_summary(path: str, weight: float) -> dict:
    """A member's entry in the ensemble's tfmeta.json (its learner and metrics, when recorded)."""
    try:
        meta = export_lib.read_metadata(path)
    except FileNotFoundError:
        meta = {}
    return {"path": path, "weight": weight, "learner": meta.get("learner"), "metrics": meta.get("metrics")}


class FewShotEnsemble(tf.Module):
    """Averages the class probabilities of several `few_shot` SavedModels.

    Args:
        members: Paths of at least two SavedModels with a `few_shot` signature (a version
            directory, or a base directory: its newest version). Their inputs must have the
            same shape.
        weights: Optional non-negative weight per member (normalised to sum to 1); equal
            weights by default.
        name: Module name.

    Attributes:
        member_paths: The members' resolved version directories.
        member_signatures: Their loaded `few_shot` concrete functions, in the same order.
        weights: The normalised weights.

    Raises:
        ValueError: Fewer than two members, a member without a `few_shot` signature, members
            with different input shapes, or bad weights.
    """

    def __init__(
        self,
        members: Sequence[str],
        weights: Sequence[float] | None = None,
        name: str = "few_shot_ensemble",
    ):
        super().__init__(name=name)
        if isinstance(members, (str, os.PathLike)) or len(members) < 2:
            received = repr(members) if isinstance(members, (str, os.PathLike)) else f"{len(members)}"
            raise ValueError(
                f"`members` must list at least 2 few_shot SavedModels; received {received}."
            )
        if weights is None:
            weights = [1.0] * len(members)
        weights = [float(w) for w in weights]
        if len(weights) != len(members):
            raise ValueError(
                f"`weights` must give one weight per member ({len(members)}); "
                f"received {len(weights)}."
            )
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                f"`weights` must be finite, non-negative and not all zero; received {weights}."
            )
        loaded, fns, paths = [], [], []
        for member in members:
            obj, fn, path = few_shot_signature(str(member))
            loaded.append(obj)
            fns.append(fn)
            paths.append(path)
        shape = _input_shape(fns[0])
        for fn, path in zip(fns[1:], paths[1:]):
            if _input_shape(fn) != shape:
                raise ValueError(
                    f"Every member must take inputs of one shape: {paths[0]} takes {shape}, "
                    f"{path} takes {_input_shape(fn)}."
                )
        self._members = loaded  # tracked: the members' variables are saved with the ensemble
        self.member_signatures = fns
        self.member_paths = paths
        self.weights = [w / sum(weights) for w in weights]
        self.input_shape = shape
        example = [None, *shape]
        self.few_shot = tf.function(
            self._few_shot,
            input_signature=[
                tf.TensorSpec(example, tf.float32, name="support_x"),
                tf.TensorSpec([None], tf.int32, name="support_y"),
                tf.TensorSpec(example, tf.float32, name="query_x"),
            ],
        )

    def _few_shot(self, support_x, support_y, query_x):
        total = None
        for weight, fn in zip(self.weights, self.member_signatures):
            probs = fn(support_x=support_x, support_y=support_y, query_x=query_x)["probabilities"]
            total = weight * probs if total is None else total + weight * probs
        return {"probabilities": total}

    def probabilities(self, support_x, support_y, query_x) -> tf.Tensor:
        """`[Q, N]` ensemble probabilities for one episode (tensors; no validation)."""
        return self.few_shot(
            tf.convert_to_tensor(support_x, tf.float32),
            tf.cast(support_y, tf.int32),
            tf.convert_to_tensor(query_x, tf.float32),
        )["probabilities"]

    def predict_few_shot(self, support_x, support_y, query_x) -> np.ndarray:
        """Validates an episode given as arrays and returns `[Q, N]` probabilities (numpy)."""
        support_x, support_y, query_x, _ = check_support_set(support_x, support_y, query_x)
        return self.probabilities(support_x, support_y, query_x).numpy()

    def evaluate_episodes(
        self, x, y, ways: int, shots: int, queries: int = 15, episodes: int = 600, seed: int = 1234
    ) -> dict:
        """Mean accuracy and 95% CI over `episodes` N-way K-shot episodes from `(x, y)`.

        The same `seed` gives the same episodes as a learner's `evaluate_episodes`, so an
        ensemble and its members are compared on identical tasks.
        """
        return evaluate_episodes(self.probabilities, x, y, ways, shots, queries, episodes, seed)

    def export(
        self, base_dir: str, metadata: dict[str, Any] | None = None, version: int | None = None
    ) -> str:
        """Writes the ensemble to `base_dir/<next version>/` atomically; returns that path.

        The SavedModel holds every member's variables and graph: it loads with
        `tf.saved_model.load` alone and no longer needs the members' folders.
        """
        signature = self.few_shot.get_concrete_function()

        def write(path: str) -> None:
            tf.saved_model.save(
                self, path, signatures={"few_shot": signature, "serving_default": signature}
            )

        meta = {
            "task": "few_shot",
            "learner": "ensemble",
            "input_spec": {"shape": [None, *self.input_shape], "dtype": "float32"},
            "class_names": None,
            "metrics": {},
            "members": [
                _member_summary(path, weight) for path, weight in zip(self.member_paths, self.weights)
            ],
            "signatures": ["few_shot", "serving_default"],
        }
        meta.update(metadata or {})
        return export_lib.write_version(base_dir, write, meta, version=version)
