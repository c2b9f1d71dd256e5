"""Training under tf.distribute strategies, XLA and mixed precision, and distributed searches.

Side by side in one run (so that a shared machine's load hits every setup alike), each setup in
a fresh process (logical devices and dtype policies must be set before TensorFlow starts):

- **learners** (`--learners`): steps per second, time of the first (traced) step, and loss of
  the same number of steps in each mode (`--modes`):
  - `single`: one device;
  - `mirrored`: `MirroredStrategy` over 2 logical CPU devices (the same global batch);
  - `multiworker`: two worker processes on 127.0.0.1 (`MultiWorkerMirroredStrategy`,
    `TF_CONFIG`);
  - `xla`: one device, the train step compiled with `jit_compile=True`;
  - `mixed_float16`: one device under the `mixed_float16` policy (Keras wraps the optimizer in
    a `LossScaleOptimizer`; the report counts the steps it skipped while lowering its scale).

  Learners: `protonet` (MLP encoder, 5-way 1-shot digits episodes), `maml2` (second-order
  MAML, a small convnet, 3-way 1-shot digits), `protonet_conv4` and `maml2_conv4` (conv4 on
  random 28 x 28 images, 5-way 1-shot, 5 queries, the same episodes at every step).
- **search**: one AutoModel search on digits (`--trials` trials) with one worker, and with a
  chief and two workers (KerasTuner's chief/worker mode): trials per minute of the search.

Each learner row holds `steps_per_s` (the `--steps` timed steps, after one first step),
`first_step_s`, `final_loss` (Keras's epoch loss: the mean over the timed steps), `loss_after`
(the loss of one more step, at the weights the timed steps reached), `time_vs_single`, and for
`mixed_float16` `skipped_steps` and the final `loss_scale`. On a 2-core CPU the point is
correctness and overhead, not speed-up. A setup that fails is reported with its error.

Flags: `--part {learners,search,all}`; `--modes` and `--learners` (lists, above; defaults
`single mirrored multiworker` and `protonet maml2`); `--steps N` timed steps (30);
`--meta-batch N` episodes per global step (4); `--loss-curve` also records each step's own
loss (`losses`: a host synchronisation per step, so take speeds from a run without it);
`--trials N` trials of the search (4); `--json` one JSON document only.

    python benchmarks/distributed_training.py --steps 30 --trials 4 --json
    python benchmarks/distributed_training.py --part learners --modes single mirrored
    python benchmarks/distributed_training.py --part learners --learners protonet_conv4 \
        --modes single mirrored xla mixed_float16 --steps 20 --loss-curve --json
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
MODES = ("single", "mirrored", "multiworker", "xla", "mixed_float16")
LEARNERS = ("protonet", "maml2", "protonet_conv4", "maml2_conv4")
DEFAULT_MODES, DEFAULT_LEARNERS = MODES[:3], LEARNERS[:2]


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
def build_learner(learner: str, meta_batch: int):
    """`(model, episode dataset)` of `learner`, seeded (call under the strategy and policy)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfmeta

    keras.utils.set_random_seed(0)
    if learner.endswith("_conv4"):
        ways, shots, queries = 5, 1, 5
        rng = np.random.default_rng(0)
        sx = rng.random((meta_batch, ways * shots, 28, 28, 1), dtype=np.float32)
        qx = rng.random((meta_batch, ways * queries, 28, 28, 1), dtype=np.float32)
        sy = np.tile(np.repeat(np.arange(ways), shots), (meta_batch, 1)).astype("int32")
        qy = np.tile(np.repeat(np.arange(ways), queries), (meta_batch, 1)).astype("int32")
        data = tf.data.Dataset.from_tensors(((sx, sy, qx), qy)).repeat()
        if learner == "protonet_conv4":
            return tfmeta.PrototypicalNetwork(input_shape=(28, 28, 1)), data
        net = keras.Sequential([keras.Input((28, 28, 1)), tfmeta.backbones.conv4((28, 28, 1)),
                                keras.layers.Dense(ways, name="head")])
        return tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2), data
    from sklearn.datasets import load_digits

    from tfmeta.data import EpisodeSampler

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target
    if learner == "protonet":
        model = tfmeta.PrototypicalNetwork(encoder=tfmeta.backbones.mlp((8, 8, 1), hidden=(64, 32)),
                                           input_shape=(8, 8, 1))
        return model, EpisodeSampler(x, y, ways=5, shots=1, queries=5, seed=0).dataset(meta_batch=meta_batch)
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                            keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(3)])
    model = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2, ways=3)
    return model, EpisodeSampler(x, y, ways=3, shots=1, queries=5, seed=0).dataset(meta_batch=meta_batch)


