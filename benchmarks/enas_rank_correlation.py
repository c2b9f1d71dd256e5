"""Does the ENAS supernet rank children as training them alone would? (digits)

Weight sharing is only worth its speed if the shared-weight score orders architectures as
stand-alone training does (Sciuto et al. 2020 and Yu et al. 2020 found it often does not).
This benchmark measures that order on scikit-learn's digits:

1. `--sample` distinct architectures drawn uniformly from the micro cell space (seeded) are
   trained from scratch as a search without sharing trains its children (one normal cell per
   stage, Adam 3e-3), for `--epochs` epochs, once per seed in `--standalone-seeds`: the
   reference order.
2. For each mode in `--train-paths`, a random search with weight sharing
   (`WeightSharingSearch(strategy="random")`, Li & Talwalkar's baseline) trains a supernet over
   `--trials` children of `--child-steps` batches each; then the final shared weights score
   the sample (`score_children`, batch norm re-estimated per child) and every searched child.
3. Prints JSON: Kendall's tau and Spearman's rho between each supernet's scores and the mean
   stand-alone accuracy; the same between the stand-alone seeds, averaged over seed pairs, and
   with four or more seeds between the means of the two halves of the seeds (the noise
   ceiling: how well stand-alone runs order the sample against each other); the stand-alone accuracy of each
   supernet's pick against the sample's best; per supernet, the agreement between the
   searched children's trial rewards and their final shared scores (low: the shared weights
   forgot children trained earlier); wall times.

Usage:
    python benchmarks/enas_rank_correlation.py [--trials 60] [--child-steps 20] [--sample 12] [--epochs 10]
        [--train-paths trial,uniform]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
import warnings

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)
import keras
import numpy as np
from scipy import stats

from tfmeta.data.digits import load_digits_splits
from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.enas import WeightSharingSearch
from tfmeta.nas.space import DEFAULT_CELL_OPS, Architecture, MicroCellSpace


def distinct_sample(space: MicroCellSpace, k: int, seed: int) -> list[Architecture]:
    """`k` distinct architectures drawn uniformly from `space`."""
    rng = np.random.default_rng(seed)
    archs = {}
    for _ in range(100 * k):
        arch = space.sample(rng)
        archs.setdefault(str(arch), arch)
        if len(archs) == k:
            return list(archs.values())
    raise ValueError(f"`--sample` asks for {k} distinct children; the space gave {len(archs)}.")


def train_alone(space, arch, input_shape, splits, epochs: int, filters: int, seed: int) -> float:
    """Validation accuracy of `arch` trained from scratch as a search without sharing trains a
    child: one normal cell per stage, Adam 3e-3, sparse cross-entropy."""
    (x_tr, y_tr), (x_va, y_va) = splits["train"], splits["validation"]
    keras.utils.set_random_seed(seed)
    model = build_cell_model(space, arch, input_shape, 10, num_cells=1, filters=filters)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        model.fit(x_tr, y_tr, epochs=epochs, batch_size=64, verbose=0)
    return float(model.evaluate(x_va, y_va, batch_size=256, verbose=0, return_dict=True)["accuracy"])


def rank_agreement(a, b) -> dict:
    return {"kendall_tau": float(stats.kendalltau(a, b).statistic),
            "spearman_rho": float(stats.spearmanr(a, b).statistic)}


def seed_agreement(alone: np.ndarray) -> dict | None:
    """How well stand-alone runs order the children against each other: the mean agreement of
    every pair of seeds, and of the mean of the first half of the seeds against the second."""
    n = alone.shape[1]
    if n < 2:
        return None
    pairs = [rank_agreement(alone[:, i], alone[:, j]) for i, j in itertools.combinations(range(n), 2)]
    result = {"pairs_mean": {k: float(np.mean([p[k] for p in pairs])) for k in pairs[0]}}
    if n >= 4:
        result["half_vs_half"] = rank_agreement(alone[:, : n // 2].mean(axis=1), alone[:, n // 2:].mean(axis=1))
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=60, help="children of each weight-sharing search")
    p.add_argument("--child-steps", type=int, default=20, help="shared-weight batches per child")
    p.add_argument("--train-paths", default="trial,uniform", help="comma-separated WeightSharingSearch train_paths modes")
    p.add_argument("--sample", type=int, default=12, help="children trained from scratch")
    p.add_argument("--epochs", type=int, default=10, help="stand-alone training epochs per child")
    p.add_argument("--standalone-seeds", default="0,1", help="comma-separated seeds of the stand-alone runs")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--directory", default=None, help="project folder (default: a temporary one)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.standalone_seeds.split(",")]
    modes = args.train_paths.split(",")
    if args.sample < 3:
        p.error(f"--sample must be at least 3 to measure a rank order; received {args.sample}.")

    # Stratified 60/20/20 train/validation/test split, images [N, 8, 8, 1] in [0, 1].
    splits = load_digits_splits(test_size=0.2, validation_size=0.2, seed=0, scaled=True, channel_axis=True)
    (x_tr, y_tr), (x_va, y_va) = splits["train"], splits["validation"]
    input_shape = x_tr.shape[1:]
    space = MicroCellSpace(num_nodes=args.nodes, ops=tuple(DEFAULT_CELL_OPS))
    directory = args.directory or tempfile.mkdtemp(prefix="enas_rank_")
    archs = distinct_sample(space, args.sample, args.seed + 1)

    t0 = time.perf_counter()
    alone = np.array([[train_alone(space, a, input_shape, splits, args.epochs, args.filters, s) for s in seeds]
                      for a in archs])
    alone_time = time.perf_counter() - t0
    alone_mean = alone.mean(axis=1)
    result = {
        "sample": [{"arch": str(a), "standalone": [float(v) for v in row]} for a, row in zip(archs, alone)],
        "standalone_seed_vs_seed": seed_agreement(alone),
        "standalone_best": float(alone_mean.max()),
        "standalone_median": float(np.median(alone_mean)),
        "standalone_s_per_run": alone_time / alone.size,
        "supernets": {},
        "settings": vars(args),
    }
    for mode in modes:
        t0 = time.perf_counter()
        search = WeightSharingSearch(space, input_shape, 10, strategy="random", child_steps=args.child_steps,
                                     train_paths=mode, filters=args.filters, max_trials=args.trials,
                                     directory=directory, project_name=f"enas_rank_{mode}", overwrite=True,
                                     seed=args.seed)
        search.search(x_tr, y_tr, validation_data=(x_va, y_va), verbose=0)
        search_time = time.perf_counter() - t0
        shared = search.score_children(archs, (x_va, y_va))
        records = search.completed()
        searched = search.score_children([Architecture.from_config(r["architecture"]) for r in records], (x_va, y_va))
        rewards = [r["score"] for r in records]
        result["supernets"][mode] = {
            "shared_scores": shared,
            "shared_vs_standalone": rank_agreement(shared, alone_mean),
            "standalone_of_pick": float(alone_mean[int(np.argmax(shared))]),
            "searched_reward_vs_final_shared": rank_agreement(rewards, searched),
            "searched_reward_mean": float(np.mean(rewards)),
            "searched_final_shared_mean": float(np.mean(searched)),
            "search_wall_time_s": search_time,
        }
        print(json.dumps({mode: result["supernets"][mode]}), flush=True, file=sys.stderr)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
