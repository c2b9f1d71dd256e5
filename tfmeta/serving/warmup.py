"""Warm-up requests in TF Serving's format: written by every export, replayed on every load.

TF Serving replays `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord of
`PredictionLog` protos) before a version takes traffic, so the first real request does not
pay for tracing and graph optimisation. `write_warmup_requests` writes one small request per
signature (zeros of batch 1; `few_shot` a support set of classes 0 and 1) built with the
`tensorflow_serving.apis` protos, keeping only requests that the signature runs without error;
`replay_warmup_requests` does what TF Serving does for `tfmeta serve`.

Example:

>>> write_warmup_requests("saved_models/digits/.tmp-1", "digits", endpoints)
>>> [log.predict_log.request.model_spec.signature_name for log in read_warmup_requests(path)]
['serving_default']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's own cap

logger = logging.getLogger("tfmeta.serving")


def _named_specs(signature: Sequence) -> list[tuple[str, tf.TensorSpec]]:
    """`(input name, spec)` of an input signature: a list of specs, or one dict of them."""
    if len(signature) == 1 and isinstance(signature[0], Mapping):
        return list(signature[0].items())
    return [(spec.name, spec) for spec in signature]


def _call(fn: Callable, signature: Sequence, arrays: Mapping[str, np.ndarray]):
    if len(signature) == 1 and isinstance(signature[0], Mapping):
        return fn({k: tf.constant(arrays[k]) for k in signature[0]})
    return fn(*[tf.constant(arrays[spec.name]) for spec in signature])


def example_inputs(signature: Sequence) -> dict[str, np.ndarray]:
    """Small inputs matching a signature: every unknown dimension 1, zeros (empty strings).

    The `few_shot` contract's support set gets two examples labelled 0 and 1, a valid episode.
    """
    arrays = {}
    for name, spec in _named_specs(signature):
        support = name.startswith("support_")
        shape = [(2 if support and i == 0 else 1) if d is None else d for i, d in enumerate(spec.shape.as_list())]
        if name == "support_y" and spec.dtype.is_integer and len(shape) == 1:
            arrays[name] = np.arange(shape[0]).astype(spec.dtype.as_numpy_dtype)
        elif spec.dtype == tf.string:
            arrays[name] = np.full(shape, b"", dtype=object)
        else:
            arrays[name] = np.zeros(shape, spec.dtype.as_numpy_dtype)
    return arrays


def warmup_request(model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray]):
    """A `PredictionLog` holding one `PredictRequest`."""
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def write_warmup_requests(
    version_dir: str,
    model_name: str,
    endpoints: Mapping[str, tuple[Callable[..., Any], Sequence[tf.TensorSpec]]],
) -> list[str]:
    """Writes one warm-up request per signature that runs on `example_inputs`.

    Args:
        version_dir: The (temporary) version directory of the export.
        model_name: Written into each request's `model_spec`.
        endpoints: `{signature name: (fn, input_signature)}`, as given to the export.

    Returns:
        The names of the signatures that have a warm-up request.
    """
    from tfmeta.serving.servable import (
        read_signature_defs,  # servable replays these files
    )

    written = read_signature_defs(version_dir) if os.path.exists(os.path.join(version_dir, "saved_model.pb")) else None
    logs, names = [], []
    for name, (fn, signature) in endpoints.items():
        inputs = example_inputs(signature)
        if written is not None and (name not in written or set(written[name].inputs) != set(inputs)):
            logger.info("No warm-up request for signature %r: its saved input names differ", name)
            continue
        try:
            _call(fn, signature, inputs)
        except Exception as error:  # an input that zeros cannot stand for: no warm-up for it
            logger.info("No warm-up request for signature %r: %s", name, error)
            continue
        logs.append(warmup_request(model_name, name, inputs))
        names.append(name)
    if logs:
        path = os.path.join(version_dir, WARMUP_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tf.io.TFRecordWriter(path) as writer:
            for log in logs:
                writer.write(log.SerializeToString())
    return names


def read_warmup_requests(version_dir: str) -> list[prediction_log_pb2.PredictionLog]:
    """The `PredictionLog`s of a version's warm-up file (empty when it has none)."""
    path = os.path.join(version_dir, WARMUP_FILE)
    if not os.path.exists(path):
        return []
    records = tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS)
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]


def replay_warmup_requests(servable) -> int:
    """Runs a loaded `Servable`'s warm-up requests; raises if one fails (the load fails)."""
    count = 0
    for log in read_warmup_requests(servable.path):
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        servable.run(request.model_spec.signature_name or "serving_default", inputs)
        count += 1
    return count
