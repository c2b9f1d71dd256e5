"""Chapter 3: MAML on Omniglot, tested on held-out alphabets, exported with in-graph adaptation.

Data: the Omniglot background sets minus the held-out alphabets (Balinese and Korean), 28 x 28,
rotations (and with `--mirrors` mirror images) as extra classes, every training image randomly
distorted (`--augment affine`).

Model: `tfmeta.MAML` on conv4 + a Dense head: second order, inner lr 0.4, one inner step (three
at test, `--eval-steps`), meta-batch 32, Adam 1e-3, one query per class in training.
`--maml-plus-plus` adds MAML++'s learned per-step inner lrs, multi-step loss and per-step
BatchNorm; `--zero-head` / `--proto-head` choose where each inner loop's head starts;
`--init-encoder` starts from trained conv4 weights (`benchmarks/protonet_omniglot.py
--save-weights`).

Train: `--iterations` meta-steps or `--time-budget` seconds, whichever ends first. The weights go
to `<log-dir>/meta_trained.weights.h5` before scoring; `--trained-weights` scores and exports
such a file again without meta-training.

Score: 600 held-out `--ways`-way `--shots`-shot episodes (15 queries per class, the same seeded
episodes for every run) under each of `--test-protocols` (`characters`; `rotations`, the
protocol of the published figures), plain and with `--test-time-views 16` (adapt on 16 views of
each support image, average each query's probabilities over its views).

Export: `saved_models/omniglot_maml/<version>/` (`few_shot` adapts inside the graph), reloaded
with TensorFlow alone and compared with the in-process model on a held-out episode.

Usage:

    python recipes/ch03_maml_omniglot.py                          # full run (5-way 1-shot)
    python recipes/ch03_maml_omniglot.py --quick                  # smoke run, under a minute
    python recipes/ch03_maml_omniglot.py --ways 20 --meta-batch 16 --time-budget 1800
    python recipes/ch03_maml_omniglot.py --maml-plus-plus --inner-steps 3 --time-budget 3600 \\
        --dtype-policy mixed_bfloat16
    python recipes/ch03_maml_omniglot.py --init-encoder ENC.weights.h5 --proto-head --inner-lr 0.1
    python recipes/ch03_maml_omniglot.py --trained-weights runs/ch03_maml_omniglot/meta_trained.weights.h5
"""

from __future__ import annotations

import argparse
import json
import os
import time

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras
import numpy as np

from tfmeta.data import EpisodeSampler
from tfmeta.data.augment import RandomAffine
from tfmeta.data.omniglot import TEST_PROTOCOLS, parse_test_protocols
from tfmeta.data.omniglot_splits import load_omniglot_split
from tfmeta.export import few_shot_function, load_few_shot_signature
from tfmeta.fewshot.evaluation import format_grid

