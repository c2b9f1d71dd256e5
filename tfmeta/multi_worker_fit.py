"""`fit` under `MultiWorkerMirroredStrategy`, which Keras 3 (3.15) breaks in two places.

Keras's TensorFlow trainer, only when the strategy spans several worker processes:

1. builds the model before the first step from the mean over replicas of the whole first
   batch, one `strategy.reduce` of a nested structure, which the multi-worker strategy
   refuses (`ValueError: Attempt to convert a value (PerReplica...)`);
2. reduces every value a train step returns with `strategy.reduce("MEAN", value, axis=0)`,
   which fails for the scalar metric results every train step returns.

(keras-team/keras#20585.) `MultiWorkerFitMixin` works around both for tfmeta's learners: the
build uses the first replica's share of the batch (building needs only shapes and dtypes),
and under a multi-worker strategy the step results get a leading axis of 1, so the mean over
the gathered replicas (whose metric results are equal: the metrics aggregate over replicas)
is the scalar again. Without a multi-worker strategy nothing changes.

The learners and the search networks (the ENAS supernet, DARTS) carry the mixin; the plain
networks tfmeta builds (NAS children, the AutoModel networks of arrays, tables, text and image
folders) are `FunctionalModel`s: functional Keras models (Keras 3 builds a functional model
of any `keras.Model` subclass called with `inputs` and `outputs`) of a registered subclass
that carries it. A `.keras` file of one reloads as a `FunctionalModel` once a module that
defines or builds them is imported (this one, `tfmeta.nas.builders` or `tfmeta.automodel`; the
lazy `import tfmeta` alone does not); their SavedModel exports need nothing of tfmeta.

Example:

>>> class MyLearner(MultiWorkerFitMixin, keras.Model): ...
>>> strategy = tf.distribute.MultiWorkerMirroredStrategy()    # TF_CONFIG names the workers
>>> with strategy.scope():
...     model = MyLearner(); model.compile(optimizer="adam")
>>> model.fit(dataset)                                          # doctest: +SKIP
"""

from __future__ import annotations

import keras
import tensorflow as tf


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` spanning several workers."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.extended._in_multi_worker_mode()
    )


def _first_replica(strategy, value):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


class MultiWorkerFitMixin:
    """Makes `keras.Model.fit`/`evaluate` work under a multi-worker strategy (see the module)."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if is_multi_worker(strategy) and iterator is not None and data_batch is None:
            for _, _, batches in iterator:  # as Keras does: the first batch of the epoch iterator
                data_batch = tf.nest.map_structure(lambda v: _first_replica(strategy, v), next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _make_function(self, step_function):
        if not is_multi_worker(getattr(self, "_distribute_strategy", None)):
            return super()._make_function(step_function)

        def step_with_batch_axis(data):
            return tf.nest.map_structure(lambda t: tf.reshape(t, [1]), step_function(data))

        return super()._make_function(step_with_batch_axis)


@keras.saving.register_keras_serializable(package="tfmeta")
class FunctionalModel(MultiWorkerFitMixin, keras.Model):
    """A functional `keras.Model` that also fits under a multi-worker strategy.

    Built and used exactly like `keras.Model(inputs, outputs, name=...)` (Keras makes it a
    functional model); only `fit`/`evaluate` under `MultiWorkerMirroredStrategy` differ, by
    the mixin's workaround. Saved as `tfmeta>FunctionalModel` in `.keras` files.

    Example:

    >>> inputs = keras.Input((4,))
    >>> model = FunctionalModel(inputs, keras.layers.Dense(2)(inputs), name="net")
    >>> model.output_shape
    (None, 2)
    """


__all__ = ["MultiWorkerFitMixin", "FunctionalModel", "is_multi_worker"]
