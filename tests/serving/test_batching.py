"""Server-side batching: merged requests get exactly their own rows of the batch's answer."""

import threading

import numpy as np
import pytest

from tfmeta.serving.batching import Batcher, BatchingOptions, is_batchable
from tfmeta.serving.servable import Servable


def test_concurrent_requests_are_merged_and_split_back():
    calls = []

    def double(arrays):
        calls.append(len(arrays["x"]))
        return {"y": arrays["x"] * 2}

    batcher = Batcher(double, BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    answers = {}

    def request(i):
        answers[i] = batcher.run({"x": np.full((1 + i % 3, 2), i, np.float32)})["y"]

    threads = [threading.Thread(target=request, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batcher.close()
    for i in range(24):
        np.testing.assert_array_equal(answers[i], np.full((1 + i % 3, 2), 2 * i))
    assert sum(calls) == sum(1 + i % 3 for i in range(24))
    assert len(calls) < 24 and max(calls) <= 8  # merged, never past max_batch_size


def test_batches_are_padded_to_an_allowed_size_and_cut_back():
    seen = []

    def record(arrays):
        seen.append(len(arrays["x"]))
        return {"y": arrays["x"] + 1}

    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=0, num_batch_threads=1, allowed_batch_sizes=(4, 8))
    batcher = Batcher(record, options)
    np.testing.assert_array_equal(batcher.run({"x": np.arange(3.0)[:, None]})["y"], [[1.0], [2.0], [3.0]])
    batcher.close()
    assert seen == [4]
    with pytest.raises(ValueError, match="allowed_batch_sizes"):
        BatchingOptions(max_batch_size=8, allowed_batch_sizes=(4, 6))


def test_a_failing_batch_fails_each_of_its_requests():
    def broken(arrays):
        raise ValueError("bad batch")

    batcher = Batcher(broken, BatchingOptions(max_batch_size=4, batch_timeout_micros=1000))
    with pytest.raises(ValueError, match="bad batch"):
        batcher.run({"x": np.zeros((1, 2))})
    batcher.close()


def test_only_signatures_with_a_batch_dimension_are_batched():
    assert is_batchable({"x": [None, 4]}, {"y": [None, 3]})
    assert not is_batchable({"x": [1, 4]}, {"y": [None, 3]})
    assert not is_batchable({"x": []}, {"y": [None]})


def test_batching_gives_the_same_numbers_as_unbatched(tiny_exports):
    plain = Servable.load("clf", 1, tiny_exports[1])
    batched = Servable.load("clf", 1, tiny_exports[1], BatchingOptions(max_batch_size=16, batch_timeout_micros=50_000))
    rows = np.random.default_rng(0).normal(size=(24, 4)).astype(np.float32)
    expected = plain.run("serving_default", {"x": rows})
    answers = {}

    def request(i):
        answers[i] = batched.run("serving_default", {"x": rows[i:i + 1]})

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    batched.close()
    np.testing.assert_allclose(np.concatenate([answers[i]["probabilities"] for i in range(24)]),
                               expected["probabilities"], rtol=1e-6, atol=1e-7)
    assert [int(answers[i]["classes"][0]) for i in range(24)] == expected["classes"].tolist()
