"""`MultiWorkerMirroredStrategy` with two worker processes on 127.0.0.1 (`TF_CONFIG`) trains one
learner of each train step (Siamese, prototypical, matching and relation networks, the
distiller, second-order MAML, Reptile, learned example weights), a NAS child, the ENAS
supernet, a first-order DARTS search and AutoModel's network for arrays to the same losses and weights as one process (the plain Keras models through
`FunctionalModel`, which Keras alone cannot fit under the strategy)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from learner_cases import reference_runs  # noqa: F401 (a fixture)

SCRIPT = Path(__file__).resolve().parent / "multi_worker_script.py"
NAMES = ("siamese", "protonet", "matching", "relation", "distiller", "maml", "reptile",
         "reweighted", "nas_child", "enas_supernet", "darts", "automodel_arrays")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_two_worker_processes_train_like_one_process(tmp_path, reference_runs):
    ports = ",".join(map(str, free_ports(2)))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    workers = [
        subprocess.Popen([sys.executable, str(SCRIPT), "--index", str(i), "--ports", ports,
                          "--cases", ",".join(NAMES), "--out", str(out)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i, out in enumerate(outs)
    ]
    logs = []
    for worker in workers:
        try:
            logs.append(worker.communicate(timeout=240)[0])
        finally:
            worker.kill()
    assert all(w.returncode == 0 for w in workers), "\n".join(log[-3000:] for log in logs)
    results = [json.loads(out.read_text()) for out in outs]
    for name in NAMES:
        reference = reference_runs(name)
        for result in results:
            got = result[name]
            assert got["replicas"] == 2
            np.testing.assert_allclose(got["losses"], reference.losses, rtol=1e-4, atol=1e-5)
            for w, want in zip(got["weights"], reference.after):
                np.testing.assert_allclose(np.asarray(w), want, rtol=1e-4, atol=1e-5)
