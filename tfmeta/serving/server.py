"""`tfmeta serve`: the REST (uvicorn + Starlette) and gRPC servers over one `ModelManager`.

Why uvicorn and Starlette: an asyncio server holds a slow or stalled client as a few
kilobytes of state instead of a thread, so idle connections cost nothing and limits are
enforced per request (`limits.py`); uvicorn brings keep-alive, a configurable listen backlog
and graceful shutdown on SIGTERM (stop accepting, finish the requests in flight), httptools'
C parser (several times faster than pure-Python h11), uvloop's event loop where installed
(a dependency except on Windows; the single loop thread is what bounds small requests), and
Starlette the routing; both are small, pure-Python and widely deployed. The model runs on a
thread pool (TensorFlow releases the GIL), so the event loop stays free. gRPC uses grpcio's
own server with the `tensorflow_serving.apis` stubs (`grpc_service.py`).

Timeouts: a connection that does not complete its request headers within
`header_timeout_s` is closed (uvicorn has none, hence `_HeaderTimeoutProtocol`),
an idle keep-alive connection after `keep_alive_timeout_s`, a request body that stalls gets
408 after `body_timeout_s`.

Example:

>>> server = ModelServer([ModelConfig("digits", "saved_models/digits")], ServerOptions(port=0))
>>> with server.running():
...     urllib.request.urlopen(f"http://127.0.0.1:{server.port}/v1/models/digits").status
200
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tfmeta.serving.batching import BatchingOptions
from tfmeta.serving.grpc_service import create_grpc_server
from tfmeta.serving.json_codec import MAX_JSON_DEPTH
from tfmeta.serving.limits import RequestLimits
from tfmeta.serving.metrics import ServingMetrics
from tfmeta.serving.model_config import ModelConfig
from tfmeta.serving.model_manager import ModelManager
from tfmeta.serving.rest import create_rest_app

logger = logging.getLogger("tfmeta.serving")


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Addresses, limits and timeouts of a `ModelServer` (the `tfmeta serve` flags)."""

    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = None
    max_body_bytes: int = 16 << 20
    max_concurrent_requests: int = 16
    max_queued_requests: int = 512
    queue_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_timeout_s: float = 30.0
    graceful_shutdown_timeout_s: float = 30.0
    backlog: int = 2048
    poll_interval_s: float = 1.0
    max_json_depth: int = MAX_JSON_DEPTH
    batching: BatchingOptions | None = None


class _HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that stall before their headers end.

    The timer runs from the connection's opening, and from the first byte of each later
    request, until that request's headers are complete.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport) -> None:
        # asyncio turns Nagle's algorithm off only for sockets whose `proto` is IPPROTO_TCP,
        # and a listening socket made by `socket.create_server` (proto 0) hands out accepted
        # sockets without it. With Nagle on, the response body (written after its headers)
        # waits for the client's delayed ACK: about 40 ms per request on Linux.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._header_timer = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._on_header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


class ModelServer:
    """The REST and (optionally) gRPC servers of `tfmeta serve`.

    The first scan of the model folders happens here, so the models are loaded (and the REST
    port bound) when the constructor returns; `serve_forever()` then serves until `shutdown()`
    or SIGTERM/SIGINT (when run in the main thread).
    """

    def __init__(self, configs: Sequence[ModelConfig], options: ServerOptions = ServerOptions()):
        self.options = options
        self.metrics = ServingMetrics()
        self.manager = ModelManager(configs, options.batching, poll_interval_s=options.poll_interval_s)
        self.manager.poll(settled=True)
        # TensorFlow and the loaded models are millions of long-lived Python objects; a full
        # garbage collection walking them all stalls every request for a large fraction of a
        # second. Freezing moves them out of the collector's reach (objects made later are
        # still collected).
        gc.freeze()
        self.executor = ThreadPoolExecutor(options.max_concurrent_requests, thread_name_prefix="tfmeta-rest")
        app = RequestLimits(
            create_rest_app(self.manager, self.metrics, self.executor, options.max_json_depth),
            max_body_bytes=options.max_body_bytes, body_timeout_s=options.body_timeout_s,
            max_concurrent_requests=options.max_concurrent_requests,
            max_queued_requests=options.max_queued_requests, queue_timeout_s=options.queue_timeout_s,
            metrics=self.metrics,
        )
        protocol = type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_timeout_s": options.header_timeout_s})
        self._config = uvicorn.Config(
            app, host=options.host, port=options.port, http=protocol, lifespan="off",
            backlog=options.backlog, timeout_keep_alive=options.keep_alive_timeout_s,
            timeout_graceful_shutdown=options.graceful_shutdown_timeout_s, log_level="warning",
            access_log=False,
        )
        self._uvicorn = uvicorn.Server(self._config)
        self._socket = socket.create_server((options.host, options.port), backlog=options.backlog)
        self.grpc_server, self.grpc_port = None, None
        if options.grpc_port is not None:
            self.grpc_server, self.grpc_port = create_grpc_server(
                self.manager, self.metrics, f"{options.host}:{options.grpc_port}",
                max_workers=options.max_concurrent_requests, max_message_bytes=options.max_body_bytes,
            )
        self._done = threading.Event()
        self._closed = False

    @property
    def port(self) -> int:
        """The bound REST port (useful with `port=0`)."""
        return self._socket.getsockname()[1]

    @property
    def server_address(self) -> tuple[str, int]:
        return self._socket.getsockname()[:2]

    def serve_forever(self) -> None:
        """Serves until `shutdown()` or a signal, then finishes the requests in flight."""
        self.manager.start()
        if self.grpc_server is not None:
            self.grpc_server.start()
        try:
            self._uvicorn.run(sockets=[self._socket])
        finally:
            if self.grpc_server is not None:
                self.grpc_server.stop(self.options.graceful_shutdown_timeout_s).wait()
            self._done.set()

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Asks `serve_forever` to stop (in-flight requests finish) and waits for it."""
        self._uvicorn.should_exit = True
        self._done.wait(timeout_s)

    def server_close(self) -> None:
        """Releases the socket, the thread pool and the loaded models."""
        if self._closed:
            return
        self._closed = True
        self._socket.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.manager.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[ModelServer]:
        """Serves in a background thread for the duration of a `with` block (tests, notebooks)."""
        thread = threading.Thread(target=self.serve_forever, name="tfmeta-serve", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.shutdown(timeout_s=60)
            thread.join(timeout=60)
            self.server_close()


def make_server(
    model_base_path: str, model_name: str | None = None, port: int = 8501, host: str = "127.0.0.1", **options
) -> ModelServer:
    """A `ModelServer` for one model base path (`serve_forever()` starts it)."""
    import os

    name = model_name or os.path.basename(os.path.normpath(model_base_path))
    return ModelServer([ModelConfig(name, model_base_path)], ServerOptions(host=host, port=port, **options))


def run_until_signal(server: ModelServer) -> None:
    """Serves in the main thread; SIGTERM or SIGINT stop it gracefully and return."""
    # uvicorn re-raises the signal once it has shut down; a no-op handler makes that a return.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
