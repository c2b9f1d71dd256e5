"""Soft-voting ensembles of few-shot models, served as one SavedModel.

A member is any SavedModel with the `few_shot` signature from DESIGN.md (Siamese, prototypical,
matching, relation and MAML exports alike; a MAML member adapts inside its own graph), or a
learner in memory: anything with `few_shot_probabilities(support_x, support_y, query_x)` and an
input shape (every tfmeta learner, or another `FewShotEnsemble`). For an episode, the ensemble
returns the weighted mean of the members' class probabilities, each first tempered by a
per-member temperature (1 = unchanged). `FewShotEnsemble.export` writes it as a new SavedModel
in TF Serving layout whose `few_shot` (and `serving_default`) signature runs every member in one
graph, so the ensemble serves, and is scored by `tfmeta oneshot-eval`, like any single few-shot
model.

Independently trained networks make different mistakes, so averaging their probabilities
usually scores above the best member; it costs one member's inference per member. Members of
different families are often calibrated differently (a MAML member can be near one-hot where a
prototypical network hedges, and then decides every vote); `FewShotEnsemble.calibrate` fits each
member's temperature on validation episodes (Guo et al., 2017), so that every member's
confidence means what it says before the votes are added.

Example:

>>> ensemble = FewShotEnsemble(["runs/maml_a/1", "runs/maml_b/1"])   # or learners in memory
>>> ensemble.predict_few_shot(support_x, support_y, query_x).shape
(75, 5)
>>> ensemble.calibrate(x_val, y_val, ways=5, shots=1)  # optional: one temperature per member
[1.6, 0.9]
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
from tfmeta.episode_checks import checked_episode
from tfmeta.fewshot.evaluation import (compiled_probabilities, episode_sampler, evaluate_on_arrays,
                                       iterate_episodes)


# Probabilities are clipped here before their log, so a member's exact zeros stay finite.
_MIN_PROBABILITY = 1e-12


def _member_summary(path: str | None, member: Any, weight: float, temperature: float) -> dict:
    """A member's entry in the ensemble's tfmeta.json (its learner and metrics, when recorded)."""
    meta = {"learner": getattr(member, "learner_name", type(member).__name__)}
    if path is not None:
        try:
            meta = export_lib.read_metadata(path)
        except FileNotFoundError:
            meta = {}
    return {"path": path, "weight": weight, "temperature": temperature,
            "learner": meta.get("learner"), "metrics": meta.get("metrics")}


def in_memory_input_shape(member: Any) -> tuple:
    """One example's shape for an in-memory member: a tfmeta learner's example spec, or the
    member's `input_shape` without a leading batch axis (None)."""
    spec = getattr(member, "_example_spec", None)
    shape = spec() if callable(spec) else getattr(member, "input_shape", None)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(
            f"`members` entry {type(member).__name__} has `few_shot_probabilities` but no input "
            f"shape (`input_shape`); received input_shape={shape!r}."
        )
    shape = tuple(shape)
    return shape[1:] if shape[0] is None else shape


def _load_member(member: Any) -> tuple:
    """`(tracked object, signature, probabilities fn, version dir or None, input shape, label)`."""
    if isinstance(member, (str, os.PathLike)):
        loaded, signature, path = export_lib.load_few_shot_signature(str(member))
        return (loaded, signature, export_lib.few_shot_function(signature), path,
                export_lib.few_shot_input_shape(signature), path)
    if not callable(getattr(member, "few_shot_probabilities", None)):
        raise ValueError(
            "`members` must be few_shot SavedModel paths or learners with `few_shot_probabilities`; "
            f"received {type(member).__name__}."
        )
    label = f"the in-memory {type(member).__name__}"
    shape = in_memory_input_shape(member)
    return member, member.few_shot_probabilities, compiled_probabilities(member), None, shape, label


def _check_per_member(name: str, values, count: int, allow_zero: bool) -> list[float]:
    """Validates one weight (`allow_zero`) or one temperature per member."""
    values = [float(v) for v in values]
    if len(values) != count:
        raise ValueError(
            f"`{name}` must give one {name[:-1]} per member ({count}); received {len(values)}."
        )
    bad = any(not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero) for v in values)
    if bad or sum(values) <= 0:
        expected = "non-negative and not all zero" if allow_zero else "positive"
        raise ValueError(f"`{name}` must be finite, {expected}; received {values}.")
    return values


