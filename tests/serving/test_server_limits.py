"""Limits of the HTTP server: stalled clients, slow bodies, a full queue, graceful SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import FEATURES, http

from tfmeta.serving.batching import BatchingOptions
from tfmeta.serving.model_config import ModelConfig
from tfmeta.serving.server import ModelServer, ServerOptions

REPO = Path(__file__).resolve().parents[2]
# A 1-row request waits this long in the batch queue for company: a request kept in flight.
SLOW = BatchingOptions(max_batch_size=64, batch_timeout_micros=1_500_000, num_batch_threads=1)


def predict_url(port):
    return f"http://127.0.0.1:{port}/v1/models/clf:predict"


def test_stalled_connections_are_closed_and_do_not_delay_others(model_base):
    options = ServerOptions(port=0, header_timeout_s=0.5, body_timeout_s=0.5)
    with ModelServer([ModelConfig("clf", str(model_base))], options).running() as server:
        stalled = []
        for i in range(30):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if i % 2:  # half send a request line and stop; half send nothing
                sock.sendall(b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\n")
            stalled.append(sock)
        start = time.monotonic()
        assert http(predict_url(server.port), {"instances": FEATURES.tolist()})[0] == 200
        assert time.monotonic() - start < 0.5  # answered before the stalled ones time out
        for sock in stalled:
            assert sock.recv(1024) == b""  # closed by the server after the header timeout
            sock.close()
        body = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        body.sendall(b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inst")
        answer = b""
        while chunk := body.recv(4096):  # until the server closes the connection
            answer += chunk
        body.close()
        assert answer.startswith(b"HTTP/1.1 408") and b"No request body data for 0.5 s" in answer
        assert time.monotonic() - start < 5


def test_a_full_queue_answers_503_instead_of_resetting(model_base):
    options = ServerOptions(port=0, max_concurrent_requests=1, max_queued_requests=0, batching=SLOW)
    with ModelServer([ModelConfig("clf", str(model_base))], options).running() as server:
        first = []
        thread = threading.Thread(target=lambda: first.append(http(predict_url(server.port), {"instances": [[0.0] * 4]})))
        thread.start()
        time.sleep(0.5)
        code, answer = http(predict_url(server.port), {"instances": [[0.0] * 4]})
        thread.join()
        assert code == 503 and "Server busy" in answer["error"]
        assert first[0][0] == 200


@pytest.mark.slow  # a subprocess server: TensorFlow's import and the model load
def test_sigterm_finishes_the_request_in_flight_then_exits(model_base, tiny_exports):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    server = subprocess.Popen(
        [sys.executable, "-m", "tfmeta.cli", "serve", "--model-base-path", str(model_base), "--model-name", "clf",
         "--port", str(port), "--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "3000000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read()
            try:
                if http(f"http://127.0.0.1:{port}/v1/models/clf", timeout=5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        answers = []
        thread = threading.Thread(target=lambda: answers.append(http(predict_url(port), {"instances": FEATURES[:1].tolist()})))
        thread.start()
        time.sleep(1.0)  # the request now waits in the batch queue
        server.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    code, answer = answers[0]
    assert code == 200
    expected = tiny_exports["models"][1].predict(FEATURES[:1], verbose=0)
    np.testing.assert_allclose(answer["predictions"][0]["probabilities"], expected[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _keep_alive_predictions(port: int, rows: np.ndarray) -> tuple[list, list]:
    """Sends each row as its own `:predict` on one keep-alive connection: answers and latencies."""
    import json

    answers, latencies = [], []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for row in rows:
            body = json.dumps({"instances": [row.tolist()]}).encode()
            start = time.perf_counter()
            sock.sendall(b"POST /v1/models/clf:predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += sock.recv(65536)
            latencies.append(time.perf_counter() - start)
            answers.append(json.loads(rest)["predictions"][0])
    return answers, latencies


def test_keep_alive_answers_do_not_wait_for_delayed_acks(model_base):
    # With Nagle's algorithm on the server's sockets, each answer's body waits for the client's
    # delayed ACK of its headers: about 40 ms per request on Linux.
    rows = np.random.default_rng(0).normal(size=(15, 4)).astype(np.float32)
    with ModelServer([ModelConfig("clf", str(model_base))], ServerOptions(port=0)).running() as server:
        _, latencies = _keep_alive_predictions(server.port, rows)
    assert sorted(latencies)[len(latencies) // 2] < 0.02, latencies


def test_concurrent_rest_requests_batched_give_the_unbatched_numbers(model_base):
    rows = np.random.default_rng(1).normal(size=(24, 4)).astype(np.float32)
    with ModelServer([ModelConfig("clf", str(model_base))], ServerOptions(port=0)).running() as server:
        expected, _ = _keep_alive_predictions(server.port, rows)
    batching = BatchingOptions(max_batch_size=8, batch_timeout_micros=20_000)
    options = ServerOptions(port=0, max_concurrent_requests=8, batching=batching)
    answers = {}
    with ModelServer([ModelConfig("clf", str(model_base))], options).running() as server:
        def client(i):
            answers[i] = _keep_alive_predictions(server.port, rows[i::6])[0]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for i in range(6):
        for got, want in zip(answers[i], expected[i::6]):
            np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-6, atol=1e-7)
            assert got["classes"] == want["classes"]
