"""In-graph checks of a few-shot episode, run by every exported `few_shot` signature.

A SavedModel is called without tfmeta (TF Serving, `tf.saved_model.load`), so the checks the
Python API makes with numpy (`tfmeta.data.validation.check_support_set`) must live in the
graph too: otherwise support labels `[1, 2]` silently give a phantom class 0, `[3, 9]` ten
classes, and `[0, 0]` or `[-1, 0]` a probability of 1.0. `checked_episode` adds
`tf.debugging.Assert` ops that raise `tf.errors.InvalidArgumentError` (HTTP 400 through a
server) naming the input, what is expected and what was received. They are saved with the
graph and survive export; under XLA (`jit_compile=True`) TensorFlow compiles asserts to
no-ops, so the checks cost nothing there and never prevent compilation (they use no
dynamic shapes).

Example:

>>> sx, sy, qx = checked_episode(tf.zeros([2, 3]), tf.constant([0, 1]), tf.zeros([1, 3]))
>>> checked_episode(tf.zeros([2, 3]), tf.constant([1, 2]), tf.zeros([1, 3]))
Traceback (most recent call last):
...
tensorflow.python.framework.errors_impl.InvalidArgumentError: ...
"""

from __future__ import annotations

import tensorflow as tf

#: How many values an error message shows at most.
SHOWN_VALUES = 64


def _labels_error(support_y: tf.Tensor) -> list:
    return [
        "few_shot: `support_y` must hold the integer class ids 0..N-1 with every class present "
        "and N >= 2 (N = number of classes in the support set); received support_y =",
        support_y,
    ]


def checked_episode(support_x, support_y, query_x):
    """Returns `(support_x, support_y, query_x)` after in-graph checks of the episode.

    Checks: one label per support example; labels are 0..N-1 with every class present and
    at least 2 classes; support and query examples are finite. (The example shapes are fixed
    by the signature itself.)

    Raises:
        tf.errors.InvalidArgumentError: When the graph runs on a bad episode.
    """
    support_y = tf.convert_to_tensor(support_y)
    labels = tf.sort(tf.reshape(support_y, [-1]))
    gaps = labels[1:] - labels[:-1]
    # Sorted labels cover 0..max with no gap iff the smallest is 0 and no step exceeds 1.
    # (An empty support set has min = the dtype's maximum, so it fails too.)
    labels_ok = tf.logical_and(
        tf.logical_and(tf.equal(tf.reduce_min(labels), 0), tf.reduce_all(gaps <= 1)),
        tf.reduce_max(labels) >= 1,
    )
    support_count, label_count = tf.shape(support_x)[0], tf.shape(support_y)[0]
    bad_support_x = tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(support_x)), tf.int32))
    bad_query_x = tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(query_x)), tf.int32))
    checks = [
        tf.debugging.Assert(
            tf.equal(support_count, label_count),
            ["few_shot: `support_y` must have one label per `support_x` example; expected",
             support_count, "labels, received", label_count],
        ),
        tf.debugging.Assert(labels_ok, _labels_error(support_y), summarize=SHOWN_VALUES),
        tf.debugging.Assert(
            tf.equal(bad_support_x, 0),
            ["few_shot: `support_x` must be finite; received", bad_support_x, "NaN or infinite values"],
        ),
        tf.debugging.Assert(
            tf.equal(bad_query_x, 0),
            ["few_shot: `query_x` must be finite; received", bad_query_x, "NaN or infinite values"],
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(support_x), tf.identity(support_y), tf.identity(query_x)
