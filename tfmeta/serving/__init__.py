"""A TF Serving-compatible model server: REST and gRPC APIs, version policies, limits, metrics.

`tfmeta serve` serves `saved_models/NAME/<version>/` folders (or a TF Serving model config
file of several models) with TF Serving's REST API and, with `--grpc-port`, its gRPC
`PredictionService` and `ModelService`. The modules, one idea each: `model_config`
(model_config_list files, version policies), `model_manager` (loads and unloads versions off
the request path), `servable` (one loaded version), `json_codec` (REST JSON <-> tensors),
`rest` (the Starlette app), `limits` (body size, timeouts, bounded concurrency), `batching`,
`metrics` (Prometheus), `grpc_service`, `warmup` (TF Serving's warm-up requests), `server`
(uvicorn + gRPC) and `cli` (the `tfmeta serve` flags).

Example:

>>> from tfmeta.serving import make_server
>>> server = make_server("saved_models/quickstart", port=8501)
>>> server.serve_forever()
"""

from __future__ import annotations

import importlib

from tfmeta._deprecation import moved_names

# Imported on first use, so that `tfmeta --help` (which reads the serve flags) stays fast.
_HOMES = {
    "BatchingOptions": "tfmeta.serving.batching",
    "ModelConfig": "tfmeta.serving.model_config",
    "VersionPolicy": "tfmeta.serving.model_config",
    "read_model_config_file": "tfmeta.serving.model_config",
    "ModelManager": "tfmeta.serving.model_manager",
    "ModelServer": "tfmeta.serving.server",
    "ServerOptions": "tfmeta.serving.server",
    "make_server": "tfmeta.serving.server",
}
__all__ = list(_HOMES)

# The single-file server's helpers, kept as deprecated spellings.
_deprecated = moved_names(__name__, {
    "signature_metadata": "tfmeta.serving.legacy",
    "predict": "tfmeta.serving.legacy",
    "ModelRepository": "tfmeta.serving.legacy",
})


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    return _deprecated(name)


def __dir__():
    return __all__
