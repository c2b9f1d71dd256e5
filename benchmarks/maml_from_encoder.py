"""Scores test-time adaptation of a pre-trained encoder, without meta-training.

Wraps saved conv4 encoder weights (e.g. `benchmarks/protonet_omniglot.py --save-weights`) and
a fresh Dense head in `tfmeta.MAML`, and scores held-out Omniglot episodes (the alphabets
ch03 holds out, the episodes its evaluation draws) for every head start and number of inner
steps asked for:

* `proto`: `MAML(proto_head=True)` (Proto-MAML): the head starts as the support set's
  prototype classifier, then `steps` gradient steps fine-tune every layer on the support set;
* `zero`: `MAML(zero_head=True)`: a zero head, then `steps` steps (the first makes each class's
  head column a centred prototype);

both with the views given (`MAML(test_time_views=V)`: adapt on V views of every support
image, average each query's probabilities over its views). This is the "pre-train, then
fine-tune at test time" baseline (Chen et al., 2019) the meta-learners should beat, and the
starting point of `recipes/ch03_maml_omniglot.py --init-encoder ENC [--proto-head]`.

    python benchmarks/maml_from_encoder.py ENC.weights.h5 --heads proto,zero --steps 1,3 \\
        --inner-lr 0.01 --views 1,16 --episodes 600

Prints one JSON object: `{"encoder", "ways", "shots", "episodes", "results": [{"head",
"steps", "inner_lr", "views", "accuracy", "ci95", "seconds"}...]}`.
"""

from __future__ import annotations

import argparse
import json
import time

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras

from tfmeta.data.omniglot_splits import load_omniglot_split


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("encoder", help="conv4 encoder weights (.weights.h5)")
    p.add_argument("--heads", default="proto,zero", help="comma-separated: proto, zero")
    p.add_argument("--steps", type=_ints, default=[1, 3],
                   help="inner steps, comma-separated (0: the starting head unadapted)")
    p.add_argument("--inner-lr", type=float, default=0.01)
    p.add_argument("--views", type=_ints, default=[1, 16], help="test-time views, comma-separated")
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--dtype-policy", default="float32",
                   help="Keras dtype policy; mixed_bfloat16 is fast only on CPUs with AVX512-BF16")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    args.heads = args.heads.split(",")
    bad = [h for h in args.heads if h not in ("proto", "zero")]
    if bad:
        p.error(f"--heads takes proto and/or zero; received {bad}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.config.set_dtype_policy(args.dtype_policy)
    keras.utils.set_random_seed(0)
    test = load_omniglot_split(28, test_protocols="characters", data_dir=args.data_dir).held_out
    net = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            tfmeta.backbones.conv4((28, 28, 1), filters=args.filters),
            keras.layers.Dense(args.ways, name="head"),
        ]
    )
    net.layers[0].load_weights(args.encoder)
    results = []
    for head in args.heads:
        for views in args.views:
            for steps in args.steps:
                maml = tfmeta.MAML(
                    net, inner_lr=args.inner_lr, inner_steps=max(steps, 1), eval_steps=steps, order=1,
                    proto_head=head == "proto", zero_head=head == "zero", test_time_views=views,
                )
                t0 = time.time()
                r = maml.evaluate_episodes(test.x, test.y, ways=args.ways, shots=args.shots,
                                           queries=15, episodes=args.episodes, seed=1234)
                results.append({"head": head, "steps": steps, "inner_lr": args.inner_lr,
                                "views": views, "accuracy": r["accuracy"], "ci95": r["ci95"],
                                "seconds": round(time.time() - t0, 1)})
                print(json.dumps(results[-1]), flush=True)
    out = {"encoder": args.encoder, "ways": args.ways, "shots": args.shots,
           "episodes": args.episodes, "results": results}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
