"""The single-file server's helpers, kept for old callers (deprecated; see `tfmeta.serving`).

`ModelRepository(base_path, name).get(version)` loads a version on first use,
`signature_metadata(loaded)` gives the metadata JSON of a loaded SavedModel and
`predict(loaded, body)` runs a `:predict` body; all on today's modules.

Example:

>>> version, loaded = ModelRepository("saved_models/quickstart", "quickstart").get(None)
>>> predict(loaded, {"instances": images.tolist()})["predictions"][0]["classes"]
0
"""

from __future__ import annotations

import json
import os
import threading

from tfmeta.export import existing_versions
from tfmeta.serving.json_codec import encode_outputs
from tfmeta.serving.rest import decode_request
from tfmeta.serving.servable import Servable


class ModelRepository:
    """Loads and caches the versions of one model base path (on first request)."""

    def __init__(self, base_path: str, name: str):
        self.base_path = base_path
        self.name = name
        self._loaded: dict[int, Servable] = {}
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
                path = os.path.join(self.base_path, str(version))
                self._loaded[version] = Servable.load(self.name, version, path)
        return version, self._loaded[version].loaded


def signature_metadata(loaded) -> dict:
    """TF Serving-style `signature_def` map of a loaded SavedModel (from its concrete functions)."""
    from tensorflow.core.framework import types_pb2

    def spec_json(spec):
        dims = [{"size": str(-1 if d is None else d)} for d in spec.shape.as_list()] if spec.shape.rank is not None else []
        return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum), "tensor_shape": {"dim": dims}, "name": spec.name}

    defs = {}
    for name, fn in loaded.signatures.items():
        defs[name] = {
            "inputs": {k: spec_json(s) for k, s in fn.structured_input_signature[1].items()},
            "outputs": {k: spec_json(s) for k, s in fn.structured_outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
    return {"signature_def": {"signature_def": defs}}


def predict(loaded, body: dict) -> dict:
    """Runs one `:predict` request body (a dict) against a loaded SavedModel."""
    servable = Servable("", 0, "", loaded, {})
    signature_name, arrays, row_format = decode_request(servable, json.dumps(body).encode())
    return encode_outputs(servable.run(signature_name, arrays), row_format)
