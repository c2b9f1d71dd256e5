"""Time to the end of the first `fit` step, with the training state built first and without.

Keras 3 on TensorFlow (no distribution strategy) creates optimizer, metric and loss variables
inside the first traced train step, so `tf.function` traces that step twice. tfmeta builds them
first (`tfmeta.training_state`). This benchmark runs each case in a fresh process, once with
tfmeta's path and once with Keras alone, and reports the first one-step `fit`'s wall time and
the number of train-step traces:

- `child`: a digits search child (3-node cell of the default ops, as `search_digits` trains it),
  prepared with `build_training_state(model, x, y)` as `ArchitectureSearch` does;
- `supernet`: the ENAS `SharedCellNetwork` of that space (`WeightSharingSearch`'s first trial);
- `protonet`: a conv4 prototypical network, 60-way 1-shot 5-query 28x28 episodes;
- `maml`: second-order MAML on conv4, 5-way 1-shot 15-query, meta-batch 32 (as
  `benchmarks/maml_throughput.py`).

Usage:
    python benchmarks/first_fit_traces.py [--cases child,supernet,protonet,maml] [--repeats 1]
Prints JSON: `{case: {"prebuilt": {"first_fit_s", "traces"}, "keras_alone": {...}, "saved_s"}}`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import tfmeta  # before keras and tensorflow: sets TensorFlow's environment defaults

REPO = Path(__file__).resolve().parents[1]
CASES = ("child", "supernet", "protonet", "maml")


def build_case(case: str):
    """Returns `(model, fit_kwargs, prepare)`: `prepare()` is tfmeta's step before `fit`."""
    import keras
    import numpy as np

    from tfmeta.data import EpisodeSampler
    from tfmeta.training_state import build_training_state

    keras.utils.set_random_seed(0)
    if case in ("child", "supernet"):
        from tfmeta.data.digits import load_digits_splits
        from tfmeta.nas.cells import build_cell_model
        from tfmeta.nas.space import MicroCellSpace
        from tfmeta.nas.supernet import SharedCellNetwork

        x, y = load_digits_splits(test_size=0.2, validation_size=0.2, scaled=True, channel_axis=True)["train"]
        space = MicroCellSpace(num_nodes=3)
        if case == "child":  # a digits search child: one normal cell per stage, 16 filters
            model = build_cell_model(space, space.sample(np.random.default_rng(0)), x.shape[1:], 10,
                                     num_cells=1, filters=16)
        else:
            model = SharedCellNetwork(space, x.shape[1:], 10)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model, dict(x=x[:64], y=y[:64], batch_size=64), lambda: build_training_state(model, x, y)

    from tfmeta.backbones import conv4

    rng = np.random.default_rng(0)
    images = rng.random((100 * 20, 28, 28, 1), dtype=np.float32)
    labels = np.repeat(np.arange(100), 20)
    if case == "protonet":
        model = tfmeta.PrototypicalNetwork(conv4(input_shape=(28, 28, 1)))
        data = EpisodeSampler(images, labels, ways=60, shots=1, queries=5, seed=0).dataset()
    else:
        net = keras.Sequential([keras.Input((28, 28, 1)), conv4(input_shape=(28, 28, 1)), keras.layers.Dense(5)])
        model = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2)
        data = EpisodeSampler(images, labels, ways=5, shots=1, queries=15, seed=0).dataset(meta_batch=32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model, dict(x=data, steps_per_epoch=1), lambda: None  # the learner's own fit() prebuilds


def run_one(case: str, prebuilt: bool) -> dict:
    import keras

    model, fit_kwargs, prepare = build_case(case)
    traces = []
    train_step = model.train_step

    def counted(data):
        traces.append(1)
        return train_step(data)

    model.train_step = counted
    start = time.perf_counter()
    if prebuilt:
        prepare()
        model.fit(epochs=1, verbose=0, **fit_kwargs)
    else:
        keras.Model.fit(model, epochs=1, verbose=0, **fit_kwargs)  # bypasses tfmeta's fit()
    return {"first_fit_s": round(time.perf_counter() - start, 2), "traces": len(traces)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per case and mode (median)")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1] == "prebuilt")))
        return {}
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; expected some of {list(CASES)}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    report = {}
    for case in cases:
        entry = {}
        for mode in ("prebuilt", "keras_alone"):
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, __file__, "--one", case, mode], capture_output=True,
                                     text=True, env=env, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            entry[mode] = {"first_fit_s": round(statistics.median(r["first_fit_s"] for r in runs), 2),
                           "traces": runs[0]["traces"]}
        entry["saved_s"] = round(entry["keras_alone"]["first_fit_s"] - entry["prebuilt"]["first_fit_s"], 2)
        report[case] = entry
        print(json.dumps({case: entry}), file=sys.stderr)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
