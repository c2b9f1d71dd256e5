"""Load on `tfmeta serve` (127.0.0.1 only): throughput, latency, limits and hot deploys.

Starts `tfmeta serve` as a subprocess on a copy of a digits classifier export (built here in a
few seconds when `--model-base-path` is not given) and measures, with an asyncio client of
`--clients` keep-alive connections:

- `load`: `--requests-per-client` `:predict` requests per client of 1 row and of 32 rows,
  without and with server-side batching (`--enable-batching`): errors, p50/p99/max latency,
  requests/s and rows/s;
- `body_limit`: a 50 MB body (with `Content-Length`, and chunked without one): the status
  answered and the server's resident memory before and after;
- `stalled`: `--stalled` connections that send nothing or half a request line while 8 other
  clients run; their latency against the header timeout, and whether the stalled ones are
  closed;
- `broken_version`: while clients send requests, an empty version, a version with a truncated
  `saved_model.pb`, a half-copied one and then a good one are dropped into the base path:
  failed requests, and the version serving at the end.

Everything is bounded: requests by the counts, each phase by `--phase-timeout`.

Usage:

    python benchmarks/serving_load.py [--clients 64] [--requests-per-client 2000] [--model-base-path DIR]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"  # never another address
REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return re.search(r"Model name:\s*(.+)", out)[1].strip()
    except Exception:
        return platform.processor() or "unknown"


def build_digits_export(base: Path) -> Path:
    """A small dense classifier of scikit-learn's digits (8x8 raw pixels), exported as version 1."""
    import keras
    from sklearn.datasets import load_digits

    import tfmeta  # noqa: F401  (TensorFlow's environment defaults)
    from tfmeta.export import export_classifier

    digits = load_digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.images.astype("float32"), digits.target, epochs=5, batch_size=64, verbose=0)
    return Path(export_classifier(model, str(base), {"task": "classification"}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read())[1]) / 1024


class Server:
    """`tfmeta serve` in a subprocess."""

    def __init__(self, base: Path, name: str, flags: list[str]):
        self.port = free_port()
        self.name = name
        env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tfmeta.cli", "serve", "--model-base-path", str(base), "--model-name", name,
             "--host", HOST, "--port", str(self.port), *flags],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tfmeta serve exited: {self.process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url(""), timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("tfmeta serve did not start within 300 s")

    def url(self, suffix: str) -> str:
        return f"http://{HOST}:{self.port}/v1/models/{self.name}{suffix}"

    def version(self) -> str:
        with urllib.request.urlopen(self.url(""), timeout=10) as r:
            return json.loads(r.read())["model_version_status"][0]["version"]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def predict_request(name: str, rows: np.ndarray) -> bytes:
    body = json.dumps({"instances": rows.tolist()}).encode()
    head = (f"POST /v1/models/{name}:predict HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def client(port: int, request: bytes, count: int, latencies: list, errors: list, stop_at: float, until=None):
    """Sends `count` requests (or until `until` is set) on one keep-alive connection."""
    reader = writer = None
    sent = 0
    while (sent < count if until is None else not until.is_set()) and time.monotonic() < stop_at:
        sent += 1
        start = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])
            await reader.readexactly(length)
            status = int(head[9:12])
            if status != 200:
                errors.append(status)
            if re.search(rb"connection: close", head, re.IGNORECASE):
                writer.close()
                writer = None
        except Exception as error:  # a reset or refused connection is an error, then reconnect
            errors.append(type(error).__name__)
            if writer is not None:
                writer.close()
            writer = None
        latencies.append(time.perf_counter() - start)
    if writer is not None:
        writer.close()


def summary(latencies: list, errors: list, seconds: float, rows_per_request: int) -> dict:
    lat = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies), "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors})[:5],
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "max_ms": round(float(lat.max()), 2) if lat.size else None,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "rows_per_s": round(len(latencies) * rows_per_request / seconds, 1),
    }


def run_load(server: Server, images: np.ndarray, rows: int, clients: int, per_client: int, timeout: float) -> dict:
    request = predict_request(server.name, images[:rows])

    async def warm_up():  # every client a few requests, unmeasured: the batch shapes get seen
        await asyncio.gather(*[client(server.port, request, 5, [], [], time.monotonic() + 120) for _ in range(clients)])

    asyncio.run(warm_up())
    latencies, errors = [], []

    async def main():
        stop_at = time.monotonic() + timeout
        await asyncio.gather(*[client(server.port, request, per_client, latencies, errors, stop_at) for _ in range(clients)])

    gc.collect()
    gc.freeze()  # the client's own garbage collections must not show up as server latency
    start = time.perf_counter()
    asyncio.run(main())
    return summary(latencies, errors, time.perf_counter() - start, rows)


