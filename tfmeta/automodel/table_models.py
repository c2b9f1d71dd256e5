"""The search space and model builder for tables: encodings, widths and training settings.

On tables the choices that matter are not only layer widths: the encoding of numbers and of
categories, the learning rate, the batch size, dropout and weight decay. `table_space()` puts
them all in one `tfmeta.nas.SearchSpace`, so every strategy (controller, evolution, random)
searches them together, and `build_table_model` builds and compiles the trial's model on top
of the shared `TablePreprocessing`.

Example:

>>> space = table_space(rows=6000)
>>> arch = initial_architectures(space)[0]
>>> model = build_table_model(pre, space, arch, outputs=2, task="classification")  # on decoded rows
"""

from __future__ import annotations

from typing import Any

import keras

from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.automodel.table_preprocessing import CATEGORICAL_ENCODINGS, NUMERIC_ENCODINGS, TablePreprocessing
from tfmeta.nas.space import Architecture, Decision, SearchSpace

#: The first trials of a table search: a multi-layer network that does well on most tables, and
#: a generalised additive model (every column's encoding, then the output layer alone), strong
#: on small tables; two families, so that the refit ensemble averages unlike models.
DEFAULT_TABLE_CHOICES = {
    "numeric_encoding": "ple",
    "categorical_encoding": "embedding",
    "layer0/units": 256,
    "layer1/units": 128,
    "layer2/units": 0,
    "dropout": 0.1,
    "learning_rate": 1e-3,
    "weight_decay": 1e-5,
}
ADDITIVE_TABLE_CHOICES = {
    "numeric_encoding": "ple",
    "categorical_encoding": "onehot",
    "layer0/units": 0,
    "layer1/units": 0,
    "layer2/units": 0,
    "dropout": 0.0,
    "learning_rate": 1e-2,
    "weight_decay": 1e-4,
}


def batch_sizes(rows: int) -> tuple[int, ...]:
    """Batch-size choices for a table of `rows` rows (larger tables, larger batches)."""
    if rows >= 200_000:
        return (256, 512, 1024)
    if rows >= 20_000:
        return (128, 256, 512)
    if rows >= 2_000:
        return (64, 128, 256)
    if rows >= 500:
        return (16, 32, 64)
    return (8, 16, 32)


def table_space(rows: int, num_layers: int = 3, name: str = "table") -> SearchSpace:
    """The table search space: encodings, `num_layers` widths (0 skips), training settings."""
    decisions = [
        Decision("numeric_encoding", NUMERIC_ENCODINGS),
        Decision("categorical_encoding", CATEGORICAL_ENCODINGS),
    ]
    widths = (0, 64, 128, 256, 512)
    decisions += [Decision(f"layer{i}/units", widths) for i in range(num_layers)]
    decisions += [
        Decision("dropout", (0.0, 0.1, 0.2, 0.3)),
        Decision("learning_rate", (3e-4, 1e-3, 3e-3, 1e-2)),
        Decision("weight_decay", (0.0, 1e-5, 1e-4, 1e-3)),
        Decision("batch_size", batch_sizes(rows)),
    ]
    return SearchSpace(decisions, name=name, kind="table")


def initial_architectures(space: SearchSpace) -> list[Architecture]:
    """`DEFAULT_TABLE_CHOICES` and `ADDITIVE_TABLE_CHOICES` in `space` (the middle batch size)."""
    architectures = []
    for defaults in (DEFAULT_TABLE_CHOICES, ADDITIVE_TABLE_CHOICES):
        values = {}
        for decision in space.decisions:
            choice = defaults.get(decision.name)
            if choice not in decision.choices:
                middle = decision.choices[len(decision.choices) // 2]
                choice = middle if decision.name == "batch_size" else decision.choices[0]
            values[decision.name] = choice
        architectures.append(space.from_dict(values))
    return architectures


def optimizer_for(choices: dict[str, Any]) -> keras.optimizers.Optimizer:
    """AdamW with the trial's learning rate and weight decay (Adam when the decay is 0)."""
    if choices.get("weight_decay", 0.0):
        return keras.optimizers.AdamW(learning_rate=choices["learning_rate"], weight_decay=choices["weight_decay"])
    return keras.optimizers.Adam(learning_rate=choices["learning_rate"])


def head(hidden, outputs: int, task: str, target_mean: float = 0.0, target_std: float = 1.0):
    """Softmax over classes, or a linear output rescaled to the target's scale (regression)."""
    if task == "classification":
        return keras.layers.Dense(outputs, activation="softmax", name="probabilities")(hidden)
    raw = keras.layers.Dense(outputs, name="standardized_values")(hidden)
    return keras.layers.Rescaling(target_std, offset=target_mean, name="values")(raw)


def compile_for(model: keras.Model, choices: dict[str, Any], task: str) -> keras.Model:
    """Compiles a trial's model: its optimizer, and the task's loss and metric."""
    classification = task == "classification"
    model.compile(
        optimizer=optimizer_for(choices),
        loss="sparse_categorical_crossentropy" if classification else "mse",
        metrics=["accuracy"] if classification else ["mae"],
    )
    return model


def build_table_model(pre: TablePreprocessing, space: SearchSpace, arch: Architecture, outputs: int,
                      task: str, target_mean: float = 0.0, target_std: float = 1.0) -> keras.Model:
    """Decoded columns (`pre.decoder()`'s outputs) -> the trial's encodings -> dense layers -> head,
    compiled for the trial. Put `pre.decoder()` in front of it to take raw rows."""
    choices = space.validate(arch).as_dict()
    inputs = pre.decoded_inputs()
    hidden = pre.features(inputs, choices["numeric_encoding"], choices["categorical_encoding"])
    for i in range(sum(1 for d in space.decisions if d.name.endswith("/units"))):
        units = choices[f"layer{i}/units"]
        if units:
            hidden = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(hidden)
            if choices["dropout"]:
                hidden = keras.layers.Dropout(choices["dropout"], name=f"dropout{i}")(hidden)
    model = FunctionalModel(inputs, head(hidden, outputs, task, target_mean, target_std), name="table_model")
    return compile_for(model, choices, task)
