"""Real NAS on scikit-learn digits with `tfmeta.AutoModel`: cell search, deeper retraining, export.

Children (one normal cell per stage) train on 60% of the images and are scored on 20%; the best
cell is stacked `--final-cells` deep, retrained on both for `--final-epochs`, tested on the last
20% and exported. Prints JSON: the best architecture, the search's and the retraining's wall
time, the test accuracy. `--weight-sharing` runs ENAS instead: every child trains
`--child-steps` batches of one shared supernet instead of `--epochs` from scratch.

Usage:
    python benchmarks/nas_digits.py [--strategy controller] [--trials 10] [--epochs 3] [--final-epochs 30]
    python benchmarks/nas_digits.py --weight-sharing --trials 150 --child-steps 20 [--strategy random]
        [--train-paths uniform]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import time
from pathlib import Path

from tfmeta.data.digits import load_digits_splits
from tfmeta.nas.enas import TRAIN_PATHS
from tfmeta.nas.space import MicroCellSpace

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategy", default="controller", choices=["controller", "evolution", "random"])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--final-epochs", type=int, default=30)
    p.add_argument("--final-cells", type=int, default=2, help="normal cells per stage of the retrained model")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-sharing", action="store_true", help="ENAS: children share one supernet's weights")
    p.add_argument("--child-steps", type=int, default=20, help="shared-weight batches per child")
    p.add_argument("--train-paths", default="trial", choices=TRAIN_PATHS,
                   help="with --weight-sharing: train each trial's own child, or a uniformly random child per batch")
    p.add_argument("--export-dir", default=str(REPO / "saved_models" / "nas_digits"))
    p.add_argument("--runs-dir", default=str(REPO / "runs"), help="search directory")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    splits = load_digits_splits(test_size=0.2, seed=0, scaled=True, channel_axis=True)
    am = tfmeta.AutoModel(
        task="classification", space=MicroCellSpace(num_nodes=args.nodes), strategy=args.strategy,
        max_trials=args.trials, epochs=args.epochs, filters=16, learning_rate=3e-3, batch_size=64,
        weight_sharing=args.weight_sharing, child_steps=args.child_steps, train_paths=args.train_paths,
        refit_cells=args.final_cells, refit_filters=24, refit_epochs=args.final_epochs, ensemble=False,
        directory=args.runs_dir, project_name=f"nas_digits_{args.strategy}{'_enas' if args.weight_sharing else ''}",
        overwrite=True, seed=args.seed, verbose=1,
    )
    am.fit(*splits["train"], validation_split=0.25)  # the search scores children on 20% of all images
    in_order = sorted(am.leaderboard(), key=lambda t: int(t["trial"]))
    result = {
        "best_arch": am.best_architecture_, "best_val_accuracy": am.best_score_,
        "test_accuracy": am.score(*splits["test"]), "search_wall_time_s": am.search_time_,
        "retrain_wall_time_s": am.refit_time_, "trials": len(in_order),
        "trial_scores": [t["score"] for t in in_order], "final_params": int(am.model_.count_params()),
        "export_path": am.export(args.export_dir),
    }
    result["total_wall_time_s"] = time.perf_counter() - t0
    result["settings"] = vars(args)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
