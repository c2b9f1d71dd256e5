"""MAML meta-training throughput on conv4 / 28x28 (tasks per second), fast path vs reference.

Runs, in one process and on the same meta-batch, the vectorised fast path of `tfmeta.MAML`
(all tasks of the meta-batch in one grouped convolution per layer) and the reference path
(`fast_path=False`: a per-task Python loop over `model.stateless_call`, unrolled in one
`tf.function`, the straightforward way), and reports tasks/s and the time to the first step
(tracing + first run). The CPU load average is printed too: numbers are only meaningful on a
quiet machine.

    python benchmarks/maml_throughput.py --ways 5 --shots 1 --queries 15 --meta-batch 32 \
        --order 2 --json

On CPUs without AVX-512, TensorFlow can differentiate the grouped convolutions of the fast
path only with its oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS=1`, which `import tfmeta` sets by
default); without them `conv_mode="auto"` runs one convolution per task (`--paths split` forces
that). The JSON records each path's `conv_mode` and `TF_ENABLE_ONEDNN_OPTS`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras
import numpy as np


def build(ways: int, args, fast_path, conv_mode="auto"):
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [keras.Input((28, 28, 1)), tfmeta.backbones.conv4((28, 28, 1)), keras.layers.Dense(ways, name="head")]
    )
    maml = tfmeta.MAML(
        net, inner_lr=0.4, inner_steps=args.inner_steps, order=args.order,
        fast_path=fast_path, conv_mode=conv_mode,
    )
    maml.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=args.xla)
    return maml


def measure(maml, batch, steps: int) -> dict:
    (sx, sy, qx), qy = batch
    t0 = time.perf_counter()
    maml.train_on_batch((sx, sy, qx), qy)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        logs = maml.train_on_batch((sx, sy, qx), qy, return_dict=True)
    elapsed = time.perf_counter() - t0
    return {
        "tasks_per_s": steps * int(sx.shape[0]) / elapsed,
        "step_s": elapsed / steps,
        "first_step_s": first,
        "loss": float(logs["loss"]),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--order", type=int, default=2, choices=(1, 2))
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--steps", type=int, default=5, help="timed meta-steps per path")
    p.add_argument("--paths", default="fast,reference", help="comma list: fast,split,reference")
    p.add_argument("--xla", action="store_true", help="compile train_step with XLA")
    p.add_argument(
        "--dtype-policy", default="float32",
        help="Keras dtype policy of the network, e.g. mixed_bfloat16 (float32 weights)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    keras.config.set_dtype_policy(args.dtype_policy)
    # One batch of random sparse images: only the speed matters.
    x = (np.random.default_rng(0).random((args.ways * 20, 28, 28, 1), dtype=np.float32) > 0.8).astype(np.float32)
    sampler = tfmeta.data.EpisodeSampler(x, np.repeat(np.arange(args.ways), 20), args.ways, args.shots,
                                         args.queries, seed=0)
    batch = next(iter(sampler.dataset(meta_batch=args.meta_batch)))
    load_before = os.getloadavg()
    result = {}
    for path in args.paths.split(","):
        if path == "fast":
            maml = build(args.ways, args, True, "auto")
        elif path == "split":
            maml = build(args.ways, args, True, "split")
        elif path == "reference":
            maml = build(args.ways, args, False)
        else:
            raise ValueError(f"`--paths` entries must be fast, split or reference; received {path!r}.")
        result[path] = measure(maml, batch, args.steps)
        result[path]["conv_mode"] = getattr(maml.runner, "conv_mode", None)
        if not args.json:
            print(path, result[path], flush=True)
    out = dict(result.get("fast", next(iter(result.values()))))
    out.update(
        {
            "paths": result,
            "speedup_vs_reference": (
                result["fast"]["tasks_per_s"] / result["reference"]["tasks_per_s"]
                if "fast" in result and "reference" in result else None
            ),
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "cpus": os.cpu_count(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        }
    )
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
