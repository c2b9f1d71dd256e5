"""Trains a prototypical network on Omniglot's held-out-alphabet protocol and reports accuracy.

Trains on the shared background sets minus the held-out alphabets (rotations as extra
classes), then scores 5-way and 20-way, 1-shot and 5-shot episodes on the held-out alphabets
with 95% confidence intervals.

    python benchmarks/protonet_omniglot.py --ways 60 --shots 1 --steps 1500

Every setting is scored under each of `--test-protocols` (default both): `characters` (each
held-out character a class; the keys below) and `rotations` (each held-out character and each
of its 90/180/270-degree rotations a class, the protocol of the published figures; keys
`rotations_...`). The figures below were all measured under `characters`, before the option
existed.

`--pretrain-steps N` first trains the encoder as an ordinary classifier over all training
classes (cross-entropy on augmented mini-batches, as in Chen et al. 2021's Meta-Baseline and
Tian et al. 2020), reports the few-shot accuracy of that embedding alone, then meta-trains it
as a prototypical network for `--steps` episodes.

Measured on one core each (600 test episodes; 5w1s / 5w5s / 20w1s / 20w5s):

    --steps 3000 --decay-every 750 (episodic only):       94.2 / 97.9 / 83.4 / -
    --steps 5000 --decay-every 1250 (3,926 s):            94.0 / 97.9 / 83.4 / 93.2
    --pretrain-steps 8000 --steps 0 (732 s):              92.5 / 97.7 / 80.4 / 92.3
    --pretrain-steps 4000 --steps 1500 --decay-every 500: 93.1 / 97.4 / 81.3 / 92.1

`--tta-shift 1` also scores the same weights with embeddings averaged over 1-pixel translations
(`tfmeta.test_time_augmentation.with_test_time_shifts`) on the same test episodes. Measured on 2 cores:

    --steps 3000 --decay-every 750 --tta-shift 1 (553 s of training):
        plain 94.1 / 97.8 / 83.1 / 93.1;  shifted 94.9 / 98.2 / 85.1 / 94.1
    same with --filters 128 (1,463 s, cores partly shared with a CI run):
        plain 94.0 / 97.9 / 83.7 / 93.5;  shifted 94.7 / 98.2 / 85.5 / 94.4

`--tta-views N` also scores the same weights with the embedding averaged over the image and N-1
fixed `RandomAffine` distortions (`tfmeta.test_time_augmentation.with_test_time_augmentation`) on the same
test episodes, and exports that model. Measured on 2 cores (partly shared):

    --steps 3000 --decay-every 750 --tta-shift 1 --tta-views 32 (924 s of training):
        plain 93.6 / 97.6 / 82.5 / 92.6;  shifted 94.6 / 98.1 / 84.8 / 93.9;
        32 views 94.9 / 98.0 / 85.3 / 94.0

`--refine-steps N` also scores the transductive variant (`PrototypicalNetwork(refine_steps=N)`:
prototypes refined with the episode's queries by soft k-means) on the same episodes:

    --steps 3000 --decay-every 750 --tta-shift 1 --refine-steps 2 (623 s of training):
        plain 93.9 / 97.7 / 82.6 / 93.0;  shifted 94.8 / 98.1 / 84.8 / 93.9;
        transductive (shifted) 97.6 / 98.4 / 89.1 / 94.6

`--members N` trains N networks (seeds `--seed` .. `--seed + N - 1`, each exactly the single
run with that seed), scores each member plain, then scores their ensemble (the concatenated
embeddings, `tfmeta.backbones.concatenate_encoders`, which sums the members' logits) plain and
with the other options, on the same test episodes; `--export` exports the ensemble. Measured:

    --members 4 --steps 3000 --decay-every 750 --tta-shift 1 (2,750 s of training in all):
        members plain 93.1-93.9 / 97.5-97.8 / 81.5-83.0 / 91.9-92.9;
        ensemble plain 94.5 / 98.0 / 84.9 / 93.8;  ensemble shifted 94.8 / 98.1 / 85.7 / 94.3

`--image-size 56` trains on 56 x 56 images (conv4 with `conv4_blocks(56)` = 5 blocks; the
affine shift scales with the size). Measured on 2 cores, same episodes as --mirrors at 28:

    --steps 5000 --decay-every 1250 --mirrors --image-size 56 --tta-views 32
    --views-one-shot-only (3,504 s of training):
        plain 94.0 / 98.2 / 84.4 / 94.0;  32 views 95.0 / - / 86.9 / -
        (28 x 28: plain 93.6 / 97.7 / 84.2 / 93.6;  32 views 94.6 / 98.0 / 86.4 / 94.5)

`--augment elastic` warps every training image with `RandomElastic` (a smoothed random
displacement field, `--elastic-alpha` pixels at 28 x 28, sigma 3) before the affine distortion.
Measured on 2 cores, same episodes:

    --steps 5000 --decay-every 1250 --mirrors --augment elastic (alpha 20, ~290 ms per step):
        plain 92.9 / 97.3 / 81.9 / 91.8  (worse than the affine distortion alone, above)

`--ema M` trains with Keras's weight averaging (`Adam(use_ema=True, ema_momentum=M)`); the probes
and the scores use the averaged weights. Measured on 2 cores, same episodes:

    --steps 5000 --decay-every 1250 --mirrors --ema 0.999 --tta-views 32 --views-one-shot-only:
        plain 93.9 / 97.9 / 84.7 / 93.8;  32 views 94.65 / - / 86.2 / -  (no gain with views)

`--composites N` adds N classes before the rotations, each the ink union of two characters of
one alphabet drawn by the same drawer (`OmniglotData.with_composites`: task augmentation with
new classes, in the spirit of Yao et al. 2021). Measured on 2 cores, same episodes:

    --steps 3000 --decay-every 750 --mirrors --composites 178 --tta-views 32
    --views-one-shot-only (2,848 classes; 1,286 s of training, ~420 ms per step):
        plain 93.2 / 97.7 / 82.5 / 93.1;  32 views 94.5 / - / 85.6 / -
        (without: plain 93.0 / 97.5 / 82.9 / 92.6;  32 views 94.2 / - / 85.4 / -: no gain)

`--teachers ENC[,ENC...]` trains the network with `tfmeta.metric.EpisodeDistiller`: against the
true labels and the averaged soft labels of saved encoders of the same conv4 (`--save-weights`
of earlier runs), weighted by `--distill-alpha` at `--distill-temperature`. Measured on 2 cores
(scored on one fixed draw of 600 episodes per setting, 5w1s / 20w1s):

    --steps 3000 --decay-every 750 --mirrors --teachers FOUR_3000_STEP_MIRRORS_ENCODERS
    --distill-alpha 0.5 --distill-temperature 2 (~0.7 s per step):
        plain 94.2 / 84.1;  32 views 94.9 / 85.7
        (each teacher: plain 93.6-93.8 / 82.7-83.0, 32 views 94.8-94.9 / 85.3-85.7;
         the four concatenated: plain 94.7 / 85.5, 32 views 95.3 / 86.5)
    same, one teacher (born-again; the teacher: plain 93.6 / 83.0, 32 views 94.9 / 85.5):
        plain 93.6 / 82.9;  32 views 94.8 / 85.2  (no gain: the gain above is the ensemble's)

Pre-training reaches nearly the same embedding in a fraction of the time but does not lift
the ceiling: with 178 training characters the data, not the optimiser, limits accuracy.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfmeta  # noqa: E402
from tfmeta.data import EpisodeSampler  # noqa: E402
from tfmeta.data.augment import Compose, RandomAffine, RandomElastic  # noqa: E402
from tfmeta.data.omniglot import (  # noqa: E402
    DEFAULT_HELD_OUT_ALPHABETS,
    TEST_PROTOCOLS,
    load_omniglot,
    parse_test_protocols,
)
from tfmeta.metric.distillation import EpisodeDistiller  # noqa: E402


class EpisodeProbe(keras.callbacks.Callback):
    """Prints held-out few-shot accuracy every `every` epochs."""

    def __init__(self, x, y, every=1, episodes=100):
        super().__init__()
        self.x, self.y, self.every, self.episodes = x, y, every, episodes

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        with averaged_weights(self.model):
            self._probe(epoch)

    def _probe(self, epoch):
        parts = []
        learner = getattr(self.model, "student", self.model)  # an EpisodeDistiller's student
        for ways in (5, 20):
            r = learner.evaluate_episodes(
                self.x, self.y, ways=ways, shots=1, queries=5, episodes=self.episodes, seed=99
            )
            parts.append(f"{ways}w1s={r['accuracy']:.4f}")
        print(f"  epoch {epoch + 1}: " + " ".join(parts), flush=True)


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

    Returns the training accuracy of the last 100 steps; the head is discarded.
    """
    num_classes = int(np.max(y)) + 1
    head = keras.layers.Dense(num_classes, name="pretrain_head")
    inputs = keras.Input(encoder.input_shape[1:])
    classifier = keras.Model(inputs, head(encoder(inputs)))
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps))
    classifier.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ds = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y.astype("int32")))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(
        batch_size, drop_remainder=True
    )
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda xy, s: (augment(xy[0], s), xy[1]), num_parallel_calls=tf.data.AUTOTUNE
        )
    ds = ds.prefetch(tf.data.AUTOTUNE)
    per_epoch = min(100, steps)
    history = classifier.fit(
        ds, steps_per_epoch=per_epoch, epochs=max(1, steps // per_epoch), verbose=2
    )
    return float(history.history["accuracy"][-1])


def evaluate_all(model, test, episodes, results, prefix="", shot_settings=(1, 5),
                 protocols=("characters",)):
    """Scores `model` on the held-out characters under each test protocol, same episodes.

    Keys are `{prefix}{ways}way{shots}shot` for "characters" (no protocol name, the keys the
    figures above were measured under) and `{protocol}_{prefix}...` for the others.
    """
    for protocol in protocols:
        classes = test.test_classes(protocol)
        tag = "" if protocol == "characters" else f"{protocol}_"
        for ways in (5, 20):
            for shots in shot_settings:
                r = model.evaluate_episodes(
                    classes.x, classes.y, ways=ways, shots=shots, queries=15 if ways == 5 else 5,
                    episodes=episodes, seed=1234,
                )
                results[f"{tag}{prefix}{ways}way{shots}shot"] = r
                print(f"{tag}{prefix}{ways}-way {shots}-shot: {100 * r['accuracy']:.2f} "
                      f"+- {100 * r['ci95']:.2f}%", flush=True)


def affine_distortions(image_size: int, strength: float = 1.0) -> RandomAffine:
    """The recipes' `RandomAffine` distortions for `image_size` images, every range times `strength`."""
    base = RandomAffine.for_image_size(image_size)
    return RandomAffine(rotation=base.rotation * strength, shift=base.shift * strength,
                        scale=base.scale * strength, shear=base.shear * strength)


def build_protonet(args, input_shape, weights=None):
    """A prototypical network on the conv4 the flags describe, optionally loading encoder weights."""
    encoder = tfmeta.backbones.conv4(
        input_shape, filters=args.filters, blocks=args.blocks, final_pool=not args.no_final_pool
    )
    if weights is not None:
        encoder.load_weights(weights)
    return tfmeta.PrototypicalNetwork(encoder, distance=args.distance)


def train_member(args, train, test, seed, results, prefix=""):
    """Trains one prototypical network with `seed` and records its scores under `prefix`."""
    keras.utils.set_random_seed(seed)
    model = build_protonet(args, train.x.shape[1:])
    lr = keras.optimizers.schedules.ExponentialDecay(
        args.lr, decay_steps=args.decay_every, decay_rate=0.5, staircase=True
    )
    # With --ema, fit() ends by loading the moving average into the model (Keras's
    # finalize_variable_values), so the scores below use the averaged weights.
    model.compile(optimizer=keras.optimizers.Adam(
        lr, use_ema=args.ema > 0, ema_momentum=args.ema if args.ema > 0 else 0.99
    ))
    augment = None if args.augment == "none" else affine_distortions(args.image_size, args.affine_strength)
    if args.augment == "elastic":
        augment = Compose(
            RandomElastic.for_image_size(args.image_size, alpha=args.elastic_alpha), augment
        )
    if args.pretrain_steps:
        start = time.time()
        results[f"{prefix}pretrain_train_accuracy"] = pretrain_encoder(
            model.encoder, train.x, train.y, args.pretrain_steps, args.pretrain_batch,
            args.lr, augment, seed,
        )
        results[f"{prefix}pretrain_seconds"] = round(time.time() - start, 1)
        evaluate_all(model, test, args.episodes, results, prefix=f"{prefix}pretrained_",
                     protocols=args.test_protocols)
    trainer = model
    if args.teachers:
        # Distillation: the same student and optimiser, trained against the true labels and the
        # averaged soft labels of the saved teacher encoders (tfmeta.metric.EpisodeDistiller).
        teachers = [build_protonet(args, train.x.shape[1:], path) for path in args.teachers.split(",")]
        trainer = EpisodeDistiller(
            model, teachers, alpha=args.distill_alpha, temperature=args.distill_temperature
        )
        trainer.compile(optimizer=model.optimizer)
    groups = dict(enumerate(train.alphabets)) if args.within_alphabet else None
    ds = EpisodeSampler(
        train.x, train.y, args.ways, args.shots, args.queries, seed=seed, class_groups=groups
    ).dataset(augment=augment)
    start = time.time()
    if args.steps:
        trainer.fit(
            ds,
            steps_per_epoch=args.steps_per_epoch,
            epochs=max(1, args.steps // args.steps_per_epoch),
            verbose=2,
            callbacks=[EpisodeProbe(test.x, test.y, every=args.probe_every)],
        )
    seconds = round(time.time() - start, 1)
    if args.save_weights:
        path = Path(args.save_weights)
        model.encoder.save_weights(path if args.members == 1 else path.with_name(f"seed{seed}_{path.name}"))
    results["train_seconds"] = round(results.get("train_seconds", 0.0) + seconds, 1)
    if prefix:
        results[f"{prefix}train_seconds"] = seconds
        evaluate_all(model, test, args.episodes, results, prefix=prefix,
                     protocols=args.test_protocols)
    return model


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=60)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.0,
                        help="keep an exponential moving average of the weights with this "
                        "momentum (Adam(use_ema=True)); probes and scores use it; 0 = off")
    parser.add_argument("--decay-every", type=int, default=500, help="halve lr every N steps")
    parser.add_argument("--episodes", type=int, default=600, help="test episodes per setting")
    parser.add_argument("--probe-every", type=int, default=5, help="epochs between probes")
    parser.add_argument("--distance", default="euclidean")
    parser.add_argument("--filters", type=int, default=64, help="conv4 filters")
    parser.add_argument("--image-size", type=int, default=28,
                        help="side of the images (Omniglot's are 105); the affine distortions' "
                        "shift scales with it (2 pixels at 28)")
    parser.add_argument("--blocks", type=int, default=None,
                        help="conv4 blocks (default: tfmeta.backbones.conv4_blocks(image_size), "
                        "4 at 28, 5 at 56)")
    parser.add_argument("--no-final-pool", action="store_true",
                        help="conv4 without its last max-pool (a 3x3 spatial embedding)")
    parser.add_argument("--mirrors", action="store_true",
                        help="also add each training class's mirror image as a class (x8 with rotations)")
    parser.add_argument("--within-alphabet", action="store_true",
                        help="draw every training episode's classes from one alphabet (with its "
                        "rotations and mirrors), as the held-out episodes mostly are")
    parser.add_argument("--composites", type=int, default=0,
                        help="add N classes, each two same-alphabet characters overlaid "
                        "(OmniglotData.with_composites), before the rotations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", default=None, help="export base dir")
    parser.add_argument("--save-weights", default=None,
                        help="save the trained encoder's weights here (a .weights.h5 path; "
                        "its name prefixed with seed<S>_ when --members > 1)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--augment", default="affine", choices=("affine", "elastic", "none"),
                        help="training distortions: affine; elastic = a RandomElastic warp, "
                        "then the affine distortion; none")
    parser.add_argument("--affine-strength", type=float, default=1.0,
                        help="scale the affine distortions (training and test-time views): "
                        "rotation 10k degrees, shift 2k pixels at 28 x 28, zoom 0.1k, shear 10k")
    parser.add_argument("--elastic-alpha", type=float, default=20.0,
                        help="RandomElastic alpha at 28 x 28 (sigma 3), scaled with --image-size")
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="classifier pre-training steps (batches of --pretrain-batch images)")
    parser.add_argument("--pretrain-batch", type=int, default=128)
    parser.add_argument("--tta-shift", type=int, default=0,
                        help="also score with embeddings averaged over translations of up to N "
                        "pixels (tfmeta.test_time_augmentation.with_test_time_shifts), on the same episodes")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="also score the transductive variant (prototypes refined with the "
                        "episode's queries by N soft k-means steps) on the same episodes; the "
                        "export stays inductive")
    parser.add_argument("--tta-views", type=int, default=0,
                        help="also score the same weights with the embedding averaged over N "
                        "views: the image and N-1 fixed RandomAffine distortions "
                        "(tfmeta.test_time_augmentation.with_test_time_augmentation); exported when given")
    parser.add_argument("--members", type=int, default=1,
                        help="train N prototypical networks (seeds seed..seed+N-1), score each, "
                        "and score their ensemble: the concatenated embeddings "
                        "(tfmeta.backbones.concatenate_encoders), which sums the members' logits")
    parser.add_argument("--teachers", default=None, metavar="ENC[,ENC...]",
                        help="distil these saved encoders (.weights.h5 of the same conv4 as the "
                        "student) into the network: tfmeta.metric.EpisodeDistiller, their "
                        "prototypical logits averaged into the soft labels")
    parser.add_argument("--distill-alpha", type=float, default=0.5,
                        help="weight of the distillation term (with --teachers)")
    parser.add_argument("--distill-temperature", type=float, default=2.0,
                        help="softmax temperature of the soft labels (with --teachers)")
    parser.add_argument("--test-protocols", default=",".join(TEST_PROTOCOLS),
                        help="comma list of held-out test protocols (OmniglotData.test_classes): "
                        "characters, and rotations (the papers' protocol: each held-out "
                        "character's 90/180/270-degree rotations are classes too); keys of "
                        "protocols other than characters start with the protocol's name")
    parser.add_argument("--views-one-shot-only", action="store_true",
                        help="score the --tta-views model on the 1-shot settings only (views "
                        "cost V encoder passes per image; 5-shot supports hold 5x the images)")
    args = parser.parse_args(argv)
    if args.members < 1:
        parser.error(f"--members must be >= 1; received {args.members}")
    if not 0.0 < args.affine_strength < 10.0:
        parser.error(f"--affine-strength must be in (0, 10) (zoom 0.1k < 1); received {args.affine_strength}")
    if not 0.0 <= args.ema < 1.0:
        parser.error(f"--ema must be in [0, 1) (0 = off); received {args.ema}")
    if args.blocks is None:
        args.blocks = tfmeta.backbones.conv4_blocks(args.image_size)
    try:
        args.test_protocols = parse_test_protocols(args.test_protocols)
    except ValueError as err:
        parser.error(f"--test-protocols: {err}")

    data = load_omniglot(("small1", "small2"), data_dir=args.data_dir, image_size=args.image_size)
    train, test = data.split_by_alphabet(DEFAULT_HELD_OUT_ALPHABETS)
    if args.composites:
        train = train.with_composites(args.composites, seed=args.seed)
    train = train.with_rotations()
    if args.mirrors:
        train = train.with_mirrors()
    print(f"train classes {train.num_classes} (with rotations{' and mirrors' if args.mirrors else ''}), test classes {test.num_classes}")

    results = {"args": vars(args)}
    members = []
    for i in range(args.members):
        # Member i is exactly the single-model run with --seed (seed + i).
        prefix = f"member{i}_" if args.members > 1 else ""
        members.append(train_member(args, train, test, args.seed + i, results, prefix))
    if args.members > 1:
        # Same test episodes: each member plain (above), then the joint embedding.
        encoder = tfmeta.backbones.concatenate_encoders([m.encoder for m in members])
        model = tfmeta.PrototypicalNetwork(encoder, distance=args.distance)
    else:
        model = members[0]
    evaluate_all(model, test, args.episodes, results, protocols=args.test_protocols)
    encoder = model.encoder
    if args.tta_shift:
        # Same trained encoder, inference averaged over translated copies; same test episodes.
        model = tfmeta.PrototypicalNetwork(
            tfmeta.test_time_augmentation.with_test_time_shifts(model.encoder, args.tta_shift),
            distance=args.distance,
        )
        evaluate_all(model, test, args.episodes, results, prefix=f"tta{args.tta_shift}_",
                     protocols=args.test_protocols)
    if args.tta_views:
        # Same trained encoder, embedding averaged over fixed affine distortions drawn from the
        # training augmentation (the image itself + views-1); same test episodes.
        model = tfmeta.PrototypicalNetwork(
            tfmeta.test_time_augmentation.with_test_time_augmentation(
                encoder, views=args.tta_views, augment=affine_distortions(args.image_size, args.affine_strength)
            ),
            distance=args.distance,
        )
        evaluate_all(model, test, args.episodes, results, prefix=f"ttaviews{args.tta_views}_",
                     shot_settings=(1,) if args.views_one_shot_only else (1, 5),
                     protocols=args.test_protocols)
    if args.refine_steps:
        # Same encoder (averaged over views when --tta-shift/--tta-views), transductive; same episodes.
        refined = tfmeta.PrototypicalNetwork(
            model.encoder, distance=args.distance, refine_steps=args.refine_steps
        )
        evaluate_all(refined, test, args.episodes, results,
                     prefix=f"transductive{args.refine_steps}_", protocols=args.test_protocols)
    if args.export:
        results["export"] = model.export(args.export, metadata={"metrics": results})
    print(json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
