"""A search takes numpy integers for its budget and seed (AutoModel passes them on)."""

from __future__ import annotations

import json

import numpy as np


def test_search_with_numpy_max_trials_runs_and_saves_its_state(bench, tmp_path):
    from tfmeta.nas.search import ArchitectureSearch

    search = ArchitectureSearch(bench.space, evaluate=bench.accuracy, strategy="random", objective="accuracy",
                                max_trials=np.int64(3), directory=str(tmp_path), project_name="p", seed=np.int64(0))
    search.search(verbose=0)
    assert len(search.results()) == 3
    assert json.loads((tmp_path / "p" / "oracle.json").read_text())["strategy"]