def send_big_body(port: int, name: str, size: int, chunked: bool) -> str:
    """Sends a `size`-byte body and returns the status line answered (or the error seen)."""
    sock = socket.create_connection((HOST, port), timeout=30)
    head = f"POST /v1/models/{name}:predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {size}\r\n\r\n"
    answer = []

    def read():
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            data = data or repr(error).encode()
        answer.append(data.split(b"\r\n")[0].decode(errors="replace"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sock.sendall(head.encode())
        piece = b"[" + b"0.0," * (1 << 18)  # 1 MB of JSON-ish bytes
        sent = 0
        while sent < size:
            part = piece[: min(len(piece), size - sent)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            sent += len(part)
    except OSError:
        pass  # the server answered and closed: the rest is not read, as intended
    reader.join(timeout=30)
    sock.close()
    return answer[0] if answer else "no answer"


def stalled_phase(server: Server, images: np.ndarray, stalled: int, per_client: int, header_timeout: float) -> dict:
    socks = []
    for i in range(stalled):
        sock = socket.create_connection((HOST, server.port), timeout=header_timeout + 30)
        if i % 2:
            sock.sendall(f"POST /v1/models/{server.name}:predict HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        socks.append(sock)
    opened = time.monotonic()
    result = run_load(server, images, 1, 8, per_client, timeout=header_timeout * 20)
    closed = 0
    for sock in socks:
        try:
            sock.settimeout(max(0.1, opened + header_timeout + 5 - time.monotonic()))
            closed += sock.recv(1) == b""
        except OSError:
            pass
        sock.close()
    result.update(stalled_connections=stalled, header_timeout_s=header_timeout,
                  stalled_closed_by_server=closed,
                  max_latency_below_timeout=result["max_ms"] is not None and result["max_ms"] < header_timeout * 1000)
    return result


def broken_version_phase(server: Server, base: Path, good: Path, images: np.ndarray, clients: int) -> dict:
    latencies, errors = [], []
    until = threading.Event()
    request = predict_request(server.name, images[:1])

    def drop_in():
        time.sleep(1.0)
        (base / "2").mkdir()  # empty
        truncated = base / "3"
        shutil.copytree(good, truncated)
        pb = truncated / "saved_model.pb"
        with open(pb, "r+b") as f:
            f.truncate(pb.stat().st_size // 2)
        half = base / "4"  # graph copied, variables not yet
        half.mkdir()
        shutil.copy(good / "saved_model.pb", half / "saved_model.pb")
        time.sleep(3.0)
        shutil.copytree(good, base / "5")  # a good new version
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.version() != "5":
            time.sleep(0.2)
        time.sleep(1.0)
        until.set()

    dropper = threading.Thread(target=drop_in)
    dropper.start()

    async def main():
        await asyncio.gather(*[client(server.port, request, 0, latencies, errors, time.monotonic() + 120, until)
                               for _ in range(clients)])

    start = time.perf_counter()
    asyncio.run(main())
    dropper.join()
    result = summary(latencies, errors, time.perf_counter() - start, 1)
    result.update(dropped_in=["2: empty", "3: truncated saved_model.pb", "4: half-copied", "5: good"],
                  serving_version_after=server.version())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-base-path", default=None, help="A classifier export of 8x8 digits (default: built here).")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests-per-client", type=int, default=2000)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--allowed-batch-sizes", default="8,16,32,64")
    parser.add_argument("--body-mb", type=int, default=50)
    parser.add_argument("--stalled", type=int, default=100)
    parser.add_argument("--header-timeout", type=float, default=3.0)
    parser.add_argument("--phase-timeout", type=float, default=600.0, help="Upper bound of each load phase (s).")
    args = parser.parse_args()

    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)[:32]
    work = Path(tempfile.mkdtemp(prefix="serving_load-"))
    try:
        source = Path(args.model_base_path) if args.model_base_path else build_digits_export(work / "built").parent
        version = max(int(p.name) for p in source.iterdir() if p.name.isdigit())
        base = work / "digits"
        good = source / str(version)
        shutil.copytree(good, base / "1")
        result = {"benchmark": "serving_load", "cpu": cpu_model(), "cores": os.cpu_count(),
                  "clients": args.clients, "requests_per_client": args.requests_per_client, "load": {}}

        common = ["--header-timeout-seconds", str(args.header_timeout), "--file-system-poll-wait-seconds", "0.5"]
        server = Server(base, "digits", common + ["--max-concurrent-requests", "16"])
        try:
            for rows in (1, 32):
                result["load"][f"{rows}_row_unbatched"] = run_load(
                    server, images, rows, args.clients, args.requests_per_client, args.phase_timeout)
            before = rss_mb(server.process.pid)
            statuses = {"content_length": send_big_body(server.port, "digits", args.body_mb << 20, chunked=False)}
            after_length = rss_mb(server.process.pid)
            statuses["chunked"] = send_big_body(server.port, "digits", args.body_mb << 20, chunked=True)
            after_chunked = rss_mb(server.process.pid)
            result["body_limit"] = {
                "body_mb": args.body_mb, "answers": statuses, "limit_mb": 16,
                "rss_mb_before": round(before, 1), "rss_mb_after_content_length": round(after_length, 1),
                "rss_mb_after_chunked": round(after_chunked, 1),
                "rss_growth_mb": round(max(after_length, after_chunked) - before, 1),
            }
            result["stalled"] = stalled_phase(server, images, args.stalled, max(20, args.requests_per_client // 4), args.header_timeout)
            result["broken_version"] = broken_version_phase(server, base, good, images, 16)
        finally:
            result["exit_code_after_sigterm"] = server.stop()
        for extra in ("2", "3", "4", "5"):
            shutil.rmtree(base / extra, ignore_errors=True)

        batched = Server(base, "digits", common + [
            "--enable-batching", "--max-batch-size", str(args.max_batch_size),
            "--batch-timeout-micros", str(args.batch_timeout_micros), "--allowed-batch-sizes", args.allowed_batch_sizes,
            "--max-concurrent-requests", str(args.clients)])
        try:
            for rows in (1, 32):
                result["load"][f"{rows}_row_batched"] = run_load(
                    batched, images, rows, args.clients, args.requests_per_client, args.phase_timeout)
        finally:
            batched.stop()
        load = result["load"]
        result["batching_speedup_1_row"] = round(load["1_row_batched"]["rows_per_s"] / load["1_row_unbatched"]["rows_per_s"], 2)
        result["batching"] = {"max_batch_size": args.max_batch_size, "batch_timeout_micros": args.batch_timeout_micros,
                              "allowed_batch_sizes": args.allowed_batch_sizes}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
