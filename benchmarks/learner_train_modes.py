"""A learner's training steps per second on one device, under `MirroredStrategy` over 2
logical CPUs, XLA-compiled and in `mixed_float16`: what each costs on this CPU.

One process: the CPU is split into 2 logical devices at start (as the tests do); the "one"
mode runs on the first. Each mode builds the same seeded learner (conv4 on 28 x 28 images,
random 5-way 1-shot episodes with 5 queries), trains one step (tracing, timed apart as
`first_step_s`), then `--steps` steps, and reports steps/s and the last loss. On a CPU the
point is the overhead of each mode against one device, not a speed-up: both logical devices
share the same cores, and float16 has no fast CPU kernels.

    python benchmarks/learner_train_modes.py --learner protonet --json
    python benchmarks/learner_train_modes.py --learner maml --modes one,mirrored --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time

import tfmeta  # before keras/tensorflow: sets TensorFlow's environment defaults

import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

MODES = ("one", "mirrored", "xla", "mixed_float16")
WAYS, SHOTS, QUERIES = 5, 1, 5


def episodes(meta_batch: int, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    sx = rng.random((meta_batch, WAYS * SHOTS, 28, 28, 1), dtype=np.float32)
    qx = rng.random((meta_batch, WAYS * QUERIES, 28, 28, 1), dtype=np.float32)
    sy = np.tile(np.repeat(np.arange(WAYS), SHOTS), (meta_batch, 1)).astype("int32")
    qy = np.tile(np.repeat(np.arange(WAYS), QUERIES), (meta_batch, 1)).astype("int32")
    return tf.data.Dataset.from_tensors(((sx, sy, qx), qy)).repeat()


def build(learner: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    if learner == "protonet":
        return tfmeta.PrototypicalNetwork(input_shape=(28, 28, 1))
    net = keras.Sequential([keras.Input((28, 28, 1)), tfmeta.backbones.conv4((28, 28, 1)),
                            keras.layers.Dense(WAYS, name="head")])
    return tfmeta.MAML(net, inner_lr=0.4, inner_steps=1, order=2)


def measure(learner: str, mode: str, steps: int, meta_batch: int) -> dict:
    strategy = None
    if mode == "mirrored":
        strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")[:2]])
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mode == "mixed_float16" else "float32")
    try:
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = build(learner)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=mode == "xla")
    finally:
        keras.config.set_dtype_policy(previous)
    data = episodes(meta_batch)
    t0 = time.perf_counter()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    elapsed = time.perf_counter() - t0
    return {"mode": mode, "steps_per_s": round(steps / elapsed, 3), "first_step_s": round(first, 2),
            "last_loss": round(float(history.history["loss"][-1]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learner", choices=("protonet", "maml"), default="protonet")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--meta-batch", type=int, default=4, help="episodes per (global) step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"--modes must be among {list(MODES)}; received {unknown}")
    results = [measure(args.learner, mode, args.steps, args.meta_batch) for mode in modes]
    base = next((r["steps_per_s"] for r in results if r["mode"] == "one"), None)
    for r in results:
        if base:
            r["relative_to_one_device"] = round(r["steps_per_s"] / base, 3)
    report = {"learner": args.learner, "meta_batch": args.meta_batch, "steps": args.steps,
              "ways": WAYS, "shots": SHOTS, "queries": QUERIES, "cpu": platform.processor() or platform.machine(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "results": results}
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
