"""Trains a prototypical network on Omniglot's held-out-alphabet protocol and reports accuracy.

Trains on the shared background sets minus the held-out alphabets (rotations as extra
classes), then scores 5-way and 20-way, 1-shot and 5-shot episodes on the held-out alphabets
with 95% confidence intervals.

    python benchmarks/protonet_omniglot.py --ways 60 --shots 1 --steps 1500
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402

import tfmeta  # noqa: E402
from tfmeta.data import EpisodeSampler  # noqa: E402
from tfmeta.data.augment import RandomAffine  # noqa: E402
from tfmeta.data.omniglot import DEFAULT_HELD_OUT_ALPHABETS, load_omniglot  # noqa: E402


class EpisodeProbe(keras.callbacks.Callback):
    """Prints held-out few-shot accuracy every `every` epochs."""

    def __init__(self, x, y, every=1, episodes=100):
        super().__init__()
        self.x, self.y, self.every, self.episodes = x, y, every, episodes

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        parts = []
        for ways in (5, 20):
            r = self.model.evaluate_episodes(
                self.x, self.y, ways=ways, shots=1, queries=5, episodes=self.episodes, seed=99
            )
            parts.append(f"{ways}w1s={r['accuracy']:.4f}")
        print(f"  epoch {epoch + 1}: " + " ".join(parts), flush=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=60)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decay-every", type=int, default=500, help="halve lr every N steps")
    parser.add_argument("--episodes", type=int, default=600, help="test episodes per setting")
    parser.add_argument("--probe-every", type=int, default=5, help="epochs between probes")
    parser.add_argument("--distance", default="euclidean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", default=None, help="export base dir")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--augment", default="affine", choices=("affine", "none"))
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    data = load_omniglot(("small1", "small2"), data_dir=args.data_dir)
    train, test = data.split_by_alphabet(DEFAULT_HELD_OUT_ALPHABETS)
    train = train.with_rotations()
    print(f"train classes {train.num_classes} (with rotations), test classes {test.num_classes}")

    model = tfmeta.PrototypicalNetwork(input_shape=train.x.shape[1:], distance=args.distance)
    lr = keras.optimizers.schedules.ExponentialDecay(
        args.lr, decay_steps=args.decay_every, decay_rate=0.5, staircase=True
    )
    model.compile(optimizer=keras.optimizers.Adam(lr))
    ds = EpisodeSampler(
        train.x, train.y, args.ways, args.shots, args.queries, seed=args.seed
    ).dataset(augment=RandomAffine() if args.augment == "affine" else None)
    start = time.time()
    model.fit(
        ds,
        steps_per_epoch=args.steps_per_epoch,
        epochs=max(1, args.steps // args.steps_per_epoch),
        verbose=2,
        callbacks=[EpisodeProbe(test.x, test.y, every=args.probe_every)],
    )
    train_s = time.time() - start
    results = {"train_seconds": round(train_s, 1), "args": vars(args)}
    for ways in (5, 20):
        for shots in (1, 5):
            r = model.evaluate_episodes(
                test.x, test.y, ways=ways, shots=shots, queries=15 if ways == 5 else 5,
                episodes=args.episodes, seed=1234,
            )
            results[f"{ways}way{shots}shot"] = r
            print(f"{ways}-way {shots}-shot: {100 * r['accuracy']:.2f} +- {100 * r['ci95']:.2f}%",
                  flush=True)
    if args.export:
        results["export"] = model.export(args.export, metadata={"metrics": results})
    print(json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
