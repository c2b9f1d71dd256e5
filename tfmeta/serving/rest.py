"""TF Serving's REST API as a Starlette app.

- `GET  /v1/models/NAME[/versions/V]`           version status (`model_version_status`)
- `GET  /v1/models/NAME[/versions/V]/metadata`  signature definitions (`signature_def` map)
- `POST /v1/models/NAME[/versions/V]:predict`   `{"signature_name"?, "instances": [...]}` (row
  format, answers `{"predictions": ...}`) or `{"inputs": ...}` (columnar, answers
  `{"outputs": ...}`); signatures whose inputs have different batch sizes, such as `few_shot`,
  take the columnar format, as in TF Serving.
- `GET  /monitoring/prometheus/metrics`         Prometheus metrics (`metrics.py`)

Without `/versions/V` the newest loaded version answers. Errors are TF Serving's
`{"error": "<full message>"}` with the HTTP status of their code (`errors.py`). Models run on
a thread pool (or wait in a batcher's queue); only small bodies are decoded on the event loop
(`predict_json`), so a large one never stalls other clients.

Example:

>>> app = create_rest_app(manager, ServingMetrics(), ThreadPoolExecutor(8))
>>> uvicorn.run(app, port=8501)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from concurrent.futures import Executor

import numpy as np
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tfmeta.serving.errors import (
    ServingError,
    from_exception,
    invalid_argument,
    not_found,
)
from tfmeta.serving.json_codec import (
    MAX_JSON_DEPTH,
    decode_predict_body,
    encode_outputs,
    parse_json_body,
)
from tfmeta.serving.limits import BodyTimeout, BodyTooLarge
from tfmeta.serving.metrics import CONTENT_TYPE, METRICS_PATH, ServingMetrics
from tfmeta.serving.model_manager import ModelManager
from tfmeta.serving.servable import DEFAULT_SIGNATURE, Servable

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]*))?(?P<action>/metadata|:[a-z]+)?/?$"
)
MAX_VERSION = 2**63 - 1  # TF Serving's versions are int64
INLINE_BYTES = 64 << 10  # bodies and answers up to this size are handled on the event loop


def parse_version(text: str | None) -> int | None:
    """A URL's version: digits within int64 (`INVALID_ARGUMENT` otherwise)."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > 19 or int(text) > MAX_VERSION:
        raise invalid_argument(f"Failed to convert version: {text[:40]}{'...' if len(text) > 40 else ''} to numeric.")
    return int(text)


def _json_response(status: int, payload: dict) -> Response:
    return Response(json.dumps(payload), status, media_type="application/json")


def status_json(manager: ModelManager, name: str, version: int | None) -> dict:
    """TF Serving's `GetModelStatus` answer as JSON."""
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in manager.status(name, version)
    ]}


def metadata_json(servable: Servable) -> dict:
    """TF Serving's `GetModelMetadata` answer as JSON."""
    signature_defs = json_format.MessageToDict(servable.signature_def_map(), preserving_proto_field_name=True)
    return {
        "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
        "metadata": {"signature_def": signature_defs},
    }


def decode_request(servable: Servable, raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, dict, bool]:
    """A `:predict` body's signature name, input arrays and whether it used the row format."""
    body = parse_json_body(raw, max_depth)
    signature_name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise invalid_argument(f"'signature_name' must be a string; received {json.dumps(signature_name)[:100]}")
    booleans = b"true" in raw or b"false" in raw  # else no walk over every number is needed
    arrays, row_format = decode_predict_body(body, servable.input_specs(signature_name), booleans)
    return signature_name, arrays, row_format


async def predict_json(
    servable: Servable, raw: bytes, executor: Executor, max_depth: int = MAX_JSON_DEPTH
) -> dict:
    """Runs one `:predict` body (bytes) and returns TF Serving's JSON answer.

    Small bodies and answers (up to `INLINE_BYTES`) are decoded and encoded on the event loop,
    which costs less than a hand-off to a thread; larger ones go to `executor`, so the loop
    never stalls on a big body. The signature runs on `executor`, or, when batching, waits in
    the batcher's queue without holding a thread.
    """
    loop = asyncio.get_running_loop()
    if len(raw) <= INLINE_BYTES:
        signature_name, arrays, row_format = decode_request(servable, raw, max_depth)
    else:
        signature_name, arrays, row_format = await loop.run_in_executor(
            executor, decode_request, servable, raw, max_depth)
    try:
        outputs = await asyncio.wrap_future(servable.submit(signature_name, arrays, executor))
    except Exception as error:
        raise from_exception(error) from error
    if sum(np.asarray(v).nbytes for v in outputs.values()) <= INLINE_BYTES:
        return encode_outputs(outputs, row_format)
    return await loop.run_in_executor(executor, encode_outputs, outputs, row_format)


def create_rest_app(
    manager: ModelManager,
    metrics: ServingMetrics,
    executor: Executor,
    max_json_depth: int = MAX_JSON_DEPTH,
) -> Starlette:
    """The Starlette app of TF Serving's REST API over a `ModelManager`."""

    async def models(request: Request) -> Response:
        start = time.perf_counter()
        match = _ROUTE.match(request.url.path)
        name = match["name"] if match else ""
        action = (match["action"] or "") if match else ""
        method = {"": "status", "/metadata": "metadata", ":predict": "predict"}.get(action, "other")
        try:
            if match is None or method == "other":
                raise not_found(f"Malformed request: {request.method} {request.url.path[:200]}")
            wanted = "POST" if method == "predict" else "GET"
            if request.method != wanted:
                raise invalid_argument(f"Use {wanted} for {request.url.path[:200]}; received {request.method}")
            version = parse_version(match["version"])
            if method == "status":
                status, payload = 200, status_json(manager, name, version)
            elif method == "metadata":
                status, payload = 200, metadata_json(manager.get(name, version))
            else:
                servable = manager.get(name, version)
                try:
                    raw = await request.body()
                except BodyTooLarge as error:
                    status, payload = 413, {"error": str(error)}
                except BodyTimeout as error:
                    status, payload = 408, {"error": str(error)}
                else:
                    payload = await predict_json(servable, raw, executor, max_json_depth)
                    status = 200
        except ServingError as error:
            status, payload = error.http_status, {"error": error.message}
        label = name if name in manager.model_names else ""  # bounded label values
        metrics.observe(label, "rest", method, str(status), time.perf_counter() - start)
        response = _json_response(status, payload)
        if status in (408, 413):
            response.headers["connection"] = "close"  # the rest of the body is never read
        return response

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return Starlette(routes=[
        Route(METRICS_PATH, prometheus, methods=["GET"]),
        Route("/v1/models/{path:path}", models, methods=["GET", "POST"]),
    ])
