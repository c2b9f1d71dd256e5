"""Server-side batching: concurrent requests to one signature run as one batch.

Like TF Serving's `--enable_batching`, requests are queued and merged along their first axis
until `max_batch_size` rows are waiting or the oldest has waited `batch_timeout_micros`; the
batch runs once and each caller gets its own rows back. On a CPU one call of 32 rows costs
little more than one call of 1 row, so single-row traffic gains throughput. Only signatures
whose inputs and outputs all have an unknown first (batch) dimension are batched (see
`is_batchable`); a request that is already `max_batch_size` rows or more runs alone.

Batching is written here rather than taken from TensorFlow: TF Serving's batch scheduler is
C++ inside `tensorflow_model_server` and has no Python API, and `tf.nondifferentiable_batch_function`
would change the exported graph.

Example:

>>> batcher = Batcher(run_fn, BatchingOptions(max_batch_size=32, batch_timeout_micros=2000))
>>> batcher.run({"x": np.zeros((1, 8, 8), np.float32)})["probabilities"].shape
(1, 10)
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

Arrays = Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's batching parameters (the subset that shapes a batch)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    # Batches are padded (with copies of their first row) to the next of these sizes, so the
    # model sees a few shapes only; empty: no padding. The last must be `max_batch_size`.
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        sizes = tuple(self.allowed_batch_sizes)
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != self.max_batch_size):
            raise ValueError(
                "`allowed_batch_sizes` must increase and end with `max_batch_size` "
                f"({self.max_batch_size}); received {sizes}."
            )
        for name in ("max_batch_size", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1; received {getattr(self, name)}.")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"`batch_timeout_micros` must be >= 0; received {self.batch_timeout_micros}.")


def is_batchable(input_shapes: Mapping[str, list], output_shapes: Mapping[str, list]) -> bool:
    """Whether every input and output has rank >= 1 and an unknown first dimension."""
    shapes = list(input_shapes.values()) + list(output_shapes.values())
    return bool(shapes) and all(s is not None and len(s) >= 1 and s[0] is None for s in shapes)


@dataclasses.dataclass
class _Request:
    inputs: Arrays
    rows: int
    key: tuple
    future: concurrent.futures.Future


class Batcher:
    """Merges concurrent `run(inputs)` calls into batches for `run_fn` (thread-safe)."""

    def __init__(self, run_fn: Callable[[Arrays], Arrays], options: BatchingOptions):
        self.run_fn = run_fn
        self.options = options
        self._queue: queue.Queue = queue.Queue()
        self._held: collections.deque = collections.deque()  # taken but left for a later batch
        self._collect = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"tfmeta-batch-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, inputs: Arrays) -> dict[str, np.ndarray]:
        """Runs one request's rows, batched with others', and returns its rows of the outputs."""
        future = self.submit(inputs)
        return dict(self.run_fn(inputs)) if future is None else future.result()

    def submit(self, inputs: Arrays) -> concurrent.futures.Future | None:
        """Queues one request's rows; the future gets its rows of the outputs.

        None when the request is not for a batch (its inputs differ in rows, it is a batch on
        its own, or the batcher is closed): the caller runs it directly. An asyncio server
        awaits the future (`asyncio.wrap_future`) instead of holding a thread per request.
        """
        rows = {len(v) for v in inputs.values()}
        if len(rows) != 1 or next(iter(rows)) >= self.options.max_batch_size or self._closed:
            return None
        key = tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))
        request = _Request(inputs, rows.pop(), key, concurrent.futures.Future())
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        """Stops the batch threads once the queued requests are done."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)

    def _next(self, timeout: float | None):
        if self._held:
            return self._held.popleft()
        return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()

    def _gather(self) -> list[_Request] | None:
        with self._collect:
            first = self._next(None)
            if first is None:
                return None
            batch, rows = [first], first.rows
            deadline = time.monotonic() + self.options.batch_timeout_micros / 1e6
            skipped = []
            while rows < self.options.max_batch_size:
                try:
                    item = self._next(deadline - time.monotonic())
                except queue.Empty:
                    break
                if item is None:
                    skipped.append(item)
                    break
                if item.key != first.key or rows + item.rows > self.options.max_batch_size:
                    skipped.append(item)  # another shape, or too many rows: the next batch
                    if rows + item.rows > self.options.max_batch_size:
                        break
                    continue
                batch.append(item)
                rows += item.rows
            self._held.extend(skipped)
            return batch

    def _pad(self, merged: dict) -> dict:
        rows = len(next(iter(merged.values())))
        target = next((size for size in self.options.allowed_batch_sizes if size >= rows), rows)
        if target == rows:
            return merged
        return {k: np.concatenate([v, np.repeat(v[:1], target - rows, axis=0)]) for k, v in merged.items()}

    def _work(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            try:
                merged = {k: np.concatenate([r.inputs[k] for r in batch]) for k in batch[0].inputs}
                outputs = self.run_fn(self._pad(merged))
            except BaseException as error:  # every caller of the batch gets the error
                for request in batch:
                    request.future.set_exception(error)
                continue
            start = 0
            for request in batch:
                end = start + request.rows
                request.future.set_result({k: v[start:end] for k, v in outputs.items()})
                start = end
