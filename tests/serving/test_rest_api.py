"""TF Serving's REST API: answers, strict request validation with full messages, metrics."""

import base64
import re
import socket
import threading

import numpy as np
import pytest
from serving_helpers import FEATURES, http


def url(served, path):
    return f"http://127.0.0.1:{served.port}{path}"


def test_two_models_of_a_config_file_answer_status_metadata_and_predictions(served, tiny_exports):
    code, status = http(url(served, "/v1/models/clf"))
    assert code == 200 and status["model_version_status"][0] == {
        "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    code, meta = http(url(served, "/v1/models/clf/versions/1/metadata"))
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert code == 200 and signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["x"]["tensor_shape"]["dim"]] == ["-1", "4"]
    expected = tiny_exports["models"][1].predict(FEATURES, verbose=0)
    code, rows = http(url(served, "/v1/models/clf:predict"), {"instances": FEATURES.tolist()})
    assert code == 200
    np.testing.assert_allclose([r["probabilities"] for r in rows["predictions"]], expected, rtol=1e-5, atol=1e-6)
    assert [r["classes"] for r in rows["predictions"]] == expected.argmax(-1).tolist()
    code, columns = http(url(served, "/v1/models/clf/versions/1:predict"), {"inputs": {"x": FEATURES.tolist()}})
    assert code == 200
    np.testing.assert_allclose(columns["outputs"]["probabilities"], expected, rtol=1e-5, atol=1e-6)
    code, text = http(url(served, "/v1/models/text:predict"), {"instances": ["ab", "xyz"]})
    assert code == 200 and text["predictions"] == [{"length": 2, "upper": "AB"}, {"length": 3, "upper": "XYZ"}]


def test_b64_values_feed_binary_string_inputs(served):
    raw = "héllo".encode()
    body = {"inputs": {"text": [{"b64": base64.b64encode(raw).decode()}, {"b64": base64.b64encode(b"\xff\x00").decode()}]}}
    code, answer = http(url(served, "/v1/models/text:predict"), body)
    assert code == 200
    assert answer["outputs"]["length"] == [len(raw), 2]
    assert answer["outputs"]["upper"][1] == {"b64": base64.b64encode(b"\xff\x00").decode()}  # not UTF-8: b64 back


GOOD_ROW = [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("path, raw, message", [
    ("/v1/models/clf:predict", b"[1, 2]", "must be a JSON object; received a list"),
    ("/v1/models/clf:predict", b'"instances"', "must be a JSON object; received a string"),
    ("/v1/models/clf:predict", b'{"instances": ' + b"[" * 200 + b"]" * 200 + b"}", "nested 201 levels deep"),
    ("/v1/models/clf:predict", b"{not json", "JSON Parse error"),
    ("/v1/models/clf:predict", b'{"instances": [[0.0, null, 0.0, 0.0]]}', "takes numbers only; received null"),
    ("/v1/models/clf:predict", b'{"instances": [[0.0, true, 0.0, 0.0]]}', "takes numbers only; received true"),
    ("/v1/models/clf:predict", b'{"instances": [[0.0, "1", 0.0, 0.0]]}', 'takes numbers only; received "1"'),
    ("/v1/models/clf:predict", b'{"inputs": {"y": [[0.0, 0.0, 0.0, 0.0]]}}',
     "input tensor alias not found in signature: y. Inputs expected to be in the set {x}."),
    ("/v1/models/clf:predict", b'{"instances": [[0.0, 0.0], [0.0]]}', "not a rectangular tensor"),
    ("/v1/models/clf:predict", b'{"signature_name": "nope", "instances": [[0, 0, 0, 0]]}',
     'Serving signature name: "nope" not found'),
    ("/v1/models/clf:predict", b'{"instances": [[0, 0, 0, 0]], "inputs": [[0, 0, 0, 0]]}', "exactly one of"),
    ("/v1/models/clf/versions/" + "9" * 5000 + ":predict", b'{"instances": []}', "Failed to convert version"),
    ("/v1/models/clf/versions/-1", None, "Failed to convert version"),
    ("/v1/models/text:predict", b'{"instances": [{"b64": "not base64!"}]}', "Unable to base64 decode"),
    ("/v1/models/text:predict", b'{"instances": [3]}', "Expected a string"),
])
def test_each_malformed_request_is_a_400_with_tf_servings_error_json(served, path, raw, message):
    code, answer = http(url(served, path), raw=raw, method="POST" if raw is not None else "GET")
    assert code == 400, answer
    assert message in answer["error"]


def test_a_wrong_shape_is_a_400_with_tensorflows_full_message(served):
    code, answer = http(url(served, "/v1/models/clf:predict"), {"instances": [[0.0, 0.0, 0.0]]})
    assert code == 400
    # all of it, not only its first line "Graph execution error:"
    assert answer["error"].startswith("Graph execution error:")
    assert "Matrix size-incompatible: In[0]: [1,3], In[1]: [4,3]" in answer["error"]


def test_unknown_models_and_versions_are_404(served):
    code, answer = http(url(served, "/v1/models/nope"))
    assert code == 404 and "nope" in answer["error"]
    code, answer = http(url(served, "/v1/models/clf/versions/7:predict"), {"instances": [GOOD_ROW]})
    assert code == 404 and answer["error"] == "Servable not found for request: Specific(clf, 7)"


def test_a_body_over_the_limit_is_refused_with_413(served):
    big = b'{"instances": [' + b",".join([b"[0.0, 0.0, 0.0, 0.0]"] * 5000) + b"]}"  # ~100 KB > 64 KB
    code, answer = http(url(served, "/v1/models/clf:predict"), raw=big)
    assert code == 413 and "limit of 65536 bytes" in answer["error"]
    # chunked, so without a length: counted as it arrives and refused at the limit
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    answer = [b""]

    def read():  # until the server closes the connection
        try:
            while chunk := sock.recv(4096):
                answer[0] += chunk
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sock.sendall(b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(big), 8192):
            sock.sendall(b"%x\r\n%s\r\n" % (len(big[i:i + 8192]), big[i:i + 8192]))
    except OSError:
        pass  # the server answered and closed without reading the rest, as intended
    reader.join(timeout=30)
    sock.close()
    assert answer[0].startswith(b"HTTP/1.1 413") and b"limit of 65536 bytes" in answer[0]
    assert http(url(served, "/v1/models/clf"))[0] == 200  # and the server is fine


def metric(served, name, **labels):
    code, text = http(url(served, "/monitoring/prometheus/metrics"))
    assert code == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match[1].split(","))) == wanted:
            return float(match[2])
    return 0.0


def test_metrics_count_requests_and_their_latencies(served):
    labels = dict(api="rest", method="predict", model_name="clf")
    before_ok = metric(served, "tfmeta_serving_requests_total", status="200", **labels)
    before_bad = metric(served, "tfmeta_serving_requests_total", status="400", **labels)
    before_latency = metric(served, "tfmeta_serving_request_latency_seconds_count", **labels)
    for _ in range(3):
        assert http(url(served, "/v1/models/clf:predict"), {"instances": [GOOD_ROW]})[0] == 200
    assert http(url(served, "/v1/models/clf:predict"), {"instances": [[None] * 4]})[0] == 400
    assert metric(served, "tfmeta_serving_requests_total", status="200", **labels) == before_ok + 3
    assert metric(served, "tfmeta_serving_requests_total", status="400", **labels) == before_bad + 1
    assert metric(served, "tfmeta_serving_request_latency_seconds_count", **labels) == before_latency + 4
