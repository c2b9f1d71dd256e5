"""Lake's one-shot runs: building them from held-out alphabets and reading them back."""

import numpy as np
import pytest

from tfmeta.data.omniglot import load_omniglot
from tfmeta.data.oneshot_runs import load_oneshot_runs, make_oneshot_runs


def test_runs_round_trip_folder_and_zip(tmp_path, data_dir):
    make_oneshot_runs(tmp_path / "runs", ["Korean"], n_runs=3, data_dir=data_dir, seed=1)
    make_oneshot_runs(tmp_path / "runs.zip", ["Korean"], n_runs=3, data_dir=data_dir, seed=1)
    folder = load_oneshot_runs(tmp_path / "runs")
    zipped = load_oneshot_runs(tmp_path / "runs.zip")
    assert len(folder) == 3
    for a, b in zip(folder, zipped):
        assert a.support_x.shape == (20, 28, 28, 1) and a.query_x.shape == (20, 28, 28, 1)
        np.testing.assert_array_equal(a.support_y, np.arange(20))
        assert sorted(a.query_y.tolist()) == list(range(20))  # each class queried once
        np.testing.assert_array_equal(a.query_x, b.query_x)
        np.testing.assert_array_equal(a.query_y, b.query_y)
    text = (tmp_path / "runs" / "run01" / "class_labels.txt").read_text().splitlines()
    assert text[0].startswith("run01/test/item01.png run01/training/class")


def test_run_queries_are_other_drawings_of_the_support_characters(tmp_path, data_dir):
    make_oneshot_runs(tmp_path / "runs", ["Korean"], n_runs=2, data_dir=data_dir, seed=0)
    korean = load_omniglot("small1", data_dir=data_dir, alphabets=["Korean"])
    for ep in load_oneshot_runs(tmp_path / "runs"):
        for qx, qy in zip(ep.query_x, ep.query_y):
            # The query is a real Korean drawing, distinct from its class's support drawing ...
            assert np.min(np.abs(korean.x - qx).sum(axis=(1, 2, 3))) == 0
            assert np.abs(ep.support_x[qy] - qx).sum() > 0
            # ... and both drawings belong to the same character.
            same_char = korean.y[np.argmin(np.abs(korean.x - qx).sum(axis=(1, 2, 3)))]
            support_char = korean.y[np.argmin(np.abs(korean.x - ep.support_x[qy]).sum(axis=(1, 2, 3)))]
            assert same_char == support_char


def test_runs_need_enough_characters(tmp_path, data_dir):
    with pytest.raises(ValueError, match="ways`=30"):
        make_oneshot_runs(tmp_path / "r", ["Greek"], ways=30, data_dir=data_dir)


def test_missing_runs_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder or a zip"):
        load_oneshot_runs(tmp_path / "nope")


def test_reuse_keeps_runs_already_written(tmp_path, data_dir):
    first = make_oneshot_runs(tmp_path / "runs", ["Korean"], n_runs=2, data_dir=data_dir, seed=0)
    before = (tmp_path / "runs" / "run01" / "class_labels.txt").read_text()
    # Another seed would draw other runs; with reuse the folder is scored as it is.
    again = make_oneshot_runs(tmp_path / "runs", ["Korean"], n_runs=2, data_dir=data_dir, seed=5, reuse=True)
    assert again == first and (tmp_path / "runs" / "run01" / "class_labels.txt").read_text() == before
    redrawn = make_oneshot_runs(tmp_path / "runs", ["Korean"], n_runs=2, data_dir=data_dir, seed=5)
    assert redrawn == first and (tmp_path / "runs" / "run01" / "class_labels.txt").read_text() != before
    fresh = make_oneshot_runs(tmp_path / "new", ["Korean"], n_runs=1, data_dir=data_dir, seed=0, reuse=True)
    assert (tmp_path / "new" / "run01" / "class_labels.txt").read_text() == before and fresh == str(tmp_path / "new")
