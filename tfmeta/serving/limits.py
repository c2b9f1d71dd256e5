"""Request limits of the REST server, as ASGI middleware: body size, body read time, concurrency.

- `max_body_bytes`: a larger `Content-Length` is answered 413 before the body is read; a
  chunked body is counted as it arrives and refused at the limit, so memory stays bounded.
- `body_timeout_s`: a client that stops sending its body mid-way gets 408 instead of holding
  a slot (header read and idle keep-alive timeouts are the HTTP protocol's, see `server.py`).
- `max_concurrent_requests` run at once; up to `max_queued_requests` more wait (FIFO) for a
  slot, at most `queue_timeout_s`; past that the answer is 503 with TF Serving's error JSON,
  never a reset connection. The metrics endpoint is never queued.

Example:

>>> app = RequestLimits(rest_app, max_body_bytes=16 << 20, max_concurrent_requests=8)
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from tfmeta.serving.metrics import METRICS_PATH, ServingMetrics


@contextlib.asynccontextmanager
async def _wait_for_context(seconds: float):  # Python 3.10 has no asyncio.timeout
    task = asyncio.current_task()
    handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
    try:
        yield
    except asyncio.CancelledError as error:
        raise asyncio.TimeoutError() from error
    finally:
        handle.cancel()


# asyncio.timeout arms a timer instead of starting a task per receive, as wait_for does.
_timeout = getattr(asyncio, "timeout", _wait_for_context)


class BodyTooLarge(Exception):
    """The request body exceeds the limit (answered 413)."""


class BodyTimeout(Exception):
    """The client stopped sending its body (answered 408)."""


async def send_error(send, status: int, message: str, headers: list | None = None) -> None:
    """Sends TF Serving's `{"error": message}` answer."""
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        + (headers or []),
    })
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware enforcing the limits of the module docstring."""

    def __init__(
        self,
        app,
        max_body_bytes: int = 16 << 20,
        body_timeout_s: float = 30.0,
        max_concurrent_requests: int = 16,
        max_queued_requests: int = 256,
        queue_timeout_s: float = 30.0,
        metrics: ServingMetrics | None = None,
    ):
        for name, value in [("max_body_bytes", max_body_bytes), ("max_concurrent_requests", max_concurrent_requests)]:
            if value < 1:
                raise ValueError(f"`{name}` must be >= 1; received {value}.")
        if max_queued_requests < 0:
            raise ValueError(f"`max_queued_requests` must be >= 0; received {max_queued_requests}.")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_concurrent_requests = max_concurrent_requests
        self.max_queued_requests = max_queued_requests
        self.queue_timeout_s = queue_timeout_s
        self.metrics = metrics
        self._slots: asyncio.Semaphore | None = None  # made in the server's event loop
        self._waiting = 0

    def _reject(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(reason).inc()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            self._reject("body_too_large")
            return await send_error(
                send, 413, f"Request body of {length.decode(errors='replace')[:30]} bytes is larger "
                f"than the limit of {self.max_body_bytes} bytes (--max-body-bytes)",
                [(b"connection", b"close")],
            )
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent_requests)
        if self._slots.locked() and self._waiting >= self.max_queued_requests:
            self._reject("queue_full")
            return await send_error(
                send, 503, f"Server busy: {self.max_concurrent_requests} requests running and "
                f"{self._waiting} queued (--max-concurrent-requests, --max-queued-requests)",
                [(b"retry-after", b"1")],
            )
        if self._slots.locked():
            self._waiting += 1
            self._gauge()
            try:
                await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
            except asyncio.TimeoutError:
                self._reject("queue_timeout")
                return await send_error(send, 503, f"Server busy: no slot within {self.queue_timeout_s} s")
            finally:
                self._waiting -= 1
                self._gauge()
        else:
            await self._slots.acquire()  # free: no wait, no timer
        try:
            if self.metrics is not None:
                self.metrics.in_flight.inc()
            await self.app(scope, self._limited(receive), send)
        finally:
            self._slots.release()
            if self.metrics is not None:
                self.metrics.in_flight.dec()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queued.set(self._waiting)

    def _limited(self, receive):
        received, complete = 0, False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # the body is in; later calls wait for a disconnect, without a limit
                return await receive()
            try:
                async with _timeout(self.body_timeout_s):
                    message = await receive()
            except asyncio.TimeoutError as error:
                self._reject("body_timeout")
                raise BodyTimeout(f"No request body data for {self.body_timeout_s} s") from error
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    self._reject("body_too_large")
                    raise BodyTooLarge(
                        f"Request body is larger than the limit of {self.max_body_bytes} bytes (--max-body-bytes)"
                    )
            return message

        return limited_receive
