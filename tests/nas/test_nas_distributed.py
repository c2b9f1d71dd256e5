"""Distributed search with KerasTuner's chief/worker mode on loopback: a chief and two workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("nas_search_script.py")
REPO = Path(__file__).resolve().parents[2]
MAX_TRIALS = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_share_one_controller(macro_json, tmp_path):
    port = free_port()
    base = {**os.environ, "PYTHONPATH": str(REPO), "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port)}
    cmd = [sys.executable, str(SCRIPT), macro_json, str(tmp_path), "dist", "controller", str(MAX_TRIALS),
           "--sleep", "0.3"]
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        procs[tuner_id] = subprocess.Popen(
            cmd, env={**base, "KERASTUNER_TUNER_ID": tuner_id}, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    outputs = {}
    try:
        for tuner_id, proc in procs.items():
            out, err = proc.communicate(timeout=240)
            outputs[tuner_id] = out
            assert proc.returncode == 0, f"{tuner_id} failed:\n{err[-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    ran = {t: [line.split()[1] for line in outputs[t].splitlines() if line.startswith("RAN ")]
           for t in ("tuner0", "tuner1")}
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
