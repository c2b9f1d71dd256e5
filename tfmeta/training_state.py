"""Training variables created before the first `fit`, so that its train step is traced once.

On the TensorFlow backend without a distribution strategy, Keras 3 creates the optimizer's
variables (and a compiled model's metric and loss variables) inside the first traced train
step. Because variables were created during that trace, `tf.function` then traces the step a
second time, and tracing is most of a short run's cost on a CPU. Creating them first saves
that whole second trace (`benchmarks/first_fit_traces.py` measures it; docs/performance.md).

- `build_training_state(model, x, y)`: for compiled Keras models (search children, the ENAS
  supernet): builds the optimizer, and with a sample batch the compiled metrics and loss.
- `PrebuiltOptimizerMixin`: for learners with their own `train_step` (prototypical, matching
  and relation networks, MAML, Reptile, `EpisodeDistiller`), whose metrics are created with
  the model: `fit()` and `train_on_batch()` build the optimizer on `optimized_variables()` first.

Example:

>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> build_training_state(model, x_train, y_train)   # doctest: +SKIP
>>> model.fit(x_train, y_train)                      # one trace of the train step  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfmeta.multi_worker_fit import MultiWorkerFitMixin


def build_training_state(model: keras.Model, x: Any = None, y: Any = None) -> None:
    """Creates a compiled model's optimizer, metric and loss variables before its first `fit`.

    Args:
        model: A compiled Keras model (anything else is left alone).
        x: Optional sample inputs: an array or tensor (or a dict of them, for models with
            named inputs), of which the first two rows are used.
        y: Optional sample targets matching `x`.

    With a sample, the compiled metrics and loss are built from one inference-mode call of the
    model (which also builds a model not built yet): no weight or batch-norm statistic
    changes, and the metrics are reset afterwards. Without one, only the optimizer of a built
    model is built (Keras then still traces twice, for the metrics).
    """
    if getattr(model, "optimizer", None) is None:
        return  # not compiled
    sample = (_is_array(x) or (isinstance(x, dict) and x and all(map(_is_array, x.values())))) and _is_array(y)
    if sample:
        x_sample = {k: v[:2] for k, v in x.items()} if isinstance(x, dict) else x[:2]
        y_sample = y[:2]
        y_pred = model(x_sample, training=False)  # also builds any layer not built yet
    if not _build_optimizer(model, model.trainable_variables):
        return
    if sample:
        model.compute_loss(x=x_sample, y=y_sample, y_pred=y_pred, training=False)
        model.compute_metrics(x_sample, y_sample, y_pred, sample_weight=None)
        model.reset_metrics()


class PrebuiltOptimizerMixin(MultiWorkerFitMixin):
    """Builds a learner's optimizer before its train step is first traced.

    For `keras.Model` subclasses with their own `train_step` that apply gradients to
    `optimized_variables()` (by default `trainable_variables`) and create their metrics with
    the model: `fit()` and `train_on_batch()` build the optimizer first. A model with layers
    not built yet (variables still to come) is left to Keras.
    """

    def optimized_variables(self) -> list:
        """The variables `train_step` applies gradients to."""
        return self.trainable_variables

    def build_optimizer(self) -> None:
        """Creates the optimizer's variables now (once compiled and built; else does nothing)."""
        _build_optimizer(self, self.optimized_variables())

    def fit(self, *args, **kwargs):
        self.build_optimizer()
        return super().fit(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self.build_optimizer()
        return super().train_on_batch(*args, **kwargs)

    # Keras's own documentation of the two methods (help() would otherwise show none).
    fit.__doc__ = inspect.getdoc(keras.Model.fit)
    train_on_batch.__doc__ = inspect.getdoc(keras.Model.train_on_batch)


def _build_optimizer(model: keras.Model, variables: list) -> bool:
    """Builds a compiled, fully built model's optimizer on `variables` (once).

    Returns False, building nothing, when the model is not compiled or has layers not built yet
    (an optimizer built now would miss the variables they will create).
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not _fully_built(model):
        return False
    if not optimizer.built and variables:
        with model.distribute_strategy.scope():  # the model's strategy owns the optimizer state
            optimizer.build(variables)
    return True


def _fully_built(model: keras.Model) -> bool:
    """Whether every layer has its variables (an unbuilt one would add some in the trace)."""
    flatten = getattr(model, "_flatten_layers", None)
    return flatten is not None and all(layer.built for layer in flatten())


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, tf.Tensor)) and len(value.shape) > 0
