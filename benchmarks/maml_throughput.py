"""MAML meta-training throughput on conv4 / 28x28 (tasks per second), fast path vs reference.

Runs, in one process and on the same meta-batch, the vectorised fast path of `tfmeta.MAML`
(all tasks of the meta-batch in one grouped convolution per layer) and the reference path
(`fast_path=False`: a per-task Python loop over `model.stateless_call`, unrolled in one
`tf.function`, the straightforward way), and reports tasks/s and the time to the first step
(tracing + first run). The CPU load average is printed too: numbers are only meaningful on a
quiet machine.

    python benchmarks/maml_throughput.py --ways 5 --shots 1 --queries 15 --meta-batch 32 \
        --order 2 --json

Measured on the 2-core CPU (quiet machine, 8 timed steps): fast path 32.2 tasks/s, 7.4 s to
the first step; reference loop 21.7 tasks/s, 68.6 s to the first step. With
`--paths fast --dtype-policy mixed_bfloat16` (bfloat16 convolutions, float32 weights): 41.2 and
43.3 tasks/s in two runs, 4.5-5.2 s to the first step. Most of the fast path's
time was element-wise BatchNorm arithmetic on full-resolution activations, not convolution:
the fused batch-norm kernel on the query pass (see `tfmeta.gradient.functional`) took it from
17.3 to 32.2 tasks/s. For scale, a plain shared-weight conv4 forward + backward over the same
2,560 images (BN included, unfused) takes 1.22 s (26 tasks/s equivalent); the convolutions
alone 0.54 s. XLA (`--xla`) is far slower here: in a scratch copy of this step XLA:CPU's
grouped convolutions took 93 s per meta-step.

Those figures came from a CPU with AVX-512, where TensorFlow's oneDNN kernels are on by default.
On a 2-core AVX2 CPU (AMD EPYC) they are off unless `TF_ENABLE_ONEDNN_OPTS=1` (which this script,
like tfmeta, sets by default), and without them TensorFlow cannot differentiate grouped
convolutions at all: `conv_mode="auto"` then runs one convolution per task. Measured there
(float32): oneDNN on, grouped 10.3-11.0 tasks/s; oneDNN off, split 4.1-4.6 tasks/s. bfloat16 has
no oneDNN kernels without AVX-512: about 1 task/s either way. The JSON records each path's
`conv_mode` and `TF_ENABLE_ONEDNN_OPTS`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfmeta  # noqa: E402


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
    rng = np.random.default_rng(0)
    x = rng.random((args.ways * 20, 28, 28, 1), dtype=np.float32)
    y = np.repeat(np.arange(args.ways * 20 // 20), 20)
    x = (x > 0.8).astype(np.float32)
    sampler = tfmeta.data.EpisodeSampler(x, np.repeat(np.arange(args.ways * 1), 20)[: len(x)],
                                         args.ways, args.shots, args.queries, seed=0)
    del y
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
