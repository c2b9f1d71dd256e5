"""One loaded model version: its SavedModel, its signature definitions, and how to run them.

A `Servable` is what the REST and gRPC front ends call: `run(signature_name, inputs)` checks
the input names against the signature (TF Serving's messages), converts each array to the
signature's dtype, calls the signature (through a `Batcher` when batching is on and the
signature has a batch dimension) and returns numpy arrays. Every failure is a `ServingError`
carrying TensorFlow's full message. Loading also replays the version's warm-up requests
(`assets.extra/tf_serving_warmup_requests`) as TF Serving does, so the first real request
finds its functions traced.

Example:

>>> servable = Servable.load("digits", 1, "saved_models/digits/1")
>>> servable.run("serving_default", {"x": np.zeros((1, 8, 8), np.float32)})["classes"]
array([0], dtype=int32)
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Mapping
from concurrent.futures import Executor

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from tfmeta.serving.batching import Batcher, BatchingOptions, is_batchable
from tfmeta.serving.errors import from_exception, invalid_argument

DEFAULT_SIGNATURE = "serving_default"


def read_signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The serving `SignatureDef`s of a SavedModel directory (internal ones left out)."""
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        model = saved_model_pb2.SavedModel.FromString(f.read())
    if not model.meta_graphs:
        raise ValueError(f"{path}/saved_model.pb holds no meta graph.")
    defs = model.meta_graphs[0].signature_def
    return {name: defs[name] for name in sorted(defs) if not name.startswith("__")}


def _shape(tensor_info) -> list | None:
    if tensor_info.tensor_shape.unknown_rank:
        return None
    return [None if d.size < 0 else d.size for d in tensor_info.tensor_shape.dim]


class Servable:
    """A loaded version of a model, ready to run its signatures."""

    def __init__(self, name: str, version: int, path: str, loaded, signature_defs, batching=None):
        self.name = name
        self.version = version
        self.path = path
        self.loaded = loaded
        self.signature_defs = signature_defs
        self._batchers: dict[str, Batcher] = {}
        if batching is not None:
            for sig, definition in signature_defs.items():
                inputs = {k: _shape(v) for k, v in definition.inputs.items()}
                outputs = {k: _shape(v) for k, v in definition.outputs.items()}
                if sig in loaded.signatures and is_batchable(inputs, outputs):
                    self._batchers[sig] = Batcher(
                        lambda arrays, sig=sig: self._call(sig, arrays), batching
                    )

    @classmethod
    def load(
        cls, name: str, version: int, path: str, batching: BatchingOptions | None = None
    ) -> Servable:
        """Loads a version directory and replays its warm-up requests; raises when it cannot."""
        from tfmeta.serving.warmup import (
            replay_warmup_requests,  # warmup builds on Servable
        )

        defs = read_signature_defs(path)
        loaded = tf.saved_model.load(path)
        servable = cls(name, version, path, loaded, defs, batching)
        try:
            replay_warmup_requests(servable)
        except Exception:
            servable.close()
            raise
        return servable

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """The `SignatureDefMap` that TF Serving's `GetModelMetadata` answers."""
        return get_model_metadata_pb2.SignatureDefMap(signature_def=self.signature_defs)

    def input_specs(self, signature_name: str) -> dict[str, tf.TensorSpec]:
        """`{input name: TensorSpec}` of a signature (`INVALID_ARGUMENT` if there is none)."""
        return dict(self.signature(signature_name).structured_input_signature[1])

    def signature(self, signature_name: str):
        signatures = self.loaded.signatures
        if signature_name not in signatures:
            raise invalid_argument(
                f'Serving signature name: "{signature_name}" not found in signature def'
            )
        return signatures[signature_name]

    def checked_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The inputs as arrays, checked against the signature's names and dtypes (TF Serving's messages)."""
        specs = self.input_specs(signature_name)
        expected = "{" + ",".join(sorted(specs)) + "}"
        for key in inputs:
            if key not in specs:
                raise invalid_argument(
                    f"input tensor alias not found in signature: {key}. "
                    f"Inputs expected to be in the set {expected}."
                )
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise invalid_argument(
                f"Missing inputs {missing} of signature '{signature_name}'; "
                f"inputs expected to be in the set {expected}."
            )
        arrays = {}
        for key, spec in specs.items():
            value = np.asarray(inputs[key])
            if value.dtype != spec.dtype.as_numpy_dtype and not _same_kind(value, spec):
                raise invalid_argument(
                    f"Expects arg '{key}' to be {spec.dtype.name} but {tf.as_dtype(value.dtype).name} is provided"
                )
            arrays[key] = value
        return arrays

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on named arrays and returns its named outputs as numpy arrays."""
        arrays = self.checked_inputs(signature_name, inputs)
        batcher = self._batchers.get(signature_name)
        try:
            return dict(batcher.run(arrays) if batcher else self._call(signature_name, arrays))
        except Exception as error:
            raise from_exception(error) from error

    def submit(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], executor: Executor
    ) -> concurrent.futures.Future:
        """Like `run`, but returns a future: batched requests wait in the batcher's queue
        without a thread each; the others run on `executor`. Failures are `ServingError`s
        (raised here for bad inputs, or by the future)."""
        arrays = self.checked_inputs(signature_name, inputs)
        batcher = self._batchers.get(signature_name)
        future = batcher.submit(arrays) if batcher else None
        return future if future is not None else executor.submit(self._call, signature_name, arrays)

    def _call(self, signature_name: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        fn = self.loaded.signatures[signature_name]
        specs = fn.structured_input_signature[1]
        tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in arrays.items()}
        return {k: v.numpy() for k, v in fn(**tensors).items()}

    def close(self) -> None:
        """Stops this version's batch threads (the model itself is freed when unreferenced)."""
        for batcher in self._batchers.values():
            batcher.close()


def _same_kind(value: np.ndarray, spec: tf.TensorSpec) -> bool:
    """Whether `value` may be converted to the spec's dtype without changing its meaning."""
    if spec.dtype == tf.string:
        return value.dtype.kind in "OSU"
    if spec.dtype.is_floating:
        return value.dtype.kind in "fiu"
    if spec.dtype.is_integer:
        return value.dtype.kind in "iu"
    return False
