"""Distributed search with KerasTuner's chief/worker mode on loopback: a chief and two workers."""

from __future__ import annotations

import json

import pytest
from chief_and_workers import ran as worker_ran
from chief_and_workers import run_chief_and_two_workers

MAX_TRIALS = 12


@pytest.mark.slow
def test_chief_and_two_workers_share_one_controller(macro_json, tmp_path):
    outputs = run_chief_and_two_workers(macro_json, tmp_path, "dist", "controller", MAX_TRIALS)
    ran = {t: worker_ran(outputs[t]) for t in ("tuner0", "tuner1")}
    # The chief only serves the oracle; both workers evaluated trials, none twice.
    assert not [line for line in outputs["chief"].splitlines() if line.startswith("RAN ")]
    assert len(ran["tuner0"]) >= 1 and len(ran["tuner1"]) >= 1, ran
    assert len(ran["tuner0"]) + len(ran["tuner1"]) == MAX_TRIALS
    assert not set(ran["tuner0"]) & set(ran["tuner1"])
    summary = json.loads(next(l for l in outputs["chief"].splitlines() if l.startswith("SUMMARY "))[8:])
    # The chief's controller learned from every worker's result.
    assert summary["completed"] == MAX_TRIALS
    assert summary["controller_updates"] >= MAX_TRIALS
    assert sorted(summary["history_archs"]) == sorted(ran["tuner0"] + ran["tuner1"])
    state = json.loads((tmp_path / "dist" / "oracle.json").read_text())
    assert state["strategy"]["controller"]["num_updates"] == summary["controller_updates"]