def temper(probabilities: tf.Tensor, temperature) -> tf.Tensor:
    """`softmax(log(p) / T)`: T > 1 softens the distribution, T < 1 sharpens it, T = 1 keeps it."""
    logits = tf.math.log(tf.maximum(probabilities, _MIN_PROBABILITY))
    return tf.nn.softmax(logits / tf.cast(temperature, logits.dtype), axis=-1)


def _fit_temperature(log_probs: np.ndarray, labels: np.ndarray, grid: np.ndarray) -> float:
    """The temperature of `grid` with the lowest negative log-likelihood of `labels`."""
    rows = np.arange(len(labels))
    best, best_nll = 1.0, np.inf
    for t in grid:
        z = log_probs / t
        z = z - z.max(-1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(z).sum(-1)) - z[rows, labels]))
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best


class FewShotEnsemble(tf.Module):
    """Averages the class probabilities of several few-shot models.

    Args:
        members: At least two members, each the path of a SavedModel with a `few_shot`
            signature (a version directory, or a base directory: its newest version) or a
            learner in memory (`few_shot_probabilities` and an input shape; its variables are
            exported with the ensemble). Their images must have the same number of channels;
            their sizes may differ (see below).
        weights: Optional non-negative weight per member (normalised to sum to 1); equal
            weights by default.
        temperatures: Optional positive temperature per member: its probabilities become
            `softmax(log(p) / T)` before the vote. All 1 (no change) by default; `calibrate`
            fits them on validation episodes.
        name: Module name.

    Members trained at different image sizes (a 28 x 28 MAML and a 56 x 56 prototypical
    network, say) vote together: the ensemble takes images of the largest member size and,
    inside its graph, area-resizes them to each smaller (or differently shaped) member's size.
    Area resizing approximates how the Omniglot loaders downsample (PIL's box filter), not
    exactly, so a smaller member may score a little differently than on images decoded at its
    own size.

    Attributes:
        member_paths: The members' resolved version directories (None for a member in memory).
        member_signatures: Their `few_shot` functions, in the same order: the loaded concrete
            function, or the in-memory member's `few_shot_probabilities`.
        weights: The normalised weights.
        temperatures: The members' temperatures (floats; saved with the export as variables).

    Raises:
        ValueError: Fewer than two members, a member without a `few_shot` signature (or
            without `few_shot_probabilities` and an input shape in memory), members
            whose images differ in rank or channels, or bad weights or temperatures.
    """

    def __init__(
        self,
        members: Sequence[Any],
        weights: Sequence[float] | None = None,
        temperatures: Sequence[float] | None = None,
        name: str = "few_shot_ensemble",
    ):
        super().__init__(name=name)
        if isinstance(members, (str, os.PathLike)) or len(members) < 2:
            received = repr(members) if isinstance(members, (str, os.PathLike)) else f"{len(members)}"
            raise ValueError(
                f"`members` must list at least 2 few_shot SavedModels or learners; received {received}."
            )
        count = len(members)
        weights = _check_per_member(
            "weights", [1.0] * count if weights is None else weights, count, allow_zero=True)
        temperatures = _check_per_member(
            "temperatures", [1.0] * count if temperatures is None else temperatures, count,
            allow_zero=False,
        )
        loaded, signatures, fns, paths, shapes, labels = zip(*(_load_member(member) for member in members))
        if len(set(shapes)) > 1:  # only images of fully known sizes and equal channels can differ
            for shape, label in zip(shapes, labels):
                if len(shape) != 3 or None in shape or shape[2] != shapes[0][2] or len(shapes[0]) != 3:
                    raise ValueError(
                        "Members must take inputs of one shape, or [height, width, channels] "
                        f"images of known sizes with the same channels: {labels[0]} takes "
                        f"{shapes[0]}, {label} takes {shape}."
                    )
        # The largest member size (first on ties) is the ensemble's; the others resize to theirs.
        shape = max(shapes, key=lambda s: int(np.prod([d or 0 for d in s[:2]])))
        self._member_sizes = [tuple(s[:2]) for s in shapes]
        self._members = list(loaded)  # tracked: the members' variables are saved with the ensemble
        self.member_signatures = list(signatures)
        object.__setattr__(self, "_member_functions", list(fns))  # untracked; `_members` holds the variables
        self.member_paths = list(paths)
        self.weights = [w / sum(weights) for w in weights]
        self._temperatures = [
            tf.Variable(t, trainable=False, dtype=tf.float32, name=f"temperature_{i}")
            for i, t in enumerate(temperatures)
        ]
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

    @property
    def temperatures(self) -> list[float]:
        return [float(t.numpy()) for t in self._temperatures]

    def member_probabilities(self, index: int, support_x, support_y, query_x) -> tf.Tensor:
        """`[Q, N]` probabilities of member `index` (untempered), as the ensemble asks it.

        The images (of the ensemble's `input_shape`) are area-resized to the member's size
        first when it differs.
        """
        size = tuple(self._member_sizes[index])
        if size != tuple(self.input_shape[:2]):
            support_x = tf.image.resize(support_x, size, method="area")
            query_x = tf.image.resize(query_x, size, method="area")
        return self._member_functions[index](support_x, support_y, query_x)

    def _few_shot(self, support_x, support_y, query_x):
        # The exported signature checks its episode in the graph, as every learner's does.
        support_x, support_y, query_x = checked_episode(support_x, support_y, query_x)
        total = None
        for index, (weight, temperature) in enumerate(zip(self.weights, self._temperatures)):
            probs = temper(self.member_probabilities(index, support_x, support_y, query_x), temperature)
            total = weight * probs if total is None else total + weight * probs
        return {"probabilities": total}

    def calibrate(
        self,
        x,
        y,
        ways: int,
        shots: int,
        queries: int = 15,
        episodes: int = 100,
        seed: int = 4321,
        grid: Sequence[float] | None = None,
    ) -> list[float]:
        """Fits each member's temperature on validation episodes; returns the temperatures.

        Every member scores the same `episodes` N-way K-shot episodes from `(x, y)`; its
        temperature is the one of `grid` (default: 121 values from 0.01 to 100, log-spaced) that
        minimises the negative log-likelihood of the query labels (temperature scaling, Guo et
        al. 2017). A temperature never changes a member's own predictions, only its say in the
        vote. Use other episodes (another `seed`, or other classes) than those that score the
        ensemble afterwards.
        """
        grid = np.geomspace(0.01, 100.0, 121) if grid is None else np.asarray(grid, np.float64)
        if grid.ndim != 1 or len(grid) == 0 or np.any(~np.isfinite(grid)) or np.any(grid <= 0):
            raise ValueError(f"`grid` must list positive temperatures; received {grid.tolist()}.")
        sampler = episode_sampler(x, y, ways, shots, queries, seed)
        log_probs = [[] for _ in self.member_signatures]
        labels = []
        for sx, sy, qx, qy in iterate_episodes(sampler, episodes, seed):
            args = (tf.cast(sx[0], tf.float32), tf.cast(sy[0], tf.int32), tf.cast(qx[0], tf.float32))
            for index, member_log_probs in enumerate(log_probs):
                probs = self.member_probabilities(index, *args).numpy().astype(np.float64)
                member_log_probs.append(np.log(np.maximum(probs, _MIN_PROBABILITY)))
            labels.append(qy[0].numpy())
        labels = np.concatenate(labels).astype(np.int64)
        for variable, member_log_probs in zip(self._temperatures, log_probs):
            variable.assign(_fit_temperature(np.concatenate(member_log_probs), labels, grid))
        return self.temperatures

    def few_shot_probabilities(self, support_x, support_y, query_x) -> tf.Tensor:
        """`[Q, N]` ensemble probabilities for one episode (tensors; no validation)."""
        return self.few_shot(
            tf.convert_to_tensor(support_x, tf.float32),
            tf.cast(support_y, tf.int32),
            tf.convert_to_tensor(query_x, tf.float32),
        )["probabilities"]

    def predict_few_shot(self, support_x, support_y, query_x) -> np.ndarray:
        """Validates an episode given as arrays and returns `[Q, N]` probabilities (numpy)."""
        support_x, support_y, query_x, _ = check_support_set(support_x, support_y, query_x)
        return self.few_shot_probabilities(support_x, support_y, query_x).numpy()

    probabilities = few_shot_probabilities  # the name before the few-shot protocol's

    def evaluate_episodes(
        self, x, y, ways: int, shots: int, queries: int = 15, episodes: int = 600, seed: int = 1234
    ) -> dict:
        """Mean accuracy and 95% CI over `episodes` N-way K-shot episodes from `(x, y)`.

        The same `seed` gives the same episodes as a learner's `evaluate_episodes`, so an
        ensemble and its members are compared on identical tasks.
        """
        return evaluate_on_arrays(self, x, y, ways, shots, queries, episodes, seed)

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
                _member_summary(path, member, weight, temperature)
                for path, member, weight, temperature in zip(
                    self.member_paths, self._members, self.weights, self.temperatures)
            ],
            "signatures": ["few_shot", "serving_default"],
        }
        meta.update(metadata or {})
        return export_lib.write_version(base_dir, write, meta, version=version)
