"""Does an exported SavedModel compile with XLA? The TPU-readiness check, run on the CPU.

A TPU runs only what XLA compiles, with static shapes. `check_export(path)` loads a tfmeta
SavedModel, gives every signature concrete inputs (each unknown dimension set to a small
size) and compiles it with `tf.function(jit_compile=True)` (XLA's compiler on the CPU, the
same front end as the TPU's: an op without an XLA kernel fails here as it would there; a shape
read from the data is specialised to the sample's values by the just-in-time compiler, so
keep shapes static, as the learners' pipelines do). Each signature gets one of three verdicts:

- `"compiles"`: the whole signature runs under XLA.
- `"host preprocessing"`: the signature takes strings (raw table columns, raw text, encoded
  images) or returns them (class names). String ops (`StringLookup`, `TextVectorization`, parsing, decoding) have no XLA
  kernels on any device: on a TPU they run on the host CPU, which feeds the device. The
  numeric part behind them (the graph from the first numeric tensors computed from the
  strings to the outputs) is then compiled alone; `numeric` says whether it compiles.
- `"fails"`: the signature takes numbers and does not compile; `reason` says why.

`tfmeta check-export PATH` prints the same report (exit status 1 when a signature fails). The
check is a separate step rather than part of every export: it reloads the SavedModel and
compiles every signature, seconds per export that most users (CPU or GPU serving) never need.

Example:

>>> for check in check_export("saved_models/digits"):               # doctest: +SKIP
...     print(check.signature, check.status, check.numeric, check.reason)
serving_default compiles None
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow as tf

from tfmeta.export import latest_version_dir

COMPILES, HOST, FAILS = "compiles", "host preprocessing", "fails"
#: The size given to every unknown dimension (examples, support set, query set, image sides).
SIZE = 4


@dataclasses.dataclass
class SignatureCheck:
    """The verdict on one signature: `status` (`"compiles"`, `"host preprocessing"` or
    `"fails"`), `reason` (why not, shortened), and for host preprocessing `numeric`
    (`"compiles"`, `"fails"`, or None when no numeric part was found) and `numeric_reason`."""

    signature: str
    status: str
    reason: str | None = None
    numeric: str | None = None
    numeric_reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a TPU could serve it: it compiles, or only its string preprocessing does not."""
        return self.status == COMPILES or (self.status == HOST and self.numeric != FAILS)


def sample_value(spec: tf.TensorSpec, size: int = SIZE) -> tf.Tensor:
    """A concrete tensor for `spec`: unknown dimensions set to `size`; labels-like integer
    inputs cycle through two classes (a support set of two ways), strings are `"a"`."""
    shape = [size if d is None else d for d in spec.shape.as_list()]
    if spec.dtype == tf.string:
        return tf.fill(shape, "a")
    count = int(np.prod(shape)) if shape else 1
    if spec.dtype.is_integer:
        return tf.cast(tf.reshape(tf.range(count) % 2, shape), spec.dtype)
    if spec.dtype.is_bool:
        return tf.zeros(shape, tf.bool)
    values = np.random.default_rng(0).random(count).reshape(shape)
    return tf.constant(values, dtype=spec.dtype)


def _short(error: Exception, limit: int = 300) -> str:
    """The unsupported ops named by an XLA error (`"unsupported: HistogramFixedWidth"`), or
    its first line."""
    text = str(error)
    ops = sorted(set(re.findall(r"No registered '(\w+)' OpKernel for XLA", text)))
    if ops:
        return f"unsupported by XLA: {', '.join(ops)}"[:limit]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:limit]


def _compile(fn, inputs: dict) -> str | None:
    """None if `fn(**inputs)` compiles and runs under XLA, else the reason."""
    try:
        tf.function(lambda kwargs: fn(**kwargs), jit_compile=True)(inputs)
        return None
    except Exception as error:  # noqa: BLE001 - any failure is the verdict
        return _short(error)


def _body(signature):
    """`(graph, inputs)`: the graph a loaded signature runs (the function its one call op
    calls: ExportArchive's signatures wrap the traced endpoint) and, for each of that graph's
    inputs, its value source: an index into the signature's own inputs, or a captured handle."""
    from tensorflow.python.framework import function_def_to_graph  # no public API reads a body

    arguments = {t.ref(): i for i, t in enumerate(signature.inputs[: len(_input_specs(signature))])}
    captured = {internal.ref(): external for external, internal in signature.graph.captures}
    calls = [op for op in signature.graph.get_operations() if op.type in ("StatefulPartitionedCall", "PartitionedCall")]
    if len(calls) != 1:
        return signature.graph, [(t, arguments.get(t.ref(), captured.get(t.ref()))) for t in signature.graph.inputs]
    from tensorflow.python.eager import context

    call = calls[0]
    name = call.get_attr("f").name
    library = {f.signature.name: f for f in signature.graph.as_graph_def().library.function}
    definition = library[name] if name in library else context.context().get_function_def(name)
    graph = function_def_to_graph.function_def_to_graph(definition, input_shapes=[t.shape for t in call.inputs])
    return graph, [(inner, arguments.get(outer.ref(), captured.get(outer.ref())))
                   for inner, outer in zip(graph.inputs, call.inputs)]


