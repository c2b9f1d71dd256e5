"""Search small, transfer deep: cells searched on digits, transferred to Omniglot characters.

1. Search: the controller RNN (`--search controller`, or `darts`) searches the 3-node ENAS cell
   space on scikit-learn's 8x8 digits for `--search-time` seconds (children: one cell per
   stage, 16 filters), as `benchmarks/nas_darts_digits.py` does.
2. Transfer: Omniglot character classification, every character of the two background sets
   (`images_background_small1/2`, 242 characters) a class, 28x28 images, `--train-drawings` of
   each character's 20 drawings for training and the rest for testing. Three networks train
   for the same `--epochs` with the same optimizer and schedule
   (`tfmeta.nas.transfer.fit_classifier`: Adam, cosine-decayed learning rate) and the same
   batch norm momentum (`--bn-momentum`, set on every network: Keras's default 0.99 lets
   conv4's moving statistics lag far behind its weights over a few hundred steps):
   the searched cell stacked `--cells` deep per stage with `--filters` filters
   (`tfmeta.nas.transfer.transfer`), a random cell of the same space stacked the same way,
   and conv4 (Vinyals et al. 2016's four conv blocks, 64 filters) with a softmax classifier.
   This repeats for each of `--seeds` seeds (the drawing split, the initialisation and the
   random cell change with the seed; the searched cell is searched once, with the first seed).

Prints JSON: the searched architecture, per network its mean test accuracy and training time
over the seeds, parameters, and under `runs` each seed's test accuracy, final training
accuracy (training mode) and training time.

Usage:
    python benchmarks/nas_transfer_omniglot.py [--search-time 120] [--epochs 30] [--seeds 2] [--cells 2] [--filters 8]
    python benchmarks/nas_transfer_omniglot.py --arch '<an architecture's JSON>'   # no search
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from tfmeta.backbones import conv4
from tfmeta.data.digits import load_digits_splits
from tfmeta.data.omniglot import load_omniglot
from tfmeta.nas.space import Architecture, MicroCellSpace
from tfmeta.nas.transfer import fit_classifier, transfer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nas_darts_digits  # noqa: E402  (beside this script, in benchmarks/)


def character_split(train_drawings: int, seed: int, data_dir=None):
    """`(x_train, y_train), (x_test, y_test)`: per character, `train_drawings` random drawings vs the rest."""
    data = load_omniglot(("small1", "small2"), image_size=28, data_dir=data_dir)
    rng = np.random.default_rng(seed)
    train = np.zeros(len(data.y), bool)
    for c in range(data.num_classes):
        members = np.flatnonzero(data.y == c)
        train[rng.choice(members, size=train_drawings, replace=False)] = True
    return (data.x[train], data.y[train]), (data.x[~train], data.y[~train]), data.num_classes


def scored(model, history, test, start: float, seed: int, arch=None) -> dict:
    """One trained network's record: test accuracy, last-epoch training accuracy, size, time."""
    record = {"seed": seed, "train_time_s": time.perf_counter() - start, "params": int(model.count_params()),
              "final_train_accuracy": float(history.history["accuracy"][-1]),
              "test_accuracy": float(model.evaluate(*test, verbose=0, return_dict=True)["accuracy"])}
    return record if arch is None else {"arch": str(arch), **record}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--search", default="controller", choices=["controller", "darts"])
    p.add_argument("--search-time", type=float, default=120.0, help="controller search budget (s)")
    p.add_argument("--arch", default=None, help="transfer this architecture (its JSON) instead of searching")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of every Omniglot network")
    p.add_argument("--cells", type=int, default=2, help="normal cells per stage of the transferred networks")
    p.add_argument("--filters", type=int, default=8, help="first-stage filters of the transferred networks")
    p.add_argument("--train-drawings", type=int, default=15, help="of each character's 20 drawings")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--bn-momentum", type=float, default=0.9, help="batch norm momentum of every network")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=2, help="repetitions (seed, seed + 1, ...)")
    p.add_argument("--data-dir", default=None, help="default: $TFMETA_DATA_DIR")
    search_args = nas_darts_digits.parser().parse_args([])  # the digits search settings
    args = p.parse_args(argv)
    search_args.seed = args.seed
    t0 = time.perf_counter()
    space = MicroCellSpace(num_nodes=3)
    digits = load_digits_splits(test_size=0.2, validation_size=0.2, seed=0, scaled=True, channel_axis=True)
    if args.arch:
        found = {"search_wall_time_s": 0.0, "arch": space.validate(Architecture.from_json(args.arch)), "given": True}
    elif args.search == "darts":
        found = nas_darts_digits.darts_search(space, digits, search_args)
        found = {k: found[k] for k in ("search_wall_time_s", "arch", "op_mix")}
    else:
        found = nas_darts_digits.controller_search(space, digits, args.search_time, search_args)
    searched = found["arch"]
    print(json.dumps({"searched_arch_json": searched.to_json()}), file=sys.stderr, flush=True)  # progress
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
              "batch_norm_momentum": args.bn_momentum}
    runs = {"searched_cell": [], "random_cell": [], "conv4": []}
    for seed in range(args.seed, args.seed + args.seeds):
        train, test, classes = character_split(args.train_drawings, seed, args.data_dir)
        random_cell = space.sample(np.random.default_rng(seed))
        for name, arch in (("searched_cell", searched), ("random_cell", random_cell)):
            start = time.perf_counter()
            model, history = transfer(arch, train, cells=args.cells, filters=args.filters, space=space,
                                      num_classes=classes, seed=seed, **common)
            runs[name].append(scored(model, history, test, start, seed, arch))
            print(json.dumps({name: runs[name][-1]}), file=sys.stderr, flush=True)
        start = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([conv4((28, 28, 1)), keras.layers.Dense(classes, activation="softmax")],
                                 name="conv4_classifier")
        history = fit_classifier(model, train, **common)
        runs["conv4"].append(scored(model, history, test, start, seed))
        print(json.dumps({"conv4": runs["conv4"][-1]}), file=sys.stderr, flush=True)
    results = {name: {"test_accuracy": float(np.mean([r["test_accuracy"] for r in rs])),  # mean over seeds
                      "train_time_s": float(np.mean([r["train_time_s"] for r in rs])),
                      "params": rs[0]["params"], "runs": rs} for name, rs in runs.items()}
    found["arch"], found["arch_json"] = str(searched), searched.to_json()
    result = {"search_on_digits": found, "omniglot": {"classes": classes, "train_images": len(train[1]),
                                                      "test_images": len(test[1]), **results},
              "total_wall_time_s": time.perf_counter() - t0, "settings": vars(args)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
