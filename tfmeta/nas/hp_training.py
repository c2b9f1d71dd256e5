"""`HyperparameterTrainer`: trains a trial's child with the hyperparameters its decisions carry.

With a `SpaceWithHyperparameters`, an architecture holds both the network's decisions and
training hyperparameters. `HyperparameterTrainer` gives `ArchitectureSearch` the two hooks it
needs: `build_model(arch)` builds the network from the architecture part and compiles it with
AdamW at the searched learning rate and weight decay, and `fit_model(arch, model, ...)` fits
with the searched batch size. Hyperparameters the trainer does not know (your own) reach
`build_model(arch, hyperparameters)` when that function accepts a second argument.

Example:

>>> from tfmeta import nas
>>> space = nas.SpaceWithHyperparameters(nas.MacroSpace(num_layers=2))
>>> trainer = HyperparameterTrainer(space, lambda a: nas.build_macro_model(space.base, a, (8, 8, 1), 10))
>>> search = nas.ArchitectureSearch(space, build_model=trainer.build_model,
...                                 fit_model=trainer.fit_model, strategy="tpe")  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import keras

from tfmeta.nas.space import Architecture, SpaceWithHyperparameters
from tfmeta.training_state import build_training_state


class HyperparameterTrainer:
    """`build_model` / `fit_model` hooks applying a trial's learning rate, weight decay, batch size.

    Args:
        space: The `SpaceWithHyperparameters` searched.
        build_model: `build_model(arch)` (or `build_model(arch, hyperparameters)`) returning an
            uncompiled `keras.Model` for an architecture of `space.base`.
        compile_kwargs: `compile` arguments besides the optimizer (default: sparse categorical
            cross-entropy and accuracy).
    """

    def __init__(self, space: SpaceWithHyperparameters, build_model: Callable[..., keras.Model],
                 compile_kwargs: Mapping[str, Any] | None = None):
        if not isinstance(space, SpaceWithHyperparameters):
            raise ValueError(f"`space` must be a SpaceWithHyperparameters; received {type(space).__name__}.")
        self.space = space
        self._build = build_model
        self._takes_hps = len(inspect.signature(build_model).parameters) >= 2
        self.compile_kwargs = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                               **dict(compile_kwargs or {})}

    def optimizer(self, values: Mapping[str, Any]) -> keras.optimizers.Optimizer:
        """AdamW at the trial's learning rate and weight decay (defaults 1e-3 and 0)."""
        return keras.optimizers.AdamW(learning_rate=float(values.get("learning_rate", 1e-3)),
                                      weight_decay=float(values.get("weight_decay", 0.0)))

    def build_model(self, arch: Architecture) -> keras.Model:
        """The compiled child of a trial."""
        base, values = self.space.split(arch)
        model = self._build(base, values) if self._takes_hps else self._build(base)
        model.compile(optimizer=self.optimizer(values), **self.compile_kwargs)
        return model

    def fit_model(self, arch: Architecture, model: keras.Model, *args, **kwargs):
        """`model.fit` with the trial's batch size (when searched)."""
        _, values = self.space.split(arch)
        if "batch_size" in values:
            kwargs["batch_size"] = int(values["batch_size"])
        x = args[0] if args else kwargs.get("x")
        y = args[1] if len(args) > 1 else kwargs.get("y")
        build_training_state(model, x, y)
        return model.fit(*args, **kwargs)
