"""Chapter 1: a Siamese network for one-shot Omniglot (Koch et al. 2015), held-out alphabets.

Trains `tfmeta.SiameseNetwork` on the Omniglot background sets (`small1` + `small2`, 8
alphabets, 242 characters) with whole alphabets held out (`DEFAULT_HELD_OUT_ALPHABETS`:
Balinese and Korean, 64 characters never seen in training). Training uses the other 178
characters plus their 90/180/270-degree rotations as extra classes (712 classes) and small
random affine distortions. Every drawing is size-normalised first (`--ink-box 34 --image-size
40`, `tfmeta.data.ink_box`: the ink's bounding box, read from the 105 x 105 original, scaled
into a centred 34 x 34 square of the 40 x 40 input), and the export does the same in its graph,
so it takes raw 105 x 105 drawings. Then it:

1. builds 20-way one-shot runs in Lake's format from the held-out alphabets
   (`tfmeta.data.oneshot_runs.make_oneshot_runs`, every run within one alphabet),
2. exports the model to `saved_models/omniglot_siamese/<version>/` (`serving_default` = pair
   similarity, `few_shot` = class probabilities),
3. scores the *exported* SavedModel on the runs with `tfmeta.fewshot.oneshot.evaluate_saved_model`
   (the same routine as `tfmeta oneshot-eval`) and checks it matches the in-process Keras model,
4. plots a few held-out pairs with their similarity to `recipe_outputs/`.

Usage:

    python recipes/ch01_siamese_omniglot.py                  # full run (25 min training)
    python recipes/ch01_siamese_omniglot.py --quick          # smoke run, < 1 minute
    python recipes/ch01_siamese_omniglot.py --objective koch --distance l1
    python recipes/ch01_siamese_omniglot.py --dtype-policy mixed_bfloat16   # bfloat16 convs

The trained weights are saved to `<out-dir>/ch01_siamese_omniglot.weights.h5` before the runs are
scored, so a failure in scoring or export does not lose the training.

Measured (2 shared CPU cores, 25 min of training, 40 held-out runs = 800 trials, Balinese and
Korean held out; each run is 20 characters of ONE alphabet, as in Lake's runs):

    (default) --image-size 40 --ink-box 34 --episode-loss softmax --ways 40 --lr-schedule
              cosine --tta-shift 1 (contrastive, euclidean; 2026-12-02, AVX512 CPU, 2 free
              cores): 4549 steps, 81.75% (error 18.25%; Balinese runs 69.3%, Korean 94.3%),
              80.5% without the shifts; export and Keras identical. The same export on 40
              fresh runs (make_oneshot_runs(seed=1), built after the box size was chosen):
              82.25% (Balinese 68.8%, Korean 95.8%).
    --image-size 28 --ink-box 24 (else default; 2 cores, a few nice-19 test runs sharing
              them): 8397 steps, 78.9% (Balinese 62.8%, Korean 95.0%); fresh seed-1 runs 79.1%
    box sizes at a fixed 3,000 steps, two at a time on one core each, the seed-0 runs:
              28 --ink-box 0: 72.4%; 28 --ink-box 24: 76.9%; 28 --ink-box 28: 78.1%;
              40 --ink-box 34: 80.25% (Balinese 65.3%). The box size was chosen on these runs,
              so the seed-1 figure above is the unselected check.
    --image-size 28 --ink-box 0 (plain 28 x 28 downsampling, the default before 2026-12-02;
              the rows below are all this): 12011 steps (2 cores, briefly shared), 74.5% (error
              25.5%); fresh seed-1 runs (stop 37's bf16 export): 76.5%
              (the --dtype-policy mixed_bfloat16 weights below, rescored in float32: 73.4%,
              Balinese runs 54.0%, Korean 92.8%)
    --ink-box 24 against --ink-box 0 at a fixed 3,000 steps, the same seed-0 runs, side by side
              on one core each: 76.9% against 72.4% (Balinese 60.0 / 52.3, Korean 93.8 / 92.5)
    same, --seed 1 (its own 40 runs):       11860 steps (2 free cores), 75.0%; the same weights
                                            without the shifts: 72.5%
    --tta-shift 0 (else default):           13354 steps (2 free cores), 72.8% (error 27.3%)
    --mirrors (else default; mirror images as more classes, 1,424): 13392 steps (2 cores,
                                            a 20-s test run shared them once), 73.9% on the seed-0 runs (72.6% without
                                            the shifts): no gain over 74.5%
    --dtype-policy mixed_bfloat16 (else default; 2026-12-01, an AVX512-BF16 CPU, 2 free cores):
                                            11642 steps, 73.1% on the seed-0 runs (71.5% without
                                            the shifts): within noise of 74.5%; bfloat16 convs are
                                            ~1.2x faster per step than float32 on that CPU (689 vs
                                            556 steps in a 90-s probe), and that CPU's float32
                                            steps are slower than the AVX2 machine's above
    (the rows below were measured before test-time shifts existed, i.e. with --tta-shift 0)
    --lr-schedule constant (else default):  11849 steps (2 free cores), 70.6% (error 29.4%)
    --within-alphabet (else default):       12627 steps (2 free cores), 73.4% (within noise)
    --episode-loss pairs --ways 20:          4272 steps, 60.3% (error 39.8%)
    --episode-loss pairs --ways 20 --objective koch --distance l1:
                                             3346 steps, 53.9% (error 46.1%)
    --episode-loss pairs --ways 40:          3162 steps, 59.5%
    --episode-loss pairs --within-alphabet:  6857 steps, 60.9%

`--tta-shift 1` scores with each embedding averaged over the image and its eight 1-pixel
translations (`tfmeta.test_time_augmentation.with_test_time_shifts`; training is unchanged, the export
carries it). On the same trained weights it is worth +2.5 points in the seed-1 run above
(`oneshot20_accuracy_without_tta` 72.5% -> 75.0%). One-off probes outside this repo (a 4-minute
model, 100 runs = 2,000 trials) agree: 70.7% -> 73.3% with 1-pixel shifts, 73.0% with 2-pixel
shifts (25 views), so 1 is the default. `--tta-views N` also reports the same weights with
embeddings averaged over N distorted views (`with_test_time_augmentation`, the training
distortions): `--minutes 5 --tta-views 32 --runs 100` (1,346 steps on shared cores) gave
68.8% without augmentation, 70.7% with the shifts, 71.1% with 32 views: within noise of
the shifts, so they stay the default (and the export).

(The pair-loss rows ran on cores shared with other jobs, so they took fewer steps in the
same 25 minutes: part of the gap may be steps, not the loss; not yet separated.) The N-pair softmax episode loss trains the same pair scores to rank the
query's own class above the other N-1, which is exactly what a one-shot run asks.

Size normalisation is what reached the 80% target: a plain downsampling leaves Omniglot's wide,
low characters (Balinese above all) a few pixels tall. The Balinese runs stay the hard half, 20 of
that alphabet's 24 curly characters in every run (Koch et al. report 92% on Lake's own runs with
the full 30-alphabet background set and far more compute; our training set has 178 characters).

The data is read from `$TFMETA_DATA_DIR` (default `../shared/data`), or tensorflow-datasets.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RECIPE = "ch01_siamese_omniglot"
RAW_SIZE = 105  # Omniglot's drawings are 105 x 105


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run (< 1 minute), for CI")
    # Default = the better of the two objectives in our full runs (see the module docstring).
    p.add_argument("--objective", default="contrastive", choices=["koch", "contrastive"])
    p.add_argument("--distance", default="euclidean", choices=["l1", "euclidean", "cosine"])
    p.add_argument("--margin", type=float, default=1.0, help="contrastive margin")
    p.add_argument(
        "--train-on",
        default="episodes",
        choices=["episodes", "pairs"],
        help="episodes: all query/support pairs of 20-way episodes (balanced); "
        "pairs: PairSampler batches",
    )
    p.add_argument(
        "--episode-loss",
        default="softmax",
        choices=["pairs", "softmax"],
        help="episodes: pairs = the objective's pair loss on every query/support pair; "
        "softmax = N-pair cross-entropy over each query's per-class pair logits",
    )
    p.add_argument("--batch-size", type=int, default=128, help="pairs per batch (--train-on pairs)")
    p.add_argument("--ways", type=int, default=40, help="classes per training episode")
    p.add_argument("--queries", type=int, default=5, help="queries per class per training episode")
    p.add_argument(
        "--within-alphabet",
        action="store_true",
        help="draw each training episode's classes from one alphabet (hard negatives, like Lake's runs)",
    )
    p.add_argument("--filters", type=int, default=64, help="conv4 filters")
    p.add_argument(
        "--mirrors",
        action="store_true",
        help="also add each training character's mirror image as a class (x8 with the rotations)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=40,
        help="side of the encoder's square input (conv4 with 4 blocks: 40 -> a 2 x 2 x filters "
        "embedding, 28 -> 1 x 1)",
    )
    p.add_argument(
        "--ink-box",
        type=int,
        default=34,
        help="size normalisation (tfmeta.data.ink_box): every image's ink bounding box scaled "
        "into a centred square of this many pixels in the --image-size input, from the 105 x 105 "
        "originals; the export takes raw 105 x 105 images and normalises them in the graph "
        "(0 = off: plain downsampling to --image-size)",
    )
    p.add_argument(
        "--tta-shift",
        type=int,
        default=1,
        help="test-time augmentation: average embeddings over translations of up to this many "
        "pixels (tfmeta.test_time_augmentation.with_test_time_shifts; 1 = 9 views, 0 = off)",
    )
    p.add_argument(
        "--tta-views",
        type=int,
        default=0,
        help="also score the same weights with embeddings averaged over N views: the image and "
        "N-1 fixed distortions drawn from the training augmentation "
        "(tfmeta.test_time_augmentation.with_test_time_augmentation; reported, not exported; 0 = off)",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--lr-schedule",
        default="cosine",
        choices=["constant", "cosine"],
        help="cosine: anneal the learning rate to 0 over the --minutes time budget",
    )
    p.add_argument("--steps", type=int, default=20000, help="max training steps")
    p.add_argument("--minutes", type=float, default=25.0, help="training time budget")
    p.add_argument("--no-augment", action="store_true", help="disable affine distortions")
    p.add_argument(
        "--dtype-policy", default="float32",
        help="Keras dtype policy of the encoder; mixed_bfloat16 runs the convolutions in "
        "bfloat16 with float32 weights and distances (fast on CPUs with AVX512-BF16)",
    )
    p.add_argument("--runs", type=int, default=40, help="number of 20-way one-shot runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="Omniglot folder (default $TFMETA_DATA_DIR)")
    p.add_argument("--export-dir", default="saved_models/omniglot_siamese")
    p.add_argument("--out-dir", default="recipe_outputs")
    p.add_argument("--runs-dir", default=None, help="where to write the runs (default runs/)")
    return p.parse_args(argv)


def training_augmentation(image_size: int = 28):
    """Koch et al.'s small affine distortions (`tfmeta.data.augment.RandomAffine`), the
    2-pixel shift of 28 x 28 images scaled with `image_size`."""
    from tfmeta.data.augment import RandomAffine

    return RandomAffine.for_image_size(image_size, rotation=8.6, scale=0.1, shear=8.6)


def training_dataset(train, args):
    """Pair batches or episodes over the training classes, with optional distortions
    (`tfmeta.data.augment.RandomAffine`: Koch et al.'s small affine distortions, seeded)."""
    from tfmeta.data import EpisodeSampler, PairSampler

    augment = None if args.no_augment else training_augmentation(args.image_size)
    if args.train_on == "pairs":
        return PairSampler(train.x, train.y, seed=args.seed).dataset(args.batch_size, augment=augment)
    groups = dict(enumerate(train.alphabets)) if args.within_alphabet else None
    sampler = EpisodeSampler(
        train.x, train.y, ways=args.ways, shots=1, queries=args.queries, seed=args.seed,
        class_groups=groups,
    )
    return sampler.dataset(meta_batch=1, augment=augment)


def plot_pairs(model, x, y, path, n=8, seed=0):
    """Plots `n` held-out pairs (half same, half different) titled with their similarity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfmeta.data import PairSampler

    (x1, x2), same = PairSampler(x, y, seed=seed).sample(n, seed=seed)
    sim = model.similarity(x1, x2)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6))
    for i in range(n):
        axes[0, i].imshow(1.0 - x1[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(1.0 - x2[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"{'same' if same[i] else 'diff'}\nsim={sim[i]:.2f}", fontsize=8)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle("Held-out Omniglot pairs: Siamese similarity")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def in_process_runs_accuracy(model, runs) -> float:
    correct = trials = 0
    for ep in runs:
        probs = model.predict_few_shot(ep.support_x, ep.support_y, ep.query_x)
        correct += int(np.sum(probs.argmax(-1) == ep.query_y))
        trials += len(ep.query_y)
    return correct / trials


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.quick:
        args.steps, args.minutes, args.runs = min(args.steps, 15), 0.5, 2
        args.filters = min(args.filters, 32)
        args.ways, args.queries = min(args.ways, 10), min(args.queries, 2)
        args.batch_size = min(args.batch_size, 32)
    t_start = time.time()

    import keras

    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(args.dtype_policy)
    try:
        return _run(args, t_start)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _run(args, t_start: float) -> dict:
    import keras

    import tfmeta
    from tfmeta.data.ink_box import normalize_images, with_ink_box_normalization
    from tfmeta.data.omniglot import DEFAULT_HELD_OUT_ALPHABETS, load_omniglot
    from tfmeta.data.oneshot_runs import load_oneshot_runs, make_oneshot_runs
    from tfmeta.fewshot.oneshot import evaluate_saved_model

    keras.utils.set_random_seed(args.seed)
    # With --ink-box the images are read at full resolution and size-normalised to --image-size
    # for training; the served model takes the raw images (RAW_SIZE) and normalises in the graph.
    raw_size = RAW_SIZE if args.ink_box else args.image_size
    data = load_omniglot(("small1", "small2"), image_size=raw_size, data_dir=args.data_dir)
    train, test = data.split_by_alphabet(held_out=DEFAULT_HELD_OUT_ALPHABETS)
    if args.ink_box:
        x = normalize_images(train.x, box_size=args.ink_box, output_size=args.image_size)
        train = dataclasses.replace(train, x=x)
    train_chars = train.num_classes
    train = train.with_rotations()
    if args.mirrors:
        train = train.with_mirrors()
    print(
        f"[{RECIPE}] train: {train_chars} characters x {8 if args.mirrors else 4} "
        f"{'symmetries' if args.mirrors else 'rotations'} = {train.num_classes} classes "
        f"({len(train.y)} images); held out: {sorted(set(test.alphabets))} "
        f"({test.num_classes} characters)",
        flush=True,
    )

    base_encoder = tfmeta.backbones.conv4((args.image_size,) * 2 + (1,), filters=args.filters)
    encoder = base_encoder
    if args.tta_shift:
        encoder = tfmeta.test_time_augmentation.with_test_time_shifts(base_encoder, max_shift=args.tta_shift)
    siamese_kwargs = dict(
        objective=args.objective,
        distance=args.distance,
        margin=args.margin,
        episode_loss=args.episode_loss if args.train_on == "episodes" else "pairs",
    )
    model = tfmeta.SiameseNetwork(encoder, **siamese_kwargs)
    model.compile(optimizer=keras.optimizers.Adam(args.lr))
    budget = tfmeta.callbacks.TimeBudget(
        args.minutes * 60.0, cosine_lr=args.lr if args.lr_schedule == "cosine" else None
    )
    steps_per_epoch = min(200, args.steps)
    epochs = max(1, math.ceil(args.steps / steps_per_epoch))
    t0 = time.time()
    history = model.fit(
        training_dataset(train, args),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        callbacks=[budget],
        verbose=2,
    )
    train_seconds = time.time() - t0
    # Saved before the scoring, so a failure after the (long) training loses nothing.
    os.makedirs(args.out_dir, exist_ok=True)
    weights_path = os.path.join(args.out_dir, f"{RECIPE}{'_quick' if args.quick else ''}.weights.h5")
    model.save_weights(weights_path)
    print(f"[{RECIPE}] trained weights saved to {weights_path}", flush=True)

    runs_dir = args.runs_dir or os.path.join("runs", f"omniglot_heldout_{args.runs}runs_seed{args.seed}")
    if not os.path.exists(os.path.join(runs_dir, "run01", "class_labels.txt")):
        make_oneshot_runs(
            runs_dir,
            alphabets=DEFAULT_HELD_OUT_ALPHABETS,
            n_runs=args.runs,
            ways=20,
            seed=args.seed,
            data_dir=args.data_dir,
        )
    def served(trained_encoder):
        """A Siamese network on raw images sharing the trained weights (and head)."""
        if args.ink_box:
            trained_encoder = with_ink_box_normalization(
                trained_encoder, (RAW_SIZE, RAW_SIZE, 1), box_size=args.ink_box
            )
        served_model = tfmeta.SiameseNetwork(trained_encoder, **siamese_kwargs)
        served_model.head = model.head
        return served_model

    serving_model = served(encoder) if args.ink_box else model
    runs = load_oneshot_runs(runs_dir, image_size=raw_size)
    keras_accuracy = in_process_runs_accuracy(serving_model, runs)
    plain_accuracy = keras_accuracy
    if args.tta_shift:
        # The same trained weights without test-time shifts, on the same runs.
        plain_accuracy = in_process_runs_accuracy(served(base_encoder), runs)
    views_accuracy = None
    if args.tta_views:
        # The same trained weights, embeddings averaged over distorted views, on the same runs.
        viewed = served(
            tfmeta.test_time_augmentation.with_test_time_augmentation(
                base_encoder, views=args.tta_views, augment=training_augmentation(args.image_size)
            )
        )
        views_accuracy = in_process_runs_accuracy(viewed, runs)

    export_path = serving_model.export(
        args.export_dir,
        metadata={
            "class_names": None,
            "held_out_alphabets": list(DEFAULT_HELD_OUT_ALPHABETS),
            "preprocessing": (
                f"in-graph ink bounding-box normalisation ({args.ink_box} px box in "
                f"{args.image_size} x {args.image_size}) "
                f"of raw {RAW_SIZE} x {RAW_SIZE} images, ink = 1"
                if args.ink_box
                else f"{args.image_size} x {args.image_size} images, ink = 1"
            ),
            "metrics": {"oneshot20_accuracy_keras": keras_accuracy},
        },
    )
    scored = evaluate_saved_model(export_path, runs_dir)
    plot_path = plot_pairs(serving_model, test.x, test.y, os.path.join(args.out_dir, f"{RECIPE}_pairs.png"))

    result = {
        "recipe": RECIPE,
        "quick": bool(args.quick),
        "objective": args.objective,
        "distance": args.distance,
        "train_on": args.train_on,
        "episode_loss": args.episode_loss if args.train_on == "episodes" else "pairs",
        "within_alphabet": bool(args.within_alphabet),
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "ways": args.ways,
        "filters": args.filters,
        "tta_shift": args.tta_shift,
        "ink_box": args.ink_box,
        "image_size": args.image_size,
        "mirrors": bool(args.mirrors),
        "dtype_policy": args.dtype_policy,
        "held_out_alphabets": list(DEFAULT_HELD_OUT_ALPHABETS),
        "train_classes": int(train.num_classes),
        "held_out_characters": int(test.num_classes),
        "train_steps": int(budget.steps),
        "train_seconds": round(train_seconds, 1),
        **{
            f"final_train_{k}": float(v[-1])
            for k, v in history.history.items()
            if k in ("pair_accuracy", "episode_accuracy")
        },
        "oneshot20_runs": len(runs),
        "oneshot20_trials": scored["trials"],
        "oneshot20_accuracy": scored["accuracy"],
        "oneshot20_error_rate": scored["error_rate"],
        "oneshot20_accuracy_keras_model": keras_accuracy,
        "oneshot20_accuracy_without_tta": plain_accuracy,
        "tta_views": args.tta_views,
        "oneshot20_accuracy_views": views_accuracy,
        "weights": weights_path,
        "runs_dir": runs_dir,
        "export": export_path,
        "plot": plot_path,
        "total_seconds": round(time.time() - t_start, 1),
    }
    if abs(scored["accuracy"] - keras_accuracy) > 1e-9:
        print(f"[{RECIPE}] WARNING: SavedModel and Keras accuracies differ", file=sys.stderr)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, f"{RECIPE}{'_quick' if args.quick else ''}.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2), flush=True)
    return result


if __name__ == "__main__":
    main()
