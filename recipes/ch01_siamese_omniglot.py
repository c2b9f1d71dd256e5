"""Chapter 1: a Siamese network for one-shot Omniglot (Koch et al. 2015), held-out alphabets.

Data: the Omniglot background sets minus two held-out alphabets (Balinese and Korean, 64
characters never seen in training), rotations as extra classes, every drawing size-normalised
(`--ink-box 34 --image-size 40`: its ink bounding box, read from the 105 x 105 original, scaled
into a centred 34 x 34 square of the 40 x 40 input; a plain downsampling leaves wide, low
characters a few pixels tall).

Model: `tfmeta.SiameseNetwork` on conv4, contrastive objective, euclidean distance, trained on
40-way one-shot episodes with the N-pair softmax loss (each query's pair logits against every
class), small random affine distortions, the learning rate annealed over a time budget. At test
time each embedding is averaged over the image and its 1-pixel translations (`--tta-shift 1`).

Score: 20-way one-shot runs in Lake's format built from the held-out alphabets (each within one
alphabet), scored in process and through the export with `tfmeta.fewshot.oneshot.
evaluate_saved_model` (the code of `tfmeta oneshot-eval`), and, as the baseline training has to
beat, an untrained network of the same architecture on the same runs.

Export: `saved_models/omniglot_siamese/<version>/` (`serving_default`: pair similarity,
`few_shot`: class probabilities) takes raw 105 x 105 drawings and normalises them in its graph.
`<out-dir>` receives the trained weights (before scoring), a plot of held-out pairs with their
similarity and the JSON results.

The chapter's first example (`--embedding-2d`, a separate run that needs no Omniglot): a
Siamese network whose embedding has two units, trained with the contrastive loss on pairs of
handwritten digits (scikit-learn's 8 x 8 digits; `--embedding-data mnist` for MNIST through
tensorflow-datasets, which downloads it), so the embedding is the figure: the test digits in
the plane, one colour per class. A k-nearest-neighbour classifier in that plane (fitted on the
training digits' points) scores the test digits.

Usage:

    python recipes/ch01_siamese_omniglot.py                  # full run (25 minutes of training)
    python recipes/ch01_siamese_omniglot.py --embedding-2d   # the 2-D digits embedding, a minute
    python recipes/ch01_siamese_omniglot.py --quick          # smoke run, under a minute
    python recipes/ch01_siamese_omniglot.py --episode-loss pairs --objective koch --distance l1
    python recipes/ch01_siamese_omniglot.py --minutes 5 --tta-views 32 --runs 100
    python recipes/ch01_siamese_omniglot.py --dtype-policy mixed_bfloat16   # bfloat16 convs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.augment import RandomAffine
from tfmeta.data.ink_box import with_ink_box_normalization
from tfmeta.data.omniglot_splits import RAW_IMAGE_SIZE, load_omniglot_split
from tfmeta.data.oneshot_runs import load_oneshot_runs, make_oneshot_runs
from tfmeta.fewshot.evaluation import EpisodeList, score_episodes
from tfmeta.fewshot.oneshot import evaluate_saved_model
from tfmeta.test_time_augmentation import with_test_time_augmentation, with_test_time_shifts

RECIPE = "ch01_siamese_omniglot"
#: --quick: a short run on a smaller network whose higher learning rate makes the untrained
#: baseline fall behind within its 200 steps.
QUICK = dict(steps=200, minutes=1.0, runs=20, filters=32, ways=20, queries=2, batch_size=32, lr=3e-3)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--quick", action="store_true", help="smoke run (under a minute), for CI")
    add("--objective", default="contrastive", choices=["koch", "contrastive"])
    add("--distance", default="euclidean", choices=["l1", "euclidean", "cosine"])
    add("--margin", type=float, default=1.0, help="contrastive margin")
    add("--train-on", default="episodes", choices=["episodes", "pairs"],
        help="episodes (every query/support pair of an episode) or PairSampler batches")
    add("--episode-loss", default="softmax", choices=["pairs", "softmax"],
        help="pairs: the objective's loss per pair; softmax: N-pair loss over class logits")
    add("--batch-size", type=int, default=128, help="pairs per batch (--train-on pairs)")
    add("--ways", type=int, default=40, help="classes per training episode")
    add("--queries", type=int, default=5, help="queries per class per training episode")
    add("--within-alphabet", action="store_true", help="draw each episode from one alphabet")
    add("--filters", type=int, default=64, help="conv4 filters")
    add("--mirrors", action="store_true", help="mirror images as more training classes")
    add("--image-size", type=int, default=40, help="side of the encoder's square input")
    add("--ink-box", type=int, default=34,
        help="side of the square each drawing's ink box is scaled into (0: plain downsampling)")
    add("--tta-shift", type=int, default=1,
        help="average embeddings over translations of up to this many pixels (0: off)")
    add("--tta-views", type=int, default=0,
        help="also score embeddings averaged over N training distortions (reported, not exported)")
    add("--lr", type=float, default=1e-3)
    add("--lr-schedule", default="cosine", choices=["constant", "cosine"],
        help="cosine: anneal the learning rate to 0 over --minutes")
    add("--steps", type=int, default=20000, help="max training steps")
    add("--minutes", type=float, default=25.0, help="training time budget")
    add("--no-augment", action="store_true", help="no affine distortions in training")
    add("--dtype-policy", default="float32", help="Keras dtype policy, e.g. mixed_bfloat16")
    add("--runs", type=int, default=40, help="number of 20-way one-shot runs")
    add("--seed", type=int, default=0)
    add("--data-dir", default=None, help="folder holding omniglot/ (default $TFMETA_DATA_DIR)")
    add("--export-dir", default="saved_models/omniglot_siamese")
    add("--out-dir", default="recipe_outputs")
    add("--runs-dir", default=None, help="where the runs are (built when missing; default runs/)")
    add("--embedding-2d", action="store_true",
        help="run only the 2-D embedding of handwritten digits (no Omniglot)")
    add("--embedding-data", default="digits", choices=["digits", "mnist"],
        help="--embedding-2d data: scikit-learn's digits, or MNIST (tensorflow-datasets, downloads)")
    add("--embedding-steps", type=int, default=None,
        help="--embedding-2d training steps (default 1,500; 400 with --quick)")
    if p.parse_known_args(argv)[0].quick:  # the smoke run's defaults; flags given still win
        p.set_defaults(**QUICK)
    return p.parse_args(argv)


def training_augmentation(image_size: int) -> RandomAffine:
    """Koch et al.'s small affine distortions, the 2-pixel shift at 28 x 28 scaled to the size."""
    return RandomAffine.for_image_size(image_size, rotation=8.6, scale=0.1, shear=8.6)


