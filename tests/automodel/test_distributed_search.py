"""AutoModel under tf.distribute strategies and in KerasTuner's chief/worker mode.

One test per data kind (digits arrays, a table) covers both: trials trained by a worker under
`MirroredStrategy` over 2 logical CPUs, the chief's refit under its own, and the split of the
trials between workers through a worker restart.

Every test runs `distributed_fit_script.py` in subprocesses: logical CPU devices must be set
before TensorFlow starts, and the chief and workers are separate processes on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_fit_script.py")
REPO = Path(__file__).resolve().parents[2]
KILLED = 17  # the script's exit status when it kills itself mid-trial


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, name: str, timeout: float = 600, status: int = 0) -> str:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, f"{name} exited with {proc.returncode}:\n{err[-3000:]}"
    return out


def ran(output: str) -> list[list[str]]:
    """`[trial id, tuner id, strategy, replicas, variables mirrored]` per trial a process ran."""
    return [line.split()[1:] for line in output.splitlines() if line.startswith("RAN ")]


def result(output: str) -> dict:
    return json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])


@pytest.mark.slow
@pytest.mark.parametrize("data", ["digits", "table"])
def test_a_chief_and_two_workers_run_every_trial_once_through_a_worker_restart(tmp_path, data):
    """The chief's controller proposes; tuner0 dies in its first trial and is restarted,
    tuner1 trains its trials under its own MirroredStrategy over 2 logical CPUs. Every trial
    runs to the end exactly once, the controller learns from each, and the chief refits under
    its MirroredStrategy (the refit and the averaged best trial hold mirrored variables) and
    exports a model that learned."""
    max_trials = 3
    env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    args = [data, tmp_path, "dist", max_trials]
    chief = start([*args, "--replicas", 2, "--export", tmp_path / "export"], {**env, "KERASTUNER_TUNER_ID": "chief"})
    time.sleep(2)  # the chief's oracle first
    killed = start([*args, "--kill-in-trial", 1], {**env, "KERASTUNER_TUNER_ID": "tuner0"})
    worker1 = start([*args, "--replicas", 2], {**env, "KERASTUNER_TUNER_ID": "tuner1"})
    finish(killed, "tuner0 (killed)", status=KILLED)
    worker0 = start(args, {**env, "KERASTUNER_TUNER_ID": "tuner0"})
    outputs = {"tuner0": finish(worker0, "tuner0"), "tuner1": finish(worker1, "tuner1")}
    summary = result(finish(chief, "chief"))
    runs = {name: ran(out) for name, out in outputs.items()}
    ids = [t[0] for name in runs for t in runs[name]]
    assert sorted(ids) == summary["trials"] and len(set(ids)) == max_trials, runs
    assert runs["tuner0"], "the restarted worker must get its unfinished trial back"
    assert all(t[2:] == ["MirroredStrategy", "2", "True"] for t in runs["tuner1"]), runs
    assert summary["role"] == "chief" and summary["controller_updates"] == max_trials
    assert summary["members"] == [["MirroredStrategy", 2, True]] * 2
    assert summary["score"] > (0.3 if data == "digits" else 0.65), summary
    assert Path(summary["export"], "saved_model.pb").exists()