def step_losses(running_means: list) -> list:
    """Each step's own loss from Keras's running epoch means (`m_k = mean of the first k`)."""
    return [k * m - (k - 1) * prev for k, (prev, m) in enumerate(zip([0.0, *running_means], running_means), 1)]


def learner_child(learner: str, mode: str, steps: int, meta_batch: int = 4, loss_curve: bool = False) -> dict:
    """Runs in a fresh process: trains `learner` under `mode` for 1 + `steps` (+ 1) steps."""
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

    keras.config.set_dtype_policy("mixed_float16" if mode == "mixed_float16" else "float32")
    with strategy.scope():
        model, data = build_learner(learner, meta_batch)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True if mode == "xla" else "auto")
        keras.config.set_dtype_policy("float32")
        # `fit` inside the scope too: Keras allows it, and learners that create their
        # optimizer's variables at the start of `fit` then create them under the strategy.
        first = time.time()
        model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # tracing and the first step
        first = time.time() - first
        means = []
        curve = [keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: means.append(float(logs["loss"])))]
        start = time.time()
        history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=curve if loss_curve else [])
        seconds = time.time() - start
        applied = int(model.optimizer.iterations.numpy())  # a LossScaleOptimizer's skipped steps do not count
        after = model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # the loss at the weights reached
    row = {"learner": learner, "mode": mode, "replicas": int(strategy.num_replicas_in_sync),
           "steps": steps, "steps_per_s": steps / seconds, "first_step_s": first,
           "final_loss": float(history.history["loss"][-1]), "loss_after": float(after.history["loss"][-1])}
    optimizer = model.optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        row["skipped_steps"] = 1 + steps - applied
        row["loss_scale"] = float(optimizer.dynamic_scale.numpy())
    if loss_curve:
        row["losses"] = [round(v, 4) for v in step_losses(means)]
    return row


def measure_learner(learner: str, mode: str, steps: int, meta_batch: int = 4, loss_curve: bool = False) -> dict:
    child = ["--child-learner", learner, mode, steps, meta_batch, int(loss_curve)]
    return {"learner": learner, "mode": mode, **_measure_learner(child, mode)}


def _measure_learner(child: list, mode: str) -> dict:
    if mode != "multiworker":
        return collect([run_child(child)])[0]
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [run_child(child,
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
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(DEFAULT_MODES))
    p.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(DEFAULT_LEARNERS))
    p.add_argument("--steps", type=int, default=30, help="Timed training steps per learner and setup.")
    p.add_argument("--meta-batch", type=int, default=4, help="Episodes per global step.")
    p.add_argument("--loss-curve", action="store_true", help="Also record each step's own loss.")
    p.add_argument("--trials", type=int, default=4, help="Trials of the AutoModel search.")
    p.add_argument("--json", action="store_true", help="Print one JSON document only.")
    p.add_argument("--child-learner", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--child-search", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_learner:
        learner, mode, steps, meta_batch, loss_curve = args.child_learner
        print(json.dumps(learner_child(learner, mode, int(steps), int(meta_batch), loss_curve == "1")), flush=True)
        return
    if args.child_search:
        print(json.dumps(search_child(args.child_search[0], int(args.child_search[1]))), flush=True)
        return
    report = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average": os.getloadavg(), "learners": [], "search": []}
    if args.part in ("learners", "all"):
        for learner in args.learners:
            rows = [measure_learner(learner, mode, args.steps, args.meta_batch, args.loss_curve) for mode in args.modes]
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