#: Seeds of the test episodes and of the reload check's episode.
TEST_SEED, CHECK_SEED = 1234, 7


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--quick", action="store_true", help="smoke run for CI (under a minute)")
    add("--data-dir", default=None, help="folder holding omniglot/ (default $TFMETA_DATA_DIR)")
    add("--ways", type=int, default=5)
    add("--shots", type=int, default=1)
    add("--train-queries", type=int, default=1, help="query examples per class (training)")
    add("--meta-batch", type=int, default=32)
    add("--iterations", type=int, default=60000)
    add("--time-budget", type=float, default=float("inf"), help="seconds of training")
    add("--inner-lr", type=float, default=0.4)
    add("--inner-steps", type=int, default=1)
    add("--eval-steps", type=int, default=3)
    add("--order", type=int, default=2, choices=(1, 2))
    add("--learn-step-lrs", action="store_true", help="MAML++: learned inner lr per variable and step")
    add("--multi-step-loss", action="store_true", help="MAML++: query loss after every inner step")
    add("--msl-anneal-steps", type=int, default=3000,
        help="meta-iterations over which the multi-step loss moves to the last step")
    add("--per-step-bn", action="store_true", help="MAML++: BatchNorm scale/offset per inner step")
    add("--maml-plus-plus", action="store_true",
        help="all three MAML++ options; give --inner-steps = --eval-steps")
    add("--zero-head", action="store_true", help="every inner loop starts from a zero head")
    add("--proto-head", action="store_true",
        help="Proto-MAML: every inner loop starts from the support set's prototype head")
    add("--lr", type=float, default=1e-3)
    add("--lr-schedule", default="constant", choices=("constant", "cosine"),
        help="cosine: anneal the meta learning rate to 0 over --time-budget")
    add("--filters", type=int, default=64)
    add("--episodes", type=int, default=600, help="test episodes")
    add("--export-dir", default="saved_models/omniglot_maml")
    add("--log-dir", default="runs/ch03_maml_omniglot")
    add("--seed", type=int, default=0)
    add("--augment", default="affine", choices=("none", "affine"),
        help="random affine distortions of every training image")
    add("--mirrors", action="store_true", help="mirror images as more training classes")
    add("--init-encoder", default=None, metavar="WEIGHTS_H5",
        help="start meta-training from these conv4 encoder weights")
    add("--trained-weights", default=None, metavar="WEIGHTS_H5",
        help="skip meta-training: score and export the MAML weights an earlier run saved")
    add("--test-time-views", type=int, default=16,
        help="also score (and export) adaptation on V views of each image; 1 = off")
    add("--test-protocols", default=",".join(TEST_PROTOCOLS),
        help="comma list of characters, rotations; the first is the JSON's top-level accuracy")
    add("--dtype-policy", default="float32", help="Keras dtype policy, e.g. mixed_bfloat16")
    args = p.parse_args(argv)
    if args.test_time_views < 1:
        p.error(f"--test-time-views must be >= 1; received {args.test_time_views}")
    try:
        args.test_protocols = parse_test_protocols(args.test_protocols)
    except ValueError as err:
        p.error(f"--test-protocols: {err}")
    if args.lr_schedule == "cosine" and args.time_budget == float("inf"):
        p.error("--lr-schedule cosine anneals over the wall time; give --time-budget SECONDS")
    if args.trained_weights and args.init_encoder:
        p.error("--trained-weights replaces meta-training; --init-encoder only sets where "
                f"meta-training starts, so give one of them (received both: "
                f"{args.trained_weights!r} and {args.init_encoder!r})")
    if args.trained_weights and not os.path.isfile(args.trained_weights):
        p.error(f"--trained-weights: no such file {args.trained_weights!r}")
    if args.maml_plus_plus:
        args.learn_step_lrs = args.multi_step_loss = args.per_step_bn = True
    if args.quick:
        args.meta_batch, args.iterations, args.filters, args.episodes = 4, 6, 16, 20
        for name in ("export_dir", "log_dir"):
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, getattr(args, name) + "_quick")
    return args


def maml_options(args, **more) -> dict:
    """`tfmeta.MAML` keyword arguments from the flags of the same names."""
    names = ("inner_lr", "inner_steps", "order", "eval_steps", "learn_step_lrs", "multi_step_loss",
             "msl_anneal_steps", "per_step_bn", "zero_head", "proto_head")
    return {**{name: getattr(args, name) for name in names}, **more}


