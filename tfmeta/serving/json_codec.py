"""TF Serving's REST JSON for tensors: request bodies in, numpy arrays out, and back.

`decode_predict_body` turns a `:predict` body into named arrays of each input's dtype:
`{"instances": [...]}` (row format: one entry per example, an object per example for
signatures with several inputs) or `{"inputs": ...}` (columnar: one value, or an object of
named values). It is strict where TF Serving is: the body must be a JSON object of bounded
nesting depth, a float tensor takes numbers only (no `null`, no booleans, no strings), an
integer tensor integers only, and a string tensor strings or `{"b64": "<base64>"}` for bytes
(encoded images). `encode_outputs` writes `{"predictions": ...}` or `{"outputs": ...}`.

Example:

>>> body = parse_json_body(b'{"instances": [[1.0, 2.0]]}')
>>> decode_predict_body(body, {"x": tf.TensorSpec([None, 2], tf.float32, name="x")})
({'x': array([[1., 2.]], dtype=float32)}, True)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tfmeta.serving.errors import invalid_argument

MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings ignored)."""
    stripped = np.frombuffer(_JSON_STRING.sub(b'""', raw), np.uint8)
    if stripped.size == 0:
        return 0
    opens = (stripped == ord("[")) | (stripped == ord("{"))
    closes = (stripped == ord("]")) | (stripped == ord("}"))
    return int(np.cumsum(opens.astype(np.int64) - closes).max(initial=0))


def parse_json_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """Parses a request body that must be a JSON object nested at most `max_depth` deep."""
    # A body with at most `max_depth` brackets cannot be nested deeper: no scan (the usual case).
    depth = 0 if raw.count(b"[") + raw.count(b"{") <= max_depth else json_depth(raw)
    if depth > max_depth:
        raise invalid_argument(
            f"JSON Parse error: the body is nested {depth} levels deep; at most {max_depth} are allowed"
        )
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise invalid_argument(f"JSON Parse error: {error}") from error
    if not isinstance(body, dict):
        raise invalid_argument(
            f"JSON Value: the request body must be a JSON object; received a {_json_type(body)}"
        )
    return body


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _decode_strings(value: Any, name: str):
    if isinstance(value, list):
        return [_decode_strings(v, name) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise invalid_argument(f"Unable to base64 decode the value of input '{name}': {error}") from error
    raise invalid_argument(
        f"Expected a string or {{\"b64\": ...}} object in string input '{name}'; received {json.dumps(value)[:100]}"
    )


_NOTHING = object()


def _find_invalid(value: Any):
    """The first leaf that is not a JSON number (bool, null, string, object), else `_NOTHING`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            return item
    return _NOTHING


def to_array(value: Any, spec: tf.TensorSpec, name: str, check_booleans: bool = True) -> np.ndarray:
    """One input's JSON value as an array of the spec's dtype (strictly checked).

    `check_booleans=False` skips the walk that finds `true`/`false` among numbers (numpy would
    read them as 1 and 0); pass it only for bodies that hold no boolean literal. `null`,
    strings and objects are caught by the array's dtype either way.
    """
    if spec.dtype == tf.string:
        decoded = _decode_strings(value, name)
        try:
            array = np.array(decoded, dtype=object)
        except ValueError as error:
            raise invalid_argument(f"Input '{name}' is ragged: {error}") from error
        return array
    if spec.dtype == tf.bool:
        kinds, wanted = "b", "booleans"
    elif spec.dtype.is_integer:
        kinds, wanted = "iu", "integers"
    else:
        kinds, wanted = "iuf", "numbers"
    bad = _find_invalid(value) if check_booleans and spec.dtype != tf.bool else _NOTHING
    if bad is not _NOTHING:  # numpy would turn true into 1.0 and null into an object array
        raise invalid_argument(
            f"Input '{name}' of dtype {spec.dtype.name} takes {wanted} only; "
            f"received {json.dumps(bad)[:100]} (JSON {_json_type(bad)})"
        )
    try:
        array = np.array(value)
    except (ValueError, OverflowError) as error:
        raise invalid_argument(f"Input '{name}' is not a rectangular tensor: {error}") from error
    if array.dtype.kind not in kinds:
        bad = _find_invalid(value) if spec.dtype != tf.bool else _NOTHING
        shown = f"{json.dumps(bad)[:100]} (JSON {_json_type(bad)})" if bad is not _NOTHING else f"{array.dtype.name} values"
        raise invalid_argument(f"Input '{name}' of dtype {spec.dtype.name} takes {wanted} only; received {shown}")
    try:
        return array.astype(spec.dtype.as_numpy_dtype)
    except OverflowError as error:
        raise invalid_argument(f"Input '{name}' does not fit {spec.dtype.name}: {error}") from error


def decode_predict_body(
    body: Mapping[str, Any], specs: Mapping[str, tf.TensorSpec], check_booleans: bool = True
) -> tuple[dict[str, np.ndarray], bool]:
    """`({input name: array}, row_format)` of a parsed `:predict` body (see `to_array`)."""
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances == has_inputs:
        raise invalid_argument(
            "JSON Value: the request body must have exactly one of 'instances' (row format) "
            f"or 'inputs' (columnar format); received keys {sorted(body)}"
        )
    if has_instances:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise invalid_argument(f"'instances' must be a list; received a {_json_type(rows)}")
        named = [isinstance(r, dict) and set(r) != {"b64"} for r in rows]
        if any(named) and not all(named):
            raise invalid_argument("'instances' must be all named objects or all values, not a mix")
        if rows and all(named):
            keys = set(rows[0])
            if any(set(r) != keys for r in rows):
                raise invalid_argument("Every instance must have the same named inputs")
            columns = {k: [r[k] for r in rows] for k in rows[0]}
        elif len(specs) == 1:
            columns = {next(iter(specs)): rows}
        else:
            raise invalid_argument(
                f"The signature takes several inputs {sorted(specs)}: each instance must be an object naming them"
            )
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and set(inputs) != {"b64"}:
            columns = dict(inputs)
        elif len(specs) == 1:
            columns = {next(iter(specs)): inputs}
        else:
            raise invalid_argument(
                f"The signature takes several inputs {sorted(specs)}: 'inputs' must be an object naming them"
            )
    expected = "{" + ",".join(sorted(specs)) + "}"
    arrays = {}
    for key, value in columns.items():
        if key not in specs:
            raise invalid_argument(
                f"input tensor alias not found in signature: {key}. Inputs expected to be in the set {expected}."
            )
        arrays[key] = to_array(value, specs[key], key, check_booleans)
    return arrays, has_instances


def _jsonable(array: np.ndarray):
    if array.dtype.kind in "SO":
        def text(b):
            if isinstance(b, bytes):
                try:
                    return b.decode("utf-8")
                except UnicodeDecodeError:
                    return {"b64": base64.b64encode(b).decode("ascii")}
            return b
        return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
    return array.tolist()


def encode_outputs(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict:
    """TF Serving's answer: `{"predictions": rows}` (row format) or `{"outputs": ...}`."""
    values = {k: _jsonable(np.asarray(v)) for k, v in outputs.items()}
    if not row_format:
        return {"outputs": values if len(values) > 1 else next(iter(values.values()))}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    sizes = {k: len(v) if isinstance(v, list) else None for k, v in values.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise invalid_argument(
            f"The outputs have different batch sizes {sizes}: use the columnar 'inputs' format"
        )
    n = next(iter(sizes.values()))
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(n)]}