def _numeric_part(signature):
    """`(fn, inputs)`: the signature's graph from the first numeric tensors computed from its
    string inputs to its outputs, as a function, and the values those tensors take for sample
    inputs (computed by the host part of the same graph). None when there is no such part."""
    from tensorflow.python.eager import wrap_function  # pruning a graph: no public API does it

    graph, sources = _body(signature)
    # Host ops take strings; the boundary is what they give the numeric ops (those taking none).
    host = {op.name for op in graph.get_operations() if any(t.dtype == tf.string for t in op.inputs)}
    boundary = [out for op in graph.get_operations() if op.name in host for out in op.outputs
                if (out.dtype.is_numeric or out.dtype.is_bool) and out.dtype != tf.resource
                and any(consumer.name not in host for consumer in out.consumers())]
    fetches = [t for t in graph.outputs if t.dtype.is_numeric or t.dtype.is_bool]  # not e.g. class names
    if not fetches:
        return None
    samples = [sample_value(spec) for spec in _input_specs(signature)]
    feeds = [t for t, _ in sources]
    values = [samples[source] if isinstance(source, int) else source for _, source in sources]
    wrapped = wrap_function.WrappedFunction(graph, variable_holder=wrap_function.VariableHolder())
    at_boundary = wrapped.prune(feeds=feeds, fetches=boundary)(*values)
    # Fed to the numeric part besides the boundary: the numeric inputs and the captured handles.
    others = [(t, v) for (t, source), v in zip(sources, values) if t.dtype != tf.string]
    numeric = wrapped.prune(feeds=boundary + [t for t, _ in others], fetches=fetches)
    inputs = {f"t{i}": v for i, v in enumerate(list(at_boundary) + [v for _, v in others])}
    return (lambda **kw: numeric(*[kw[f"t{i}"] for i in range(len(kw))]), inputs)


def _input_specs(signature) -> list:
    return [spec for spec in tf.nest.flatten(signature.structured_input_signature[1])]


def check_signature(name: str, signature) -> SignatureCheck:
    """Compiles one loaded signature (see the module docstring)."""
    specs = _input_specs(signature)
    string_outputs = [key for key, out in signature.structured_outputs.items() if out.dtype == tf.string]
    if any(spec.dtype == tf.string for spec in specs) or string_outputs:
        reason = "string inputs: preprocessing runs on the host CPU"
        if not any(spec.dtype == tf.string for spec in specs):
            reason = f"string outputs ({', '.join(string_outputs)}): looked up on the host CPU"
        check = SignatureCheck(name, HOST, reason)
        try:
            part = _numeric_part(signature)
        except Exception as error:  # noqa: BLE001
            check.numeric_reason = f"numeric part not separated from the SavedModel ({_short(error, 150)})"
            return check
        if part is not None:
            numeric, values = part
            reason = _compile(numeric, values)
            check.numeric, check.numeric_reason = (COMPILES, None) if reason is None else (FAILS, reason)
        return check
    reason = _compile(signature, {spec.name: sample_value(spec) for spec in specs})
    return SignatureCheck(name, COMPILES if reason is None else FAILS, reason)


def check_export(path: str) -> list[SignatureCheck]:
    """Checks every signature of a SavedModel (a version directory, or a base directory: its
    newest version). Returns one `SignatureCheck` per signature, sorted by name."""
    loaded = tf.saved_model.load(latest_version_dir(path))
    return [check_signature(name, loaded.signatures[name]) for name in sorted(loaded.signatures)]


def format_report(checks: list[SignatureCheck]) -> str:
    """One line per signature: name, verdict, and why (or the numeric part's verdict)."""
    lines = []
    for check in checks:
        line = f"{check.signature}: {check.status}"
        if check.status == HOST:
            line += f" (numeric part: {check.numeric or 'not found'})"
        reason = check.reason if check.status == FAILS else check.numeric_reason
        lines.append(line + (f" - {reason}" if reason else ""))
    return "\n".join(lines)
