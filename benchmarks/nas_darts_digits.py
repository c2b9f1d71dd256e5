"""DARTS on scikit-learn digits against the controller's best child found in the same wall time.

Both searches use the same 3-node ENAS cell space and the same 60/20/20 split: DARTS trains its
mixed-operation supernet on the 60% (weights) and the 20% validation split (architecture),
then derives the discrete cell (at most `--max-skips` identity edges in the normal cell);
the controller RNN (`tfmeta.nas.ArchitectureSearch`) trains one child per trial (one cell
per stage, `--child-epochs` epochs) and scores it on the validation split, for as long as
DARTS took (its wall time, tracing included, is the controller's `max_time`). Each search's
cell is then retrained the same way (`tfmeta.nas.transfer.transfer`: `--final-cells` cells per
stage, `--final-filters` filters, `--final-epochs` epochs on the training and validation
splits, for each of `--retrain-seeds`) and tested on the last 20%.

Prints JSON: the search wall times, the derived architectures and their operation mixes
(with and without the skip cap), the test accuracies (mean and per seed).

Usage:
    python benchmarks/nas_darts_digits.py [--darts-epochs 10] [--second-order] [--final-epochs 20]
        [--arch-learning-rate 3e-4] [--no-controller]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import shutil
import tempfile
import time
import warnings

import keras
import numpy as np

from tfmeta.data.digits import load_digits_splits
from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.darts import DartsNetwork, operation_mix, paired_batches
from tfmeta.nas.search import ArchitectureSearch
from tfmeta.nas.space import MicroCellSpace
from tfmeta.nas.transfer import transfer


def darts_search(space, splits, args) -> dict:
    """Runs DARTS; returns the derived architectures (raw and skip-capped), mixes, wall time."""
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x, y), (xv, yv) = splits["train"], splits["validation"]
    net = DartsNetwork(space, x.shape[1:], 10, filters=args.darts_filters, num_reductions=1,
                       second_order=args.second_order, arch_learning_rate=args.arch_learning_rate)
    net.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(
        0.025, args.darts_epochs * (len(x) // args.batch_size)), momentum=0.9), jit_compile=False)
    history = net.fit(paired_batches(x, y, xv, yv, batch_size=args.batch_size, seed=args.seed),
                      epochs=args.darts_epochs, steps_per_epoch=len(x) // args.batch_size, verbose=0)
    seconds = time.perf_counter() - start
    raw, capped = net.derive(), net.derive(max_skips=args.max_skips)
    weights = net.architecture_weights()
    return {
        "search_wall_time_s": seconds, "arch": capped, "arch_uncapped": raw,
        "op_mix": operation_mix(space, capped), "op_mix_uncapped": operation_mix(space, raw),
        "mean_op_weight": {kind: dict(zip(net.candidate_ops, np.round(w.mean(axis=0), 4).tolist()))
                           for kind, w in weights.items()},
        "final_arch_accuracy": history.history["arch_accuracy"][-1],
    }


def controller_search(space, splits, max_time: float, args, strategy: str = "controller") -> dict:
    """Trains children (one cell per stage) until `max_time`; returns the best and the count."""
    (x, y), (xv, yv) = splits["train"], splits["validation"]
    shape = x.shape[1:]

    def child(arch):
        model = build_cell_model(space, arch, shape, 10, num_cells=1, filters=args.child_filters, num_reductions=1)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], jit_compile=False)
        return model

    directory = tempfile.mkdtemp(prefix="nas_darts_digits_")
    start = time.perf_counter()
    try:
        search = ArchitectureSearch(space, build_model=child, strategy=strategy, max_trials=10_000,
                                    max_time=max_time, directory=directory, project_name=strategy,
                                    overwrite=True, seed=args.seed)
        with warnings.catch_warnings():  # cells that ignore an input leave weights without gradients
            warnings.filterwarnings("ignore", message="Gradients do not exist")
            search.search(x, y, validation_data=(xv, yv), epochs=args.child_epochs, batch_size=args.batch_size,
                          verbose=0)
        return {"search_wall_time_s": time.perf_counter() - start, "arch": search.best_architecture(),
                "best_val_accuracy": search.best_score(), "trials": len(search.completed())}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def retrain(space, arch, splits, args) -> dict:
    """The architecture stacked `--final-cells` deep, trained on train+validation, tested."""
    x = np.concatenate([splits["train"][0], splits["validation"][0]])
    y = np.concatenate([splits["train"][1], splits["validation"][1]])
    accuracies = []
    for seed in range(args.retrain_seeds):
        model, _ = transfer(arch, (x, y), cells=args.final_cells, filters=args.final_filters,
                            epochs=args.final_epochs, space=space, batch_size=args.batch_size, seed=seed)
        accuracies.append(float(model.evaluate(*splits["test"], verbose=0, return_dict=True)["accuracy"]))
    return {"test_accuracy": float(np.mean(accuracies)), "test_accuracies": accuracies,
            "params": int(model.count_params())}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--darts-epochs", type=int, default=10)
    p.add_argument("--darts-filters", type=int, default=8)
    p.add_argument("--second-order", action="store_true")
    p.add_argument("--arch-learning-rate", type=float, default=3e-4, help="Adam's, for the alphas (paper: 3e-4)")
    p.add_argument("--no-controller", action="store_true", help="DARTS alone (no controller search)")
    p.add_argument("--max-skips", type=int, default=2, help="identity edges kept in the derived normal cell")
    p.add_argument("--child-epochs", type=int, default=3)
    p.add_argument("--child-filters", type=int, default=16)
    p.add_argument("--final-cells", type=int, default=2)
    p.add_argument("--final-filters", type=int, default=24)
    p.add_argument("--final-epochs", type=int, default=20)
    p.add_argument("--retrain-seeds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> dict:
    args = parser().parse_args(argv)
    t0 = time.perf_counter()
    splits = load_digits_splits(test_size=0.2, validation_size=0.2, seed=0, scaled=True, channel_axis=True)
    space = MicroCellSpace(num_nodes=args.nodes)
    darts = darts_search(space, splits, args)
    result = {"darts": darts}
    if not args.no_controller:
        result["controller"] = controller_search(space, splits, darts["search_wall_time_s"], args)
    for entry in result.values():
        entry.update(retrain(space, entry["arch"], splits, args))
    if darts["arch_uncapped"] != darts["arch"]:
        result["darts_uncapped"] = retrain(space, darts["arch_uncapped"], splits, args)
    for entry in list(result.values()):
        for key in ("arch", "arch_uncapped"):
            if key in entry:
                entry[key + "_json"] = entry[key].to_json()  # `nas_transfer_omniglot.py --arch` reads it
                entry[key] = str(entry[key])
    result["total_wall_time_s"] = time.perf_counter() - t0
    result["settings"] = vars(args)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
