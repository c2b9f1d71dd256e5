"""Trains a prototypical network on Omniglot's held-out-alphabet split and reports its accuracy.

Trains on the background sets minus the held-out alphabets, rotations as extra classes
(`tfmeta.data.omniglot_splits.load_omniglot_split`), with random affine distortions, probing
5-way and 20-way 1-shot accuracy on held-out characters every `--probe-every` epochs. Then it
scores 5-way and 20-way, 1-shot and 5-shot test episodes (600 per setting, 15 queries per class
at 5 ways and 5 at 20, the same episodes for every run: `tfmeta.fewshot.grids.score_settings`)
under each of `--test-protocols` (`characters`; `rotations`, the protocol of the published
figures), and prints one JSON object whose `scores` hold, for every variant scored,
`{protocol: {"5w1s": {"accuracy", "ci95", ...}, ...}}`.

The variants, each on the same test episodes:

- `model`: the trained network (with `--members N`, the concatenation of N networks trained with
  seeds `--seed` .. `--seed + N - 1`, `tfmeta.backbones.concatenate_encoders`, which sums their
  logits; each member is also scored alone, `member<i>`);
- `pretrained`: with `--pretrain-steps N`, the encoder first trained as an ordinary classifier
  over all training classes, before episodic training;
- `tta<S>`: `--tta-shift S`, embeddings averaged over translations of up to S pixels;
- `ttaviews<V>`: `--tta-views V`, embeddings averaged over the image and V-1 fixed training
  distortions (exported when given; `--views-one-shot-only` scores its 1-shot settings only);
- `transductive<K>`: `--refine-steps K`, prototypes refined with the episode's queries by K soft
  k-means steps.

More training options: `--mirrors` and `--composites N` (more classes), `--within-alphabet`
(episodes from one alphabet), `--augment elastic` (a `RandomElastic` warp before the affine
distortion), `--affine-strength`, `--ema M` (weight averaging), `--teachers ENC[,ENC...]`
(distillation from saved encoders, `tfmeta.metric.EpisodeDistiller`), `--image-size`,
`--blocks`, `--no-final-pool`, `--filters`. `--save-weights` keeps the trained encoder (for
`recipes/ch03_maml_omniglot.py --init-encoder` or `--teachers`), `--export DIR` the model.

Usage:

    python benchmarks/protonet_omniglot.py --ways 60 --shots 1 --steps 1500
    python benchmarks/protonet_omniglot.py --steps 3000 --decay-every 750 --tta-shift 1 --tta-views 32
    python benchmarks/protonet_omniglot.py --steps 5000 --decay-every 1250 --mirrors --tta-views 32 \\
        --views-one-shot-only
    python benchmarks/protonet_omniglot.py --members 4 --steps 3000 --decay-every 750 --tta-shift 1
    python benchmarks/protonet_omniglot.py --pretrain-steps 8000 --steps 0
    python benchmarks/protonet_omniglot.py --steps 20 --steps-per-epoch 10 --episodes 10   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data import EpisodeSampler
from tfmeta.data.augment import Compose, RandomAffine, RandomElastic
from tfmeta.data.omniglot import TEST_PROTOCOLS, parse_test_protocols
from tfmeta.data.omniglot_splits import load_omniglot_split
from tfmeta.fewshot.evaluation import STANDARD_SETTINGS, format_grid
from tfmeta.fewshot.grids import score_settings
from tfmeta.metric.distillation import EpisodeDistiller
from tfmeta.test_time_augmentation import with_test_time_augmentation, with_test_time_shifts

#: The probe's settings, queries per class and seed (its own episodes, not the test's).
PROBE_SETTINGS, PROBE_QUERIES, PROBE_SEED = ((5, 1), (20, 1)), 5, 99


class EpisodeProbe(keras.callbacks.Callback):
    """Prints held-out 5-way and 20-way 1-shot accuracy every `every` epochs."""

    def __init__(self, x, y, every: int = 1, episodes: int = 100):
        super().__init__()
        self.test_set, self.every, self.episodes = {"probe": (x, y)}, every, episodes

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        learner = getattr(self.model, "student", self.model)  # an EpisodeDistiller's student
        with averaged_weights(self.model):
            scores = score_settings(learner, self.test_set, PROBE_SETTINGS, episodes=self.episodes,
                                    seed=PROBE_SEED, queries=PROBE_QUERIES)
        print(f"  epoch {epoch + 1}: {format_grid(scores)}", flush=True)


@contextlib.contextmanager
def averaged_weights(model):
    """Swaps the optimizer's moving average into `model` for the block (no-op without EMA)."""
    optimizer = model.optimizer
    if not getattr(optimizer, "use_ema", False) or not optimizer.built:
        yield
        return
    current = [v.numpy() for v in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield
    finally:
        for variable, value in zip(model.trainable_variables, current):
            variable.assign(value)


def pretrain_encoder(encoder, x, y, steps, batch_size=128, lr=1e-3, augment=None, seed=0):
    """Trains `encoder` + a linear head as a classifier over all classes of `(x, y)`.

    Returns the training accuracy of the last epoch; the head is discarded.
    """
    num_classes = int(np.max(y)) + 1
    inputs = keras.Input(encoder.input_shape[1:])
    classifier = keras.Model(inputs, keras.layers.Dense(num_classes, name="pretrain_head")(encoder(inputs)))
    classifier.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps))),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ds = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y.astype("int32")))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (augment(xy[0], s), xy[1]), num_parallel_calls=tf.data.AUTOTUNE)
    per_epoch = min(100, steps)
    history = classifier.fit(ds.prefetch(tf.data.AUTOTUNE), steps_per_epoch=per_epoch,
                             epochs=max(1, steps // per_epoch), verbose=2)
    return float(history.history["accuracy"][-1])


def affine_distortions(image_size: int, strength: float = 1.0) -> RandomAffine:
    """The recipes' `RandomAffine` distortions for `image_size` images, every range times `strength`."""
    base = RandomAffine.for_image_size(image_size)
    return RandomAffine(rotation=base.rotation * strength, shift=base.shift * strength,
                        scale=base.scale * strength, shear=base.shear * strength)


def build_protonet(args, input_shape, weights=None):
    """A prototypical network on the conv4 the flags describe, optionally loading encoder weights."""
    encoder = tfmeta.backbones.conv4(
        input_shape, filters=args.filters, blocks=args.blocks, final_pool=not args.no_final_pool)
    if weights is not None:
        encoder.load_weights(weights)
    return tfmeta.PrototypicalNetwork(encoder, distance=args.distance)


def score(model, split, args, results, variant: str, one_shot_only: bool = False) -> None:
    """Scores `model` on every test setting and protocol into `results["scores"][variant]`."""
    settings = [(w, s) for w, s in STANDARD_SETTINGS if s == 1 or not one_shot_only]
    results["scores"][variant] = score_settings(model, split.test_arrays(), settings, episodes=args.episodes,
                                                label=f"[{variant}] ")


def train_member(args, split, seed, results, name=None):
    """Trains one prototypical network with `seed`; scores it as `name` when given."""
    keras.utils.set_random_seed(seed)
    train = split.train
    model = build_protonet(args, train.x.shape[1:])
    lr = keras.optimizers.schedules.ExponentialDecay(
        args.lr, decay_steps=args.decay_every, decay_rate=0.5, staircase=True)
    # With --ema, fit() ends by loading the moving average into the model (Keras's
    # finalize_variable_values), so the scores below use the averaged weights.
    model.compile(optimizer=keras.optimizers.Adam(
        lr, use_ema=args.ema > 0, ema_momentum=args.ema if args.ema > 0 else 0.99))
    augment = None if args.augment == "none" else affine_distortions(args.image_size, args.affine_strength)
    if args.augment == "elastic":
        augment = Compose(RandomElastic.for_image_size(args.image_size, alpha=args.elastic_alpha), augment)
    prefix = f"{name}_" if name else ""
    if args.pretrain_steps:
        start = time.time()
        results[f"{prefix}pretrain_train_accuracy"] = pretrain_encoder(
            model.encoder, train.x, train.y, args.pretrain_steps, args.pretrain_batch, args.lr, augment, seed)
        results[f"{prefix}pretrain_seconds"] = round(time.time() - start, 1)
        score(model, split, args, results, f"{prefix}pretrained")
    trainer = model
    if args.teachers:
        # The same student and optimiser, trained against the true labels and the averaged soft
        # labels of the saved teacher encoders.
        teachers = [build_protonet(args, train.x.shape[1:], path) for path in args.teachers.split(",")]
        trainer = EpisodeDistiller(model, teachers, alpha=args.distill_alpha, temperature=args.distill_temperature)
        trainer.compile(optimizer=model.optimizer)
    groups = dict(enumerate(train.alphabets)) if args.within_alphabet else None
    data = EpisodeSampler(train.x, train.y, args.ways, args.shots, args.queries, seed=seed,
                          class_groups=groups).dataset(augment=augment)
    start = time.time()
    if args.steps:
        trainer.fit(data, steps_per_epoch=args.steps_per_epoch, epochs=max(1, args.steps // args.steps_per_epoch),
                    verbose=2, callbacks=[EpisodeProbe(split.held_out.x, split.held_out.y, every=args.probe_every)])
    seconds = round(time.time() - start, 1)
    if args.save_weights:
        path = Path(args.save_weights)
        model.encoder.save_weights(path if args.members == 1 else path.with_name(f"seed{seed}_{path.name}"))
    results["train_seconds"] = round(results.get("train_seconds", 0.0) + seconds, 1)
    if name:
        results[f"{name}_train_seconds"] = seconds
        score(model, split, args, results, name)
    return model


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--ways", type=int, default=60)
    add("--shots", type=int, default=1)
    add("--queries", type=int, default=5)
    add("--steps", type=int, default=1500)
    add("--steps-per-epoch", type=int, default=100)
    add("--lr", type=float, default=1e-3)
    add("--ema", type=float, default=0.0, help="weight moving-average momentum (Adam(use_ema=True)); 0 = off")
    add("--decay-every", type=int, default=500, help="halve lr every N steps")
    add("--episodes", type=int, default=600, help="test episodes per setting")
    add("--probe-every", type=int, default=5, help="epochs between probes")
    add("--distance", default="euclidean")
    add("--filters", type=int, default=64, help="conv4 filters")
    add("--image-size", type=int, default=28, help="image side; the distortions' shift scales with it")
    add("--blocks", type=int, default=None, help="conv4 blocks (default: conv4_blocks(image_size))")
    add("--no-final-pool", action="store_true", help="conv4 without its last max-pool")
    add("--mirrors", action="store_true", help="mirror images as more training classes")
    add("--within-alphabet", action="store_true", help="draw each training episode from one alphabet")
    add("--composites", type=int, default=0, help="add N classes of two overlaid characters")
    add("--seed", type=int, default=0)
    add("--export", default=None, help="export base dir")
    add("--save-weights", default=None,
        help="save the trained encoder's weights (.weights.h5; prefixed seed<S>_ when --members > 1)")
    add("--data-dir", default=None)
    add("--augment", default="affine", choices=("affine", "elastic", "none"),
        help="training distortions: affine; elastic = a RandomElastic warp, then affine; none")
    add("--affine-strength", type=float, default=1.0, help="scale the affine distortions' ranges")
    add("--elastic-alpha", type=float, default=20.0, help="RandomElastic alpha at 28 x 28 (sigma 3)")
    add("--pretrain-steps", type=int, default=0, help="classifier pre-training steps")
    add("--pretrain-batch", type=int, default=128)
    add("--tta-shift", type=int, default=0, help="also score embeddings averaged over N-pixel shifts")
    add("--refine-steps", type=int, default=0, help="also score prototypes refined by N soft k-means steps")
    add("--tta-views", type=int, default=0, help="also score (and export) embeddings averaged over N views")
    add("--members", type=int, default=1, help="train N networks and score their ensemble")
    add("--teachers", default=None, metavar="ENC[,ENC...]", help="distil these saved encoders")
    add("--distill-alpha", type=float, default=0.5, help="weight of the distillation term")
    add("--distill-temperature", type=float, default=2.0, help="temperature of the soft labels")
    add("--test-protocols", default=",".join(TEST_PROTOCOLS), help="comma list of characters, rotations")
    add("--views-one-shot-only", action="store_true", help="score the --tta-views model on 1-shot settings only")
    args = p.parse_args(argv)
    if args.members < 1:
        p.error(f"--members must be >= 1; received {args.members}")
    if not 0.0 < args.affine_strength < 10.0:
        p.error(f"--affine-strength must be in (0, 10) (zoom 0.1k < 1); received {args.affine_strength}")
    if not 0.0 <= args.ema < 1.0:
        p.error(f"--ema must be in [0, 1) (0 = off); received {args.ema}")
    if args.blocks is None:
        args.blocks = tfmeta.backbones.conv4_blocks(args.image_size)
    try:
        args.test_protocols = parse_test_protocols(args.test_protocols)
    except ValueError as err:
        p.error(f"--test-protocols: {err}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    split = load_omniglot_split(args.image_size, mirrors=args.mirrors, composites=args.composites,
                                seed=args.seed, test_protocols=args.test_protocols, data_dir=args.data_dir)
    print(split.summary(), flush=True)
    results = {"args": vars(args), "scores": {}}
    # Member i is exactly the single-network run with --seed (seed + i).
    members = [train_member(args, split, args.seed + i, results, f"member{i}" if args.members > 1 else None)
               for i in range(args.members)]
    model = members[0]
    if args.members > 1:  # the joint embedding of the members
        encoder = tfmeta.backbones.concatenate_encoders([m.encoder for m in members])
        model = tfmeta.PrototypicalNetwork(encoder, distance=args.distance)
    score(model, split, args, results, "model")
    encoder = model.encoder
    if args.tta_shift:
        model = tfmeta.PrototypicalNetwork(with_test_time_shifts(encoder, args.tta_shift), distance=args.distance)
        score(model, split, args, results, f"tta{args.tta_shift}")
    if args.tta_views:
        views = with_test_time_augmentation(
            encoder, views=args.tta_views, augment=affine_distortions(args.image_size, args.affine_strength))
        model = tfmeta.PrototypicalNetwork(views, distance=args.distance)
        score(model, split, args, results, f"ttaviews{args.tta_views}", one_shot_only=args.views_one_shot_only)
    if args.refine_steps:  # the last encoder scored (with its shifts or views), transductive
        refined = tfmeta.PrototypicalNetwork(model.encoder, distance=args.distance, refine_steps=args.refine_steps)
        score(refined, split, args, results, f"transductive{args.refine_steps}")
    if args.export:
        results["export"] = model.export(args.export, metadata={"metrics": results})
    print(json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
