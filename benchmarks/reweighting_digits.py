"""Learned example weights (Ren et al. 2018) on scikit-learn's digits: noisy labels and imbalance.

Two corrupted training sets: 40% symmetric label noise, and a 10:1 class imbalance (classes
5-9 keep a tenth of their examples). A clean, balanced validation set of 10 examples per class
is set aside first. Three ways to train the same MLP for the same number of epochs, scored by
accuracy on the clean, balanced test set:

- `plain`: the corrupted set, every example weighted alike;
- `clean_only`: the 100 clean examples alone;
- `reweighted`: `tfmeta.ReweightedModel` on the corrupted set, weighted by the clean set's
  meta-gradient.

Prints JSON: per setting and method, the mean and each seed's test accuracy.

Usage:
    python benchmarks/reweighting_digits.py [--seeds 3] [--epochs 40]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import time

import keras
import numpy as np

from tfmeta.data.digits import load_digits_splits
from tfmeta.data.label_noise import clean_subset, imbalanced_indices, symmetric_label_noise
from tfmeta.reweighting import ReweightedModel

SETTINGS = ("noise40", "imbalance10")
METHODS = ("plain", "clean_only", "reweighted")


def mlp(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(10)])


def corrupted_digits(setting: str, seed: int, per_class: int = 10) -> dict:
    """`{"train": (x, y), "clean": (x, y), "test": (x, y), "flipped": mask}`: the corrupted training
    set, the clean validation set (`per_class` per class, set aside first), the test set, and
    which training labels the noise changed."""
    splits = load_digits_splits(test_size=0.3, seed=seed, scaled=True)
    x, y = splits["train"]
    x = x.reshape(len(x), -1)
    clean, rest = clean_subset(y, per_class, seed=seed)
    xr, yr = x[rest], y[rest]
    flipped = np.zeros(len(yr), bool)
    if setting == "noise40":
        yr, flipped = symmetric_label_noise(yr, 0.4, seed=seed, num_classes=10)
    elif setting == "imbalance10":
        keep = imbalanced_indices(yr, minority=(5, 6, 7, 8, 9), ratio=10, seed=seed)
        xr, yr, flipped = xr[keep], yr[keep], flipped[keep]
    else:
        raise ValueError(f"`setting` must be one of {SETTINGS}; received {setting!r}.")
    xt, yt = splits["test"]
    return {"train": (xr, yr), "clean": (x[clean], y[clean]), "test": (xt.reshape(len(xt), -1), yt),
            "flipped": flipped}


def train(method: str, data: dict, seed: int, epochs: int, batch_size: int = 64) -> keras.Model:
    """The MLP trained by `method`; the clean-only run takes as many optimizer steps as the others."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(0.02, momentum=0.9)
    (x, y), (xc, yc) = data["train"], data["clean"]
    if method == "reweighted":
        model = ReweightedModel(mlp(seed), xc, yc, from_logits=True)
        model.compile(optimizer=optimizer)
    else:
        model = mlp(seed)
        model.compile(optimizer=optimizer, loss=loss)
    if method == "clean_only":
        repeats = max(1, len(x) // len(xc))
        x, y = np.tile(xc, (repeats, 1)), np.tile(yc, repeats)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    return model


def accuracy(model: keras.Model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=512), -1) == y))


def compare(setting: str, seeds: int = 3, epochs: int = 40, methods=METHODS) -> dict:
    """`{method: {"mean": ..., "runs": [...]}}` test accuracies over `seeds` seeds."""
    runs = {m: [] for m in methods}
    for seed in range(seeds):
        data = corrupted_digits(setting, seed)
        for method in methods:
            runs[method].append(accuracy(train(method, data, seed, epochs), *data["test"]))
    return {m: {"mean": float(np.mean(v)), "runs": v} for m, v in runs.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40)
    args = p.parse_args(argv)
    start = time.time()
    result = {"command": "python benchmarks/reweighting_digits.py " + " ".join(argv or []),
              "seeds": args.seeds, "epochs": args.epochs}
    for setting in SETTINGS:
        result[setting] = compare(setting, args.seeds, args.epochs)
    result["seconds"] = round(time.time() - start, 1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
