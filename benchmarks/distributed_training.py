"""Training under tf.distribute strategies and distributed searches: steps/s, loss, trials/min.

Side by side in one run (so that a shared machine's load hits every setup alike):

- **learners**: a prototypical network (MLP encoder, 5-way 1-shot digits episodes) and
  second-order MAML (a small convnet, 3-way 1-shot, meta-batch 4): steps per second and the
  final loss of the same number of steps on one device, under `MirroredStrategy` over 2
  logical CPU devices (the same global batch), and with two worker processes on 127.0.0.1
  (`MultiWorkerMirroredStrategy`, `TF_CONFIG`). Each setup runs in a fresh process (logical
  devices must be configured before TensorFlow starts).
- **search**: one AutoModel search on digits (`max_trials` trials) with one worker, and with
  a chief and two workers (KerasTuner's chief/worker mode): trials per minute of the search.

On a 2-core CPU the point is correctness and overhead, not speed-up: the figures report each
setup against one device. A setup that fails is reported with its error, not hidden.

    python benchmarks/distributed_training.py --steps 30 --trials 4 --json
    python benchmarks/distributed_training.py --part learners --modes single mirrored
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
MODES = ("single", "mirrored", "multiworker")
LEARNERS = ("protonet", "maml2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def run_child(args: list, env: dict | None = None, timeout: float = 1800) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, HERE, *map(str, args)], text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": REPO, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def collect(procs: list, timeout: float = 1800) -> list[dict]:
    """The last JSON line of each child's output, or its error."""
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode == 0 and lines:
            results.append(json.loads(lines[-1]))
        else:
            tail = [line for line in err.strip().splitlines() if line.strip()][-1:] or ["no output"]
            results.append({"error": f"exit {proc.returncode}: {tail[0][:300]}"})
    return results


# ------------------------------------------------------------------------- learner child
def learner_child(learner: str, mode: str, steps: int) -> dict:
    """Runs in a fresh process: trains `learner` under `mode` for `steps` steps."""
    import tfmeta  # noqa: F401  (before TensorFlow: its environment defaults)
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    elif mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    else:
        strategy = tf.distribute.get_strategy()
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    from tfmeta.data import EpisodeSampler

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target
    keras.utils.set_random_seed(0)
    with strategy.scope():
        if learner == "protonet":
            from tfmeta.metric.protonet import PrototypicalNetwork

            model = PrototypicalNetwork(encoder=tfmeta.backbones.mlp((8, 8, 1), hidden=(64, 32)), input_shape=(8, 8, 1))
            data = EpisodeSampler(x, y, ways=5, shots=1, queries=5, seed=0).dataset(meta_batch=4)
        else:
            net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                                    keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(3)])
            model = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2, ways=3)
            data = EpisodeSampler(x, y, ways=3, shots=1, queries=5, seed=0).dataset(meta_batch=4)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        # `fit` inside the scope too: Keras allows it, and learners that create their
        # optimizer's variables at the start of `fit` then create them under the strategy.
        first = time.time()
        model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # tracing and the first step
        first = time.time() - first
        start = time.time()
        history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        seconds = time.time() - start
    return {"learner": learner, "mode": mode, "replicas": int(strategy.num_replicas_in_sync),
            "steps": steps, "steps_per_s": steps / seconds, "first_step_s": first,
            "final_loss": float(history.history["loss"][-1])}


def measure_learner(learner: str, mode: str, steps: int) -> dict:
    return {"learner": learner, "mode": mode, **_measure_learner(learner, mode, steps)}


def _measure_learner(learner: str, mode: str, steps: int) -> dict:
    if mode != "multiworker":
        return collect([run_child(["--child-learner", learner, mode, steps])])[0]
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [run_child(["--child-learner", learner, mode, steps],
                       {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    results = collect(procs)
    return {**results[0], "workers": len(procs), "other_worker": results[1]}


# -------------------------------------------------------------------------- search child
def search_child(directory: str, trials: int) -> dict:
    """Runs in a fresh process: one AutoModel search on digits (chief, worker or alone)."""
    import tfmeta
    import numpy as np
    from sklearn.datasets import load_digits

    from tfmeta.nas.space import MicroCellSpace

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    am = tfmeta.AutoModel(max_trials=trials, epochs=3, batch_size=64, filters=8, space=MicroCellSpace(num_nodes=2),
                          refit=False, ensemble=False, seed=0, verbose=0, directory=directory,
                          project_name="search")
    am.fit(x, digits.target)
    return {"role": am.search_role_, "search_s": am.search_time_,
            "trials": len(am.trials_) if am.search_role_ != "worker" else len(am.worker_trials_),
            "best_score": getattr(am, "best_score_", None)}


def measure_search(workers: int, trials: int) -> dict:
    directory = tempfile.mkdtemp(prefix="tfmeta-distributed-search-")
    start = time.time()
    if workers == 1:
        result = collect([run_child(["--child-search", directory, trials])])[0]
    else:
        env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
        chief = run_child(["--child-search", directory, trials], {**env, "KERASTUNER_TUNER_ID": "chief"})
        time.sleep(2)
        procs = [run_child(["--child-search", directory, trials], {**env, "KERASTUNER_TUNER_ID": f"tuner{i}"})
                 for i in range(workers)]
        done = collect(procs)
        result = {**collect([chief])[0], "worker_trials": [d.get("trials", d.get("error")) for d in done]}
    wall = time.time() - start  # from the first process start to the last exit, for both setups
    result.update(workers=workers, wall_s=wall)
    if "trials" in result and "error" not in result:
        result["trials_per_min"] = result["trials"] / wall * 60
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("learners", "search", "all"), default="all")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(LEARNERS))
    p.add_argument("--steps", type=int, default=30, help="Timed training steps per learner and setup.")
    p.add_argument("--trials", type=int, default=4, help="Trials of the AutoModel search.")
    p.add_argument("--json", action="store_true", help="Print one JSON document only.")
    p.add_argument("--child-learner", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--child-search", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_learner:
        learner, mode, steps = args.child_learner
        print(json.dumps(learner_child(learner, mode, int(steps))), flush=True)
        return
    if args.child_search:
        print(json.dumps(search_child(args.child_search[0], int(args.child_search[1]))), flush=True)
        return
    report = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average": os.getloadavg(), "learners": [], "search": []}
    if args.part in ("learners", "all"):
        for learner in args.learners:
            rows = [measure_learner(learner, mode, args.steps) for mode in args.modes]
            base = next((r for r in rows if r.get("mode") == "single" and "error" not in r), None)
            for row in rows:
                if base and "steps_per_s" in row:
                    row["time_vs_single"] = base["steps_per_s"] / row["steps_per_s"]
                if not args.json:
                    print(json.dumps(row), flush=True)
            report["learners"].extend(rows)
    if args.part in ("search", "all"):
        for workers in (1, 2):
            row = measure_search(workers, args.trials)
            report["search"].append(row)
            if not args.json:
                print(json.dumps(row), flush=True)
    print(json.dumps(report, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
