"""Runs `nas_search_script.py` as KerasTuner's chief and two workers on loopback (shared by tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("nas_search_script.py")
REPO = Path(__file__).resolve().parents[2]
TUNER_IDS = ("chief", "tuner0", "tuner1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_chief_and_two_workers(macro_json: str, directory, project: str, strategy: str, max_trials: int,
                              sleep: float = 0.3, timeout: float = 240) -> dict[str, str]:
    """`{tuner id: stdout}` of a chief and two workers searching `project` together."""
    base = {**os.environ, "PYTHONPATH": str(REPO), "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(free_port())}
    cmd = [sys.executable, str(SCRIPT), macro_json, str(directory), project, strategy, str(max_trials),
           "--sleep", str(sleep)]
    procs = {t: subprocess.Popen(cmd, env={**base, "KERASTUNER_TUNER_ID": t}, cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for t in TUNER_IDS}
    outputs = {}
    try:
        for tuner_id, proc in procs.items():
            out, err = proc.communicate(timeout=timeout)
            outputs[tuner_id] = out
            assert proc.returncode == 0, f"{tuner_id} failed:\n{err[-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return outputs


def ran(output: str) -> list[str]:
    """The architectures a worker's output says it evaluated, in order."""
    return [line.split()[1] for line in output.splitlines() if line.startswith("RAN ")]
