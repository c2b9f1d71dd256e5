"""Resumable KerasTuner searches: extend a finished search, and recover from a killed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfmeta.nas.benchmarks import load_benchmark
from tfmeta.nas.search import ArchitectureSearch

SCRIPT = Path(__file__).with_name("nas_search_script.py")
REPO = Path(__file__).resolve().parents[2]


def make_search(bench, tmp_path, strategy, max_trials, calls):
    def evaluate(arch):
        calls.append(str(arch))
        return bench.accuracy(arch)

    kwargs = {"units": 16, "learning_rate": 0.01} if strategy == "controller" else {}
    return ArchitectureSearch(bench.space, evaluate=evaluate, strategy=strategy, objective="accuracy",
                              max_trials=max_trials, directory=str(tmp_path), project_name=strategy,
                              seed=0, strategy_kwargs=kwargs)


@pytest.mark.parametrize("strategy", ["controller", "evolution"])
def test_resume_with_larger_budget_keeps_trials_and_state(bench, tmp_path, strategy):
    calls = []
    first = make_search(bench, tmp_path, strategy, 6, calls).search(verbose=0)
    done = [r["arch"] for r in first.results()]
    state = first.oracle.strategy.get_state()
    assert len(calls) == 6 and len(set(done)) == 6

    calls2 = []
    second = make_search(bench, tmp_path, strategy, 10, calls2)  # overwrite=False -> reload
    # Strategy restored before searching on: same history (and controller weights/baseline).
    restored = second.oracle.strategy.get_state()
    assert restored["history"] == state["history"]
    if strategy == "controller":
        assert restored["controller"]["weights_npz_b64"] == state["controller"]["weights_npz_b64"]
        assert restored["controller"]["baseline"] == state["controller"]["baseline"]
        assert restored["controller"]["num_updates"] == 6
    else:
        assert restored["population"] == state["population"]
    second.search(verbose=0)
    archs = [r["arch"] for r in second.results()]
    assert len(calls2) == 4, "only the 4 new trials run"
    assert archs[:6] == done and len(set(archs)) == 10
    assert not set(calls2) & set(done), "a finished trial was repeated"
    assert all(r["status"] == "COMPLETED" for r in second.results())
    if strategy == "controller":
        assert second.oracle.strategy.controller.num_updates == 10


def run_script(macro_json, tmp_path, *extra, env=None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), macro_json, str(tmp_path), "killed", "controller", "8", *extra],
        capture_output=True, text=True, timeout=240, cwd=REPO, env=env,
    )


@pytest.mark.slow
def test_resume_after_killed_subprocess(macro_json, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for key in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(key, None)
    killed = run_script(macro_json, tmp_path, "--kill-after", "3", env=env)
    assert killed.returncode == 17, killed.stderr[-2000:]
    first = [line.split()[1] for line in killed.stdout.splitlines() if line.startswith("RAN ")]
    assert len(first) == 3
    state = json.loads((tmp_path / "killed" / "oracle.json").read_text())
    assert state["strategy"]["controller"]["num_updates"] == 3  # 3 rewards learned before the kill
    assert len(state["ongoing_trials"]) == 1  # the 4th trial was running

    resumed = run_script(macro_json, tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    second = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("RAN ")]
    # The interrupted trial is retried; the 3 finished ones are never evaluated again.
    assert len(second) == 5 and not set(second) & set(first)
    final = json.loads((tmp_path / "killed" / "oracle.json").read_text())
    assert final["strategy"]["controller"]["num_updates"] == 8
    assert sorted(final["end_order"]) == sorted(final["start_order"]) and len(final["end_order"]) == 8
    bench = load_benchmark("nasbench-macro", macro_json)
    assert len({tuple(h["indices"]) for h in final["strategy"]["history"]}) == 8
    assert all(h["reward"] == bench.accuracy(bench.space.decode(h["indices"])) for h in final["strategy"]["history"])
