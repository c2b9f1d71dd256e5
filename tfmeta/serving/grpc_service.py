"""TF Serving's gRPC API: `PredictionService` (`Predict`, `GetModelMetadata`) and
`ModelService` (`GetModelStatus`), on the `tensorflow_serving.apis` protos and stubs.

Clients written for `tensorflow_model_server` work unchanged against `tfmeta serve
--grpc-port 8500`:

>>> channel = grpc.insecure_channel("127.0.0.1:8500")
>>> stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
>>> request = predict_pb2.PredictRequest()
>>> request.model_spec.name = "digits"
>>> request.inputs["x"].CopyFrom(tf.make_tensor_proto(images))
>>> tf.make_ndarray(stub.Predict(request, timeout=10).outputs["probabilities"]).shape
(3, 10)

Errors are aborted with the `ServingError`'s gRPC code (`INVALID_ARGUMENT` for a wrong input,
with TensorFlow's full message; `NOT_FOUND` for an unknown model or version).
"""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfmeta.serving.errors import ServingError, from_exception, invalid_argument
from tfmeta.serving.metrics import ServingMetrics
from tfmeta.serving.model_manager import ModelManager
from tfmeta.serving.servable import DEFAULT_SIGNATURE

_STATES = get_model_status_pb2.ModelVersionStatus.State


def _version(model_spec) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


class _Calls:
    """Shared error handling and metrics of the two services."""

    def __init__(self, manager: ModelManager, metrics: ServingMetrics):
        self.manager = manager
        self.metrics = metrics

    def answer(self, method: str, model_spec, context, fn):
        start, code = time.perf_counter(), "OK"
        try:
            return fn()
        except Exception as error:  # every failure is a status, never a dropped call
            serving_error = from_exception(error)
            code = serving_error.grpc_status.name
            context.abort(serving_error.grpc_status, serving_error.message)
        finally:
            name = model_spec.name if model_spec.name in self.manager.model_names else ""
            self.metrics.observe(name, "grpc", method, code, time.perf_counter() - start)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`Predict` and `GetModelMetadata` over the served models."""

    def __init__(self, calls: _Calls):
        self.calls = calls

    def Predict(self, request, context):
        def run():
            servable = self.calls.manager.get(request.model_spec.name, _version(request.model_spec))
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except (TypeError, ValueError) as error:
                raise invalid_argument(f"Malformed input tensor: {error}") from error
            outputs = servable.run(signature_name, inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = [k for k in wanted if k not in outputs]
            if unknown:
                raise invalid_argument(f"output tensor alias not found in signature: {unknown[0]}")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature_name
            for key in wanted:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return response

        return self.calls.answer("predict", request.model_spec, context, run)

    def GetModelMetadata(self, request, context):
        def run():
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise invalid_argument(
                    f"Metadata field(s) {fields} not supported: only 'signature_def' is"
                )
            servable = self.calls.manager.get(request.model_spec.name, _version(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(servable.signature_def_map())
            return response

        return self.calls.answer("metadata", request.model_spec, context, run)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """`GetModelStatus` over the served models."""

    def __init__(self, calls: _Calls):
        self.calls = calls

    def GetModelStatus(self, request, context):
        def run():
            response = get_model_status_pb2.GetModelStatusResponse()
            for state in self.calls.manager.status(request.model_spec.name, _version(request.model_spec)):
                status = response.model_version_status.add(version=state.version, state=_STATES.Value(state.state))
                status.status.error_code = getattr(grpc.StatusCode, state.error_code).value[0]
                status.status.error_message = state.error_message
            return response

        return self.calls.answer("status", request.model_spec, context, run)


def create_grpc_server(
    manager: ModelManager,
    metrics: ServingMetrics,
    address: str,
    max_workers: int = 16,
    max_message_bytes: int = 16 << 20,
) -> tuple[grpc.Server, int]:
    """A gRPC server (not started) with both services, and the port it bound on `address`."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tfmeta-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
        maximum_concurrent_rpcs=max_workers * 16,  # past that: RESOURCE_EXHAUSTED, not a hang
    )
    calls = _Calls(manager, metrics)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(calls), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(calls), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"Could not bind the gRPC server to {address}.")
    return server, port


__all__ = ["ModelService", "PredictionService", "ServingError", "create_grpc_server"]