def training_data(train, args):
    """Episodes (or pair batches) over the training classes, with the distortions."""
    augment = None if args.no_augment else training_augmentation(args.image_size)
    if args.train_on == "pairs":
        return PairSampler(train.x, train.y, seed=args.seed).dataset(args.batch_size, augment=augment)
    groups = dict(enumerate(train.alphabets)) if args.within_alphabet else None
    sampler = EpisodeSampler(train.x, train.y, ways=args.ways, shots=1, queries=args.queries,
                             seed=args.seed, class_groups=groups)
    return sampler.dataset(meta_batch=1, augment=augment)


def plot_pairs(model, x, y, path: Path, n: int = 8, seed: int = 0) -> str:
    """Plots `n` held-out pairs (half same, half different) titled with their similarity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (x1, x2), same = PairSampler(x, y, seed=seed).sample(n, seed=seed)
    similarity = model.similarity(x1, x2)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6))
    for i in range(n):
        axes[0, i].imshow(1.0 - x1[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(1.0 - x2[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"{'same' if same[i] else 'diff'}\nsim={similarity[i]:.2f}", fontsize=8)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle("Held-out Omniglot pairs: Siamese similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def load_embedding_data(name: str):
    """`(x_train, y_train), (x_test, y_test)`: images in [0, 1], int labels."""
    if name == "mnist":
        from tfmeta.data.mnist import load_mnist

        return load_mnist(("train", "test"))
    from tfmeta.data.digits import load_digits_splits

    splits = load_digits_splits(test_size=0.25, seed=0, scaled=True, channel_axis=True)
    return splits["train"], splits["test"]


def plot_plane(points, labels, path: Path, title: str) -> str:
    """The test digits' 2-D embeddings, one colour (and its digit as label) per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    colours = plt.get_cmap("tab10")
    for label in sorted(set(labels.tolist())):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=8, color=colours(label % 10), label=str(label))
    ax.legend(title="digit", markerscale=2, fontsize=8, loc="best")
    ax.set_xlabel("embedding unit 1")
    ax.set_ylabel("embedding unit 2")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def run_embedding_2d(args, start: float) -> dict:
    """A Siamese MLP with a 2-unit embedding, contrastive loss on digit pairs; kNN in the plane."""
    from sklearn.neighbors import KNeighborsClassifier

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_embedding_data(args.embedding_data)
    steps = args.embedding_steps or (400 if args.quick else 1500)
    encoder = tfmeta.backbones.mlp(x_train.shape[1:], hidden=(128, 64), outputs=2, name="embedding_2d")
    model = tfmeta.SiameseNetwork(encoder, objective="contrastive", distance="euclidean", margin=1.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    train_start = time.time()
    model.fit(PairSampler(x_train, y_train, seed=args.seed).dataset(128), steps_per_epoch=steps,
              epochs=1, verbose=2)
    train_seconds = time.time() - train_start
    train_points, test_points = model.embed(x_train), model.embed(x_test)
    knn = KNeighborsClassifier(n_neighbors=5).fit(train_points, y_train)
    accuracy = float(knn.score(test_points, y_test))
    tag = f"{RECIPE}_embedding_2d{'_quick' if args.quick else ''}"
    plot = plot_plane(test_points, y_test, out_dir / f"{tag}.png",
                      f"Test {args.embedding_data} in a 2-D Siamese embedding (5-NN accuracy {accuracy:.3f})")
    result = {
        "recipe": RECIPE, "section": "embedding_2d", "data": args.embedding_data,
        "train_examples": len(x_train), "test_examples": len(x_test), "embedding_units": 2,
        "train_steps": steps, "train_seconds": round(train_seconds, 1), "knn_neighbors": 5,
        "knn_accuracy_2d": accuracy, "plot": plot, "total_seconds": round(time.time() - start, 1),
    }
    (out_dir / f"{tag}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2), flush=True)
    return result


def main(argv=None) -> dict:
    args, start, previous_policy = parse_args(argv), time.time(), keras.config.dtype_policy()
    if args.embedding_2d:
        return run_embedding_2d(args, start)
    keras.config.set_dtype_policy(args.dtype_policy)
    try:
        return run(args, start)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def run(args, start: float) -> dict:
    tag = f"{RECIPE}{'_quick' if args.quick else ''}"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    # Data: the held-out-alphabet split, images at the encoder's size.
    split = load_omniglot_split(args.image_size, ink_box=args.ink_box, mirrors=args.mirrors,
                                test_protocols="characters", data_dir=args.data_dir)
    print(f"[{RECIPE}] {split.summary()}", flush=True)

    # Model: conv4 -> embeddings (averaged over shifts at test time) -> pair scores.
    def siamese(encoder, head=None):
        model = tfmeta.SiameseNetwork(
            encoder, objective=args.objective, distance=args.distance, margin=args.margin,
            episode_loss=args.episode_loss if args.train_on == "episodes" else "pairs")
        if head is not None:
            model.head = head  # the trained pair head (Koch's objective has one)
        return model

    def conv4():
        return tfmeta.backbones.conv4((args.image_size,) * 2 + (1,), filters=args.filters)

    def shifted(encoder):
        return with_test_time_shifts(encoder, max_shift=args.tta_shift) if args.tta_shift else encoder

    encoder = conv4()
    model = siamese(shifted(encoder))
    model.compile(optimizer=keras.optimizers.Adam(args.lr))

    # Train within the time budget; save the weights before anything can fail.
    budget = tfmeta.callbacks.TimeBudget(
        args.minutes * 60.0, cosine_lr=args.lr if args.lr_schedule == "cosine" else None)
    steps_per_epoch = min(200, args.steps)
    train_start = time.time()
    history = model.fit(training_data(split.train, args), steps_per_epoch=steps_per_epoch,
                        epochs=max(1, math.ceil(args.steps / steps_per_epoch)),
                        callbacks=[budget], verbose=2)
    train_seconds = time.time() - train_start
    weights_path = str(out_dir / f"{tag}.weights.h5")
    model.save_weights(weights_path)

    # Score on Lake-format runs of the held-out alphabets, with raw drawings as served.
    runs_dir = make_oneshot_runs(
        args.runs_dir or os.path.join("runs", f"omniglot_heldout_{args.runs}runs_seed{args.seed}"),
        alphabets=split.held_out_alphabets, n_runs=args.runs, ways=20, seed=args.seed,
        data_dir=args.data_dir, reuse=True)
    runs = EpisodeList(load_oneshot_runs(runs_dir, image_size=RAW_IMAGE_SIZE if args.ink_box else args.image_size))

    def served(encoder, head):
        """A Siamese network on raw drawings (size-normalised in its graph) over `encoder`."""
        if args.ink_box:
            encoder = with_ink_box_normalization(encoder, (RAW_IMAGE_SIZE,) * 2 + (1,), box_size=args.ink_box)
        return siamese(encoder, head)

    def runs_accuracy(encoder, head=model.head) -> float:
        return score_episodes(served(encoder, head), runs, episodes=len(runs))["accuracy"]

    serving_model = served(shifted(encoder), model.head)
    keras_accuracy = runs_accuracy(shifted(encoder))
    plain_accuracy = runs_accuracy(encoder) if args.tta_shift else keras_accuracy
    views_accuracy = None
    if args.tta_views:
        views = with_test_time_augmentation(encoder, views=args.tta_views,
                                            augment=training_augmentation(args.image_size))
        views_accuracy = runs_accuracy(views)

    # Export, then score the reloaded SavedModel on the same runs: it must agree.
    export_path = serving_model.export(args.export_dir, metadata={
        "class_names": None,
        "held_out_alphabets": list(split.held_out_alphabets),
        "preprocessing": f"{args.image_size} x {args.image_size} images, ink = 1" + (
            f", from raw {RAW_IMAGE_SIZE} x {RAW_IMAGE_SIZE} ones by in-graph ink bounding-box "
            f"normalisation into a {args.ink_box} px box" if args.ink_box else ""),
        "metrics": {"oneshot20_accuracy_keras": keras_accuracy},
    })
    scored = evaluate_saved_model(export_path, runs_dir)
    if abs(scored["accuracy"] - keras_accuracy) > 1e-6:
        print(f"[{RECIPE}] WARNING: SavedModel and Keras accuracies differ", file=sys.stderr)

    # The baseline: an untrained network of the same architecture, on the same runs.
    keras.utils.set_random_seed(args.seed)
    untrained_accuracy = runs_accuracy(shifted(conv4()), head=None)

    plot = plot_pairs(model, split.held_out.x, split.held_out.y, out_dir / f"{RECIPE}_pairs.png")
    result = {
        "recipe": RECIPE, **vars(args), "episode_loss": model.episode_loss,
        "held_out_alphabets": list(split.held_out_alphabets),
        "train_classes": split.train.num_classes, "held_out_characters": split.held_out.num_classes,
        "train_steps": int(budget.steps), "train_seconds": round(train_seconds, 1),
        **{f"final_train_{k}": float(v[-1]) for k, v in history.history.items()
           if k in ("pair_accuracy", "episode_accuracy")},
        "oneshot20_runs": len(runs), "oneshot20_trials": scored["trials"],
        "oneshot20_accuracy": scored["accuracy"], "oneshot20_error_rate": scored["error_rate"],
        "oneshot20_accuracy_keras_model": keras_accuracy,
        "oneshot20_accuracy_without_tta": plain_accuracy,
        "oneshot20_accuracy_views": views_accuracy,
        "oneshot20_accuracy_untrained": untrained_accuracy,
        "weights": weights_path, "runs_dir": runs_dir, "export": export_path, "plot": plot,
        "total_seconds": round(time.time() - start, 1),
    }
    (out_dir / f"{tag}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2), flush=True)
    return result


if __name__ == "__main__":
    main()
