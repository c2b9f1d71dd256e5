"""A small server for the TF Serving REST API subset, to try exports without TF Serving.

Serves `saved_models/NAME/<version>/` with:

- `GET  /v1/models/NAME[/versions/V]`            model status
- `GET  /v1/models/NAME[/versions/V]/metadata`   signature definitions
- `POST /v1/models/NAME[/versions/V]:predict`    `{"signature_name"?, "instances": [...]}`
  (row format, answers `{"predictions": ...}`) or `{"inputs": ...}` (columnar, answers
  `{"outputs": ...}`). Signatures whose inputs have different batch sizes, such as
  `few_shot`, take the columnar format, as in TF Serving.

Without `/versions/V` the newest version is used. Only TensorFlow is needed: models are loaded
with `tf.saved_model.load`.

Example:

>>> server = make_server("saved_models/quickstart", port=8501)
>>> server.serve_forever()
"""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

from tfmeta.export import existing_versions

_ROUTE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict)?/?$")


class ModelRepository:
    """Loads and caches the versions of one model base path."""

    def __init__(self, base_path: str, name: str):
        self.base_path = base_path
        self.name = name
        self._loaded: dict[int, object] = {}
        self._lock = threading.Lock()

    def versions(self) -> list[int]:
        return existing_versions(self.base_path)

    def get(self, version: int | None):
        versions = self.versions()
        if not versions:
            raise LookupError(f"No versions of model {self.name} found under {self.base_path}.")
        version = versions[-1] if version is None else version
        if version not in versions:
            raise LookupError(f"Servable not found for request: Specific({self.name}, {version})")
        with self._lock:
            if version not in self._loaded:
                self._loaded[version] = tf.saved_model.load(os.path.join(self.base_path, str(version)))
        return version, self._loaded[version]


def _to_json(value):
    arr = np.asarray(value)
    if arr.dtype.kind in ("S", "O"):
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b, otypes=[object])(arr).tolist()
    return arr.tolist()


def _spec_json(spec: tf.TensorSpec) -> dict:
    dims = [{"size": str(d if d is not None else -1)} for d in spec.shape.as_list()] if spec.shape.rank is not None else []
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum), "tensor_shape": {"dim": dims}, "name": spec.name}


def signature_metadata(loaded) -> dict:
    """TF Serving-style `signature_def` map for a loaded SavedModel."""
    defs = {}
    for name, fn in loaded.signatures.items():
        inputs = {k: _spec_json(s) for k, s in fn.structured_input_signature[1].items()}
        outputs = {k: _spec_json(s) for k, s in fn.structured_outputs.items()}
        defs[name] = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
    return {"signature_def": {"signature_def": defs}}


def predict(loaded, body: dict) -> dict:
    """Runs one `:predict` request body against a loaded SavedModel."""
    sig_name = body.get("signature_name", "serving_default")
    if sig_name not in loaded.signatures:
        raise ValueError(f"Serving signature name: \"{sig_name}\" not found in signature def")
    fn = loaded.signatures[sig_name]
    specs = fn.structured_input_signature[1]
    if "instances" in body:
        rows = body["instances"]
        if len(specs) == 1:
            (key,) = specs
            columns = {key: [r[key] if isinstance(r, dict) else r for r in rows]}
        else:
            columns = {k: [r[k] for r in rows] for k in specs}
        row_format = True
    elif "inputs" in body:
        inputs = body["inputs"]
        columns = inputs if isinstance(inputs, dict) else {next(iter(specs)): inputs}
        row_format = False
    else:
        raise ValueError("Missing 'inputs' or 'instances' key")
    missing = set(specs) - set(columns)
    if missing:
        raise ValueError(f"Missing inputs: {sorted(missing)}; the signature takes {sorted(specs)}.")
    args = {k: tf.constant(np.asarray(columns[k]), dtype=specs[k].dtype) for k in specs}
    outputs = {k: _to_json(v) for k, v in fn(**args).items()}
    if row_format:
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}
    return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}


def make_server(model_base_path: str, model_name: str | None = None, port: int = 8501, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Builds (does not start) an HTTP server for one model base path."""
    name = model_name or os.path.basename(os.path.normpath(model_base_path))
    repo = ModelRepository(model_base_path, name)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            m = _ROUTE.match(self.path)
            if not m or m.group(1) != name:
                self._send(404, {"error": f"Could not find model or route {self.path}"})
                return None
            return m.group(2), m.group(3)

        def do_GET(self):
            route = self._route()
            if route is None:
                return
            version, action = route
            try:
                v, loaded = repo.get(int(version) if version else None)
            except LookupError as e:
                return self._send(404, {"error": str(e)})
            if action == "/metadata":
                return self._send(200, {"model_spec": {"name": name, "signature_name": "", "version": str(v)}, "metadata": signature_metadata(loaded)})
            if action is None:
                return self._send(200, {"model_version_status": [{"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
            self._send(405, {"error": "Use POST for :predict"})

        def do_POST(self):
            route = self._route()
            if route is None:
                return
            version, action = route
            if action != ":predict":
                return self._send(404, {"error": f"Unsupported route {self.path}"})
            try:
                _, loaded = repo.get(int(version) if version else None)
            except LookupError as e:
                return self._send(404, {"error": str(e)})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                self._send(200, predict(loaded, body))
            except (ValueError, KeyError, TypeError, tf.errors.OpError) as e:
                self._send(400, {"error": str(e).splitlines()[0] if str(e) else repr(e)})

    return ThreadingHTTPServer((host, port), Handler)
