"""Chapter 4: prototypical, matching and relation networks vs. a Siamese network on Omniglot.

Data: the Omniglot background sets minus the held-out alphabets (Balinese and Korean), 28 x 28,
with rotations and mirror images as extra classes (1,424; `--no-mirrors` keeps the rotations
only), small random affine distortions in training.

Models: each learner on its own conv4, trained on episodes (Adam 1e-3, halved three times): the
prototypical network on 60-way episodes, the matching and relation networks on 20-way ones, the
Siamese network with the N-pair softmax on 40-way ones (`--siamese-loss pairs`: Koch's pairs).

Score: every learner on the same test episodes of the held-out alphabets, 5-way and 20-way,
1-shot and 5-shot, 600 per setting (`tfmeta.fewshot.grids.score_settings`), under each test
protocol (`characters`, each held-out character a class; `rotations`, with its rotations as more
classes, the protocol of the published figures), as a table per protocol. The prototypical
network is scored again with its embedding averaged over test-time views (`--tta-views 32`: the
image and 31 fixed training distortions), as one more row.

Export: that prototypical network with its views (they run in the graph) to
`saved_models/omniglot_protonet/<version>/`, reloaded with TensorFlow alone and checked against
the model on a held-out episode, then scored on Lake-format 20-way one-shot runs of the held-out
alphabets (the code of `tfmeta oneshot-eval`). A t-SNE plot of its embeddings of a few held-out
characters goes to `recipe_outputs/ch04_embeddings.png`, everything else to
`recipe_outputs/ch04_metric_learners.json`.

Usage:

    python recipes/ch04_metric_learners_omniglot.py            # full run (about an hour)
    python recipes/ch04_metric_learners_omniglot.py --quick    # smoke run, under a minute
    python recipes/ch04_metric_learners_omniglot.py --proto-steps 1600 --tta-views 1
    python recipes/ch04_metric_learners_omniglot.py --learners protonet,siamese --siamese-loss pairs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras
import numpy as np

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.augment import RandomAffine
from tfmeta.data.omniglot import TEST_PROTOCOLS, parse_test_protocols
from tfmeta.data.omniglot_splits import load_omniglot_split
from tfmeta.data.oneshot_runs import make_oneshot_runs
from tfmeta.export import few_shot_function, load_few_shot_signature
from tfmeta.fewshot.evaluation import format_grid
from tfmeta.fewshot.grids import score_settings
from tfmeta.fewshot.oneshot import evaluate_saved_model
from tfmeta.test_time_augmentation import with_test_time_augmentation

LEARNERS = ("protonet", "matching", "relation", "siamese")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--quick", action="store_true", help="smoke run for CI (under a minute)")
    add("--data-dir", default=None, help="folder holding omniglot/ (default $TFMETA_DATA_DIR)")
    add("--episodes", type=int, default=600, help="test episodes per setting")
    add("--proto-ways", type=int, default=60, help="training ways of the protonet")
    add("--proto-steps", type=int, default=5000, help="training steps of the protonet")
    add("--tta-views", type=int, default=32,
        help="also score (and export) the protonet averaged over V views; 1 = off")
    add("--other-steps", type=int, default=3000, help="training steps of matching and relation")
    add("--siamese-steps", type=int, default=3000, help="training steps of the Siamese network")
    add("--siamese-loss", default="softmax", choices=("softmax", "pairs"),
        help="softmax: N-pair loss on 40-way episodes (ch01's); pairs: Koch's L1 + sigmoid pairs")
    add("--relation-loss", default="mse", choices=("mse", "cross_entropy"))
    add("--mirrors", action=argparse.BooleanOptionalAction, default=True,
        help="mirror images as more training classes (--no-mirrors: rotations only)")
    add("--image-size", type=int, default=28, help="image side (conv4 blocks and shifts follow)")
    add("--augment", default="affine", choices=("affine", "none"), help="training distortions")
    add("--learners", default=",".join(LEARNERS), help="comma list of " + ", ".join(LEARNERS))
    add("--test-protocols", default=",".join(TEST_PROTOCOLS), help="comma list of characters, rotations")
    add("--export-dir", default="saved_models/omniglot_protonet")
    add("--out-dir", default="recipe_outputs")
    add("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.tta_views < 1:
        p.error(f"--tta-views must be >= 1; received {args.tta_views}")
    if args.image_size < 8:
        p.error(f"--image-size must be >= 8; received {args.image_size}")
    args.learners = [n.strip() for n in args.learners.split(",") if n.strip()]
    if set(args.learners) - set(LEARNERS):
        p.error(f"--learners must name some of {list(LEARNERS)}; received {args.learners}")
    try:
        args.test_protocols = parse_test_protocols(args.test_protocols)
    except ValueError as err:
        p.error(f"--test-protocols: {err}")
    if args.quick:
        args.tta_views, args.episodes = min(args.tta_views, 2), min(args.episodes, 10)
        args.proto_ways, args.proto_steps, args.other_steps, args.siamese_steps = 20, 4, 3, 3
        if args.export_dir == p.get_default("export_dir"):
            args.export_dir += "_quick"
    return args


def fit(model, data, steps: int, args, label: str) -> float:
    """Trains with Adam 1e-3 halved every `steps / 4` steps; returns the seconds it took."""
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(
        1e-3, decay_steps=max(1, steps // 4), decay_rate=0.5, staircase=True)))
    per_epoch, start = min(100, steps), time.time()
    history = model.fit(data, steps_per_epoch=per_epoch, epochs=max(1, steps // per_epoch),
                        verbose=0 if args.quick else 2)
    seconds = time.time() - start
    accuracy = {k: v[-1] for k, v in history.history.items() if "accuracy" in k}
    print(f"[{label}] {steps} steps in {seconds:.0f}s, final training {accuracy}", flush=True)
    return seconds


def train_learner(name: str, train, args):
    """Builds and trains learner `name`; returns `(model, description, training seconds)`."""
    keras.utils.set_random_seed(args.seed)
    shape = tuple(train.x.shape[1:])
    encoder = tfmeta.backbones.conv4(shape, filters=16 if args.quick else 64,
                                     blocks=tfmeta.backbones.conv4_blocks(shape[0]))
    augment = RandomAffine.for_image_size(args.image_size) if args.augment == "affine" else None

    def episodes(ways):
        return EpisodeSampler(train.x, train.y, ways, 1, 5, seed=args.seed).dataset(augment=augment)

    if name == "protonet":
        model = tfmeta.PrototypicalNetwork(encoder)
        return model, f"Prototypical ({args.proto_ways}-way 1-shot train)", fit(
            model, episodes(args.proto_ways), args.proto_steps, args, name)
    if name == "matching":
        model = tfmeta.MatchingNetwork(encoder)
        return model, "Matching (cosine, 20-way 1-shot train)", fit(model, episodes(20), args.other_steps, args, name)
    if name == "relation":
        model = tfmeta.RelationNetwork(encoder, loss=args.relation_loss)
        return model, f"Relation ({args.relation_loss}, 20-way 1-shot train)", fit(
            model, episodes(20), args.other_steps, args, name)
    if args.siamese_loss == "softmax":
        model = tfmeta.SiameseNetwork(encoder, input_shape=shape, objective="contrastive", episode_loss="softmax")
        data, desc = episodes(min(40, train.num_classes)), "Siamese (N-pair softmax, 40-way train)"
    else:
        model = tfmeta.SiameseNetwork(encoder, input_shape=shape, objective="koch")
        data, desc = PairSampler(train.x, train.y, seed=args.seed).dataset(128, augment=augment), "Siamese (Koch, pairs)"
    return model, desc, fit(model, data, args.siamese_steps, args, name)


def plot_embeddings(model, test, path: Path, quick: bool, characters: int = 8) -> str:
    """t-SNE (PCA in --quick mode) of the embeddings of a few held-out characters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    chosen = np.random.default_rng(0).choice(test.num_classes, size=min(characters, test.num_classes), replace=False)
    mask = np.isin(test.y, chosen)
    x, y = test.x[mask], test.y[mask]
    embeddings = model.encoder.predict(x, verbose=0, batch_size=256).reshape(len(x), -1)
    method = "PCA" if quick else "t-SNE"
    reducer = PCA(n_components=2) if quick else TSNE(n_components=2, perplexity=15, init="pca", random_state=0)
    xy = reducer.fit_transform(embeddings)
    fig, ax = plt.subplots(figsize=(6, 6))
    for c in chosen:
        ax.scatter(xy[y == c, 0], xy[y == c, 1], s=18, label=test.class_names[c])
    ax.set_title(f"Prototypical network embeddings of held-out characters ({method})")
    ax.legend(fontsize=7, loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def export_and_check(model, split, args, metrics: dict) -> dict:
    """Exports the protonet, reloads it with TensorFlow alone, scores it on Lake-format runs."""
    path = model.export(args.export_dir, metadata={"class_names": None, "metrics": metrics, "training": {
        "ways": args.proto_ways, "shots": 1, "steps": args.proto_steps, "test_time_views": args.tta_views,
        "image_size": args.image_size, "data": "omniglot small1+small2 minus " + "+".join(split.held_out_alphabets)
        + ", with rotations" + (" and mirrors" if args.mirrors else "")}})
    episode = EpisodeSampler(split.held_out.x, split.held_out.y, ways=20, shots=1, queries=5, seed=7).sample()
    loaded, signature, _ = load_few_shot_signature(path)
    served = few_shot_function(signature)(episode.support_x, episode.support_y, episode.query_x)
    diff = float(np.max(np.abs(served.numpy() - model.predict_few_shot(*episode[:3]))))
    print(f"exported {path}; reloaded few_shot max |diff| = {diff:.2e}", flush=True)
    if diff > 1e-5:
        raise RuntimeError(f"SavedModel outputs differ from the model's by {diff}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = make_oneshot_runs(Path(tmp) / "runs", split.held_out_alphabets, n_runs=4 if args.quick else 20,
                                 ways=20, seed=0, data_dir=args.data_dir)
        scored = evaluate_saved_model(path, runs)
    print(f"oneshot-eval on 20-way one-shot runs of the held-out alphabets: "
          f"{100 * scored['accuracy']:.2f}% over {scored['trials']} trials", flush=True)
    return {"path": path, "max_abs_diff": diff,
            "oneshot_eval": {k: scored[k] for k in ("accuracy", "error_rate", "trials", "runs")}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.time()
    keras.utils.set_random_seed(args.seed)
    # Data: the held-out-alphabet split (in --quick mode every eighth training class).
    split = load_omniglot_split(args.image_size, mirrors=args.mirrors, test_protocols=args.test_protocols,
                                data_dir=args.data_dir)
    if args.quick:
        split = dataclasses.replace(split, train=split.train.select_classes(range(0, split.train.num_classes, 8)))
    print(split.summary(), flush=True)

    # Train, score and (the protonet) export one learner at a time: a long run that is stopped
    # early leaves its finished rows behind.
    out_dir, learners = Path(args.out_dir), {}
    summary = {"args": vars(args), "learners": learners}

    def score(name, model, description, seconds):
        learners[name] = {"description": description, "train_seconds": round(seconds, 1),
                          "scores": score_settings(model, split.test_arrays(), episodes=args.episodes,
                                                   label=f"[{name}] ")}
        return learners[name]["scores"]

    for name in args.learners:
        model, description, seconds = train_learner(name, split.train, args)
        exported = score(name, model, description, seconds)
        if name != "protonet":
            continue
        summary["plot"] = plot_embeddings(model, split.held_out, out_dir / "ch04_embeddings.png", args.quick)
        if args.tta_views > 1:  # the same encoder, its embedding averaged over fixed views
            model = tfmeta.PrototypicalNetwork(with_test_time_augmentation(
                model.encoder, views=args.tta_views, augment=RandomAffine.for_image_size(args.image_size)))
            exported = score("protonet_views", model, f"  same, {args.tta_views} test-time views", seconds)
        summary["export"] = export_and_check(model, split, args, exported)

    summary["tables"] = {}
    for protocol in args.test_protocols:
        summary["tables"][protocol] = table = (
            f"Omniglot, held-out alphabets {', '.join(split.held_out_alphabets)}, test protocol {protocol!r}; "
            f"{args.episodes} test episodes per setting, accuracy % +- 95% CI\n"
            + format_grid({row["description"]: row["scores"][protocol] for row in learners.values()}))
        print(table, flush=True)
    summary["seconds"] = round(time.time() - start, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"ch04_metric_learners{'_quick' if args.quick else ''}.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"total {summary['seconds']}s; results in {path}")
    return summary


if __name__ == "__main__":
    main()
