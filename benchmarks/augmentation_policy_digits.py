"""Learned augmentation on scikit-learn's digits: a searched policy against fixed choices.

The policy search (`tfmeta.augmentation_search.PolicySearch`, regularised evolution by default)
scores `--trials` policies by a small child network's validation accuracy after
`--child-epochs` epochs on the first `--child-examples` images of the training split (averaged
over `--reward-seeds` children per policy). Then a larger network (twice the
filters) trains `--epochs` epochs on the whole training split (validation split included) with
each augmentation, and is scored on the test split, for `--seeds` seeds:

- `none`: no augmentation;
- `hand_set`: tfmeta's hand-set distortions, `tfmeta.data.augment.RandomAffine` sized for 8 x 8
  images (what the Omniglot recipes use, scaled);
- `rand_augment`: Keras's `keras.layers.RandAugment` (value range [0, 1]);
- `searched`: the found policy.

Prints JSON: the found policy, the search's trials, and per augmentation the mean and each
seed's test accuracy.

Usage:
    python benchmarks/augmentation_policy_digits.py [--trials 12] [--child-epochs 8] [--epochs 30] [--seeds 3]
        [--child-examples 600] [--reward-seeds 1]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import tempfile
import time

import keras
import numpy as np

from tfmeta.augmentation_search import PolicySearch, small_convnet
from tfmeta.data.augment import RandomAffine, as_augmentation
from tfmeta.data.digits import load_digits_splits

AUGMENTATIONS = ("none", "hand_set", "rand_augment", "searched")


class SeededAugmentation(keras.layers.Layer):
    """Applies an `augment(images, seed)` function (tfmeta.data.augment) while training."""

    def __init__(self, augment, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.augment = augment
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        return self.augment(inputs, self.seed_generator.next()) if training else inputs


def augmentation_layer(name: str, policy_config: dict | None, seed: int):
    if name == "none":
        return None
    if name == "hand_set":
        return SeededAugmentation(as_augmentation(RandomAffine.for_image_size(8)), seed=seed)
    if name == "rand_augment":
        return keras.layers.RandAugment(value_range=(0, 1), seed=seed)
    from tfmeta.augmentation_search import AugmentationPolicy

    return AugmentationPolicy.from_config({**policy_config, "seed": seed})


def digits(seed: int = 0) -> dict:
    return load_digits_splits(test_size=0.2, validation_size=0.2, seed=seed, scaled=True, channel_axis=True)


def search_policy(splits: dict, trials: int, child_epochs: int, strategy: str, seed: int,
                  child_examples: int = 600, reward_seeds: int = 1) -> PolicySearch:
    x, y = splits["train"]
    search = PolicySearch(lambda policy: small_convnet(policy, (8, 8, 1), 10), strategy=strategy,
                          max_trials=trials, seed=seed, directory=tempfile.mkdtemp(), project_name="policy",
                          reward_seeds=reward_seeds)
    return search.fit(x[:child_examples], y[:child_examples], validation_data=splits["validation"],
                      epochs=child_epochs, batch_size=32)


def final_accuracy(splits: dict, augmentation, epochs: int, seed: int) -> float:
    """The larger network trained on train + validation with `augmentation`, tested."""
    keras.utils.set_random_seed(seed)
    x = np.concatenate([splits["train"][0], splits["validation"][0]])
    y = np.concatenate([splits["train"][1], splits["validation"][1]])
    model = small_convnet(augmentation, (8, 8, 1), 10, filters=32)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    xt, yt = splits["test"]
    return float(np.mean(np.argmax(model.predict(xt, verbose=0), -1) == yt))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--child-epochs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--strategy", default="evolution", choices=["controller", "evolution", "random"])
    p.add_argument("--child-examples", type=int, default=600, help="training images of each search child")
    p.add_argument("--reward-seeds", type=int, default=1, help="children per policy, their scores averaged")
    args = p.parse_args(argv)
    start = time.time()
    splits = digits(0)
    search = search_policy(splits, args.trials, args.child_epochs, args.strategy, seed=0,
                           child_examples=args.child_examples, reward_seeds=args.reward_seeds)
    policy = search.best_policy()
    search_seconds = time.time() - start
    result = {"command": "python benchmarks/augmentation_policy_digits.py " + " ".join(argv or []),
              "found_policy": policy.describe(), "search_trials": search.results(),
              "search_seconds": round(search_seconds, 1)}
    for name in AUGMENTATIONS:
        runs = [final_accuracy(splits, augmentation_layer(name, policy.get_config(), seed), args.epochs, seed)
                for seed in range(args.seeds)]
        result[name] = {"mean": float(np.mean(runs)), "runs": runs}
    result["seconds"] = round(time.time() - start, 1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