def meta_train(maml, train, probe, args):
    """Meta-trains `maml` on `train`, probing `probe`; returns (history, seconds, iterations)."""
    sampler = EpisodeSampler(train.x, train.y, args.ways, args.shots, args.train_queries, seed=args.seed)
    steps_per_epoch = 10 if args.quick else 500
    budget = tfmeta.callbacks.TimeBudget(
        args.time_budget, cosine_lr=args.lr if args.lr_schedule == "cosine" else None)
    callbacks = [budget] if args.quick else [budget, keras.callbacks.TensorBoard(args.log_dir)]
    start = time.time()
    history = maml.fit(
        sampler.dataset(meta_batch=args.meta_batch, augment=RandomAffine() if args.augment == "affine" else None),
        steps_per_epoch=min(steps_per_epoch, args.iterations),
        epochs=max(1, -(-args.iterations // steps_per_epoch)),
        validation_data=probe.dataset(meta_batch=8, episodes=2 if args.quick else 10, seed=99),
        callbacks=callbacks, verbose=2,
    )
    return history, time.time() - start, int(maml.optimizer.iterations.numpy())


def score(maml, split, args, label: str) -> dict:
    """`{protocol: result}` on the same seeded test episodes of every protocol."""
    scores = {protocol: maml.evaluate_episodes(data.x, data.y, ways=args.ways, shots=args.shots,
                                               queries=15, episodes=args.episodes, seed=TEST_SEED)
              for protocol, data in split.test_sets.items()}
    setting = f"{args.ways}w{args.shots}s"
    print(f"held-out alphabets, {label}:\n" + format_grid({p: {setting: r} for p, r in scores.items()}),
          flush=True)
    return scores


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(args.dtype_policy)
    try:
        return run(args)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def run(args) -> dict:
    start = time.time()
    # Data: the held-out-alphabet split at 28 x 28.
    split = load_omniglot_split(28, mirrors=args.mirrors, test_protocols=args.test_protocols,
                                data_dir=args.data_dir)
    print(split.summary(), flush=True)
    probe = EpisodeSampler(split.held_out.x, split.held_out.y, args.ways, args.shots, 15, seed=args.seed + 1)

    # Model: conv4 + a Dense head of one unit per way, in MAML.
    net = keras.Sequential([keras.Input((28, 28, 1)), tfmeta.backbones.conv4((28, 28, 1), filters=args.filters),
                            keras.layers.Dense(args.ways, name="head")])
    if args.init_encoder:
        net.layers[0].load_weights(args.init_encoder)
        print(f"encoder initialised from {args.init_encoder}")
    maml = tfmeta.MAML(net, **maml_options(args))
    maml.compile(optimizer=keras.optimizers.Adam(args.lr))

    # Meta-train, or load the weights of an earlier run; save them before scoring.
    if args.trained_weights:
        maml.load_weights(args.trained_weights)
        print(f"meta-trained weights loaded from {args.trained_weights}; meta-training skipped")
        history, train_seconds, iterations, weights_path = None, 0.0, None, args.trained_weights
    else:
        history, train_seconds, iterations = meta_train(maml, split.train, probe, args)
        os.makedirs(args.log_dir, exist_ok=True)
        weights_path = os.path.join(args.log_dir, "meta_trained.weights.h5")
        maml.save_weights(weights_path)
        print(f"meta-trained weights saved to {weights_path} "
              f"(--trained-weights {weights_path} scores and exports them again)")

    # Score plain, then the same network with test-time views on the same episodes.
    plain = score(maml, split, args, "plain")
    views = {}
    if args.test_time_views > 1:
        trained = maml
        maml = tfmeta.MAML(net, **maml_options(args, test_time_views=args.test_time_views))
        maml.set_weights(trained.get_weights())  # the learned step lrs / per-step BN
        views = score(maml, split, args, f"{args.test_time_views} test-time views")
    scores = {p: {"accuracy": r["accuracy"], "ci95": r["ci95"], "episodes": r["episodes"],
                  "accuracy_views": views.get(p, {}).get("accuracy"), "ci95_views": views.get(p, {}).get("ci95")}
              for p, r in plain.items()}
    setting = f"{args.ways}way_{args.shots}shot"
    metrics = {p: {f"{setting}_{k}": v for k, v in s.items() if v is not None} for p, s in scores.items()}

    # Export, reload with TensorFlow alone, compare on a held-out episode.
    training = {k: getattr(args, k) for k in (
        "meta_batch", "augment", "mirrors", "init_encoder", "trained_weights", "dtype_policy", "lr_schedule",
        "inner_steps", "learn_step_lrs", "multi_step_loss", "per_step_bn", "zero_head", "proto_head")}
    path = maml.export(args.export_dir, metadata={"class_names": None, "metrics": metrics, "training": {
        "dataset": "omniglot small1+small2", "held_out": list(split.held_out_alphabets),
        "iterations": iterations, **training}})
    episode = probe.sample(seed=CHECK_SEED)
    loaded, signature, _ = load_few_shot_signature(path)
    served = few_shot_function(signature)(episode.support_x, episode.support_y, episode.query_x)
    direct = maml.predict_few_shot(episode.support_x, episode.support_y, episode.query_x)
    max_diff = float(np.max(np.abs(served.numpy() - direct)))
    print(f"exported to {path}; SavedModel few_shot vs in-process max |diff| = {max_diff:.2e}")

    first = scores[args.test_protocols[0]]
    out = {
        "ways": args.ways, "shots": args.shots, "test_protocol": args.test_protocols[0],
        **{k: first[k] for k in ("accuracy", "ci95", "episodes", "accuracy_views", "ci95_views")},
        "protocols": scores, "iterations": iterations, "train_seconds": train_seconds,
        **{k: getattr(args, k) for k in ("test_time_views", "dtype_policy", "augment", "mirrors",
                                          "init_encoder", "proto_head", "lr_schedule", "inner_steps",
                                          "learn_step_lrs", "multi_step_loss", "per_step_bn")},
        "weights": weights_path, "total_seconds": time.time() - start, "export": path,
        "export_max_abs_diff": max_diff,
        "final_train_accuracy": None if history is None else float(history.history.get("accuracy", [np.nan])[-1]),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
