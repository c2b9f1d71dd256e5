"""Serving errors with TF Serving's status codes, and their HTTP and gRPC equivalents.

Every failure a client can cause is a `ServingError` whose message is the full text (TF
Serving's REST API answers `{"error": "<message>"}` with the HTTP status of the code).
TensorFlow's own errors keep their whole message, shape details included.

Example:

>>> try:
...     signature(x=tf.zeros([1, 3]))
... except Exception as error:
...     raise from_exception(error)
"""

from __future__ import annotations

import grpc
import tensorflow as tf

# TF Serving's mapping of canonical error codes to HTTP statuses (http_rest_api_util).
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNKNOWN": 500,
}


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failure with a canonical code (`"INVALID_ARGUMENT"`, `"NOT_FOUND"`, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return getattr(grpc.StatusCode, self.code, grpc.StatusCode.UNKNOWN)


def invalid_argument(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def from_exception(error: BaseException) -> ServingError:
    """The `ServingError` of an exception raised while running a signature (full message)."""
    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        # TensorFlow's error codes are the canonical gRPC codes.
        return ServingError(_CODE_NAMES.get(error.error_code, "INTERNAL"), str(error))
    if isinstance(error, (TypeError, ValueError)):
        # Binding inputs to a concrete function (wrong shape or dtype) raises these in Python.
        return invalid_argument(str(error))
    return ServingError("INTERNAL", f"{type(error).__name__}: {error}")
