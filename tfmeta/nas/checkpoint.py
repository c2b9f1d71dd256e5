"""A model's and its optimizer's variables in one `.npz`, written atomically and checked on load.

A weight-sharing search checkpoints its supernet after every trial, so a killed search
resumes with the shared weights and the optimizer state it had. The file is replaced in one
`os.replace`, so a kill while writing leaves the previous checkpoint intact. String
`settings` stored beside the weights (e.g. how the weights were trained) are compared on load,
as are the variable shapes, so a search never resumes weights of another network.

Example:

>>> save_checkpoint("runs/enas/shared_weights.npz", network, {"train_paths": "trial"})  # doctest: +SKIP
>>> load_checkpoint("runs/enas/shared_weights.npz", network, {"train_paths": "trial"})  # doctest: +SKIP
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf


@tf.function
def _read_all(variables):
    return [tf.identity(v) for v in variables]  # one call instead of one read per variable


def save_checkpoint(path: str, model: keras.Model, settings: dict | None = None) -> None:
    """Writes the model's and its optimizer's variables to one `.npz`, atomically.

    `settings` (string values) are stored beside them, for `load_checkpoint` to check.
    """
    weights = [v.value for v in model.weights]
    arrays = {f"w{i}": t.numpy() for i, t in enumerate(_read_all(weights))}
    arrays.update({f"setting_{k}": np.asarray(str(v)) for k, v in (settings or {}).items()})
    if model.optimizer is not None:
        slots = [v.value for v in model.optimizer.variables]
        arrays.update({f"o{i}": t.numpy() for i, t in enumerate(_read_all(slots))})
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_checkpoint(path: str, model: keras.Model, settings: dict | None = None) -> None:
    """Restores what `save_checkpoint` wrote (the optimizer must be built).

    Raises ValueError if the checkpoint was written with other `settings` (a setting it does
    not record, as in checkpoints written before settings were stored, is not checked).
    """
    with np.load(path) as data:
        for key, value in (settings or {}).items():
            stored_value = str(data[f"setting_{key}"]) if f"setting_{key}" in data.files else None
            if stored_value is not None and stored_value != str(value):
                raise ValueError(
                    f"{path} holds shared weights trained with `{key}={stored_value!r}`; this search "
                    f"was given `{key}={value!r}`. Resume with `{key}={stored_value!r}`, or use "
                    "another `project_name`, or `overwrite=True`."
                )
        stored = [data[f"w{i}"].shape for i in range(sum(k.startswith("w") for k in data.files))]
        wanted = [tuple(v.shape) for v in model.weights]
        if stored != wanted:
            raise ValueError(
                f"{path} holds the shared weights of another network ({len(stored)} variables); this search "
                f"builds {len(wanted)} of other shapes. Use the same space, filters and num_reductions, "
                "another `project_name`, or `overwrite=True`."
            )
        for i, v in enumerate(model.weights):
            v.assign(data[f"w{i}"])
        if model.optimizer is not None:
            for i, v in enumerate(model.optimizer.variables):
                if f"o{i}" in data:
                    v.assign(data[f"o{i}"])
