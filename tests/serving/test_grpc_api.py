"""TF Serving's gRPC services, called with the tensorflow-serving-api client stubs."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import FEATURES
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


@pytest.fixture(scope="module")
def channel(served):
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        yield channel


def test_predict_answers_as_tf_serving(channel, tiny_exports):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "clf"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(FEATURES))
    response = stub.Predict(request, timeout=30)
    expected = tiny_exports["models"][1].predict(FEATURES, verbose=0)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, rtol=1e-5, atol=1e-6)
    assert tf.make_ndarray(response.outputs["classes"]).tolist() == expected.argmax(-1).tolist()
    assert response.model_spec.version.value == 1


def test_errors_are_grpc_status_codes_with_the_full_message(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "clf"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((2, 3), np.float32)))
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Matrix size-incompatible: In[0]: [2,3]" in error.value.details()
    request.model_spec.version.value = 9
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_get_model_metadata_and_status(channel):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "text"
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    inputs = signatures.signature_def["serving_default"].inputs
    assert list(inputs) == ["text"] and inputs["text"].dtype == tf.string.as_datatype_enum

    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "clf"
    (status,) = models.GetModelStatus(request, timeout=30).model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
