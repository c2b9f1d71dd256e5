"""Real NAS on scikit-learn digits: controller search, deeper retraining, SavedModel export.

Prints JSON: best architecture, the search's wall time, the retrained model's test accuracy.
`--weight-sharing` runs ENAS instead: every child trains `--child-steps` batches of one shared
supernet (`tfmeta.nas.enas.WeightSharingSearch`) instead of `--epochs` from scratch.

Usage:
    python benchmarks/nas_digits.py [--strategy controller] [--trials 10] [--epochs 3] [--final-epochs 30]
    python benchmarks/nas_digits.py --weight-sharing --trials 150 --child-steps 20 [--strategy random]
        [--train-paths uniform]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tfmeta.nas.digits import search_digits  # noqa: E402
from tfmeta.nas.enas import TRAIN_PATHS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategy", default="controller", choices=["controller", "evolution", "random"])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--final-epochs", type=int, default=30)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-sharing", action="store_true", help="ENAS: children share one supernet's weights")
    p.add_argument("--child-steps", type=int, default=20, help="shared-weight batches per child")
    p.add_argument("--train-paths", default="trial", choices=TRAIN_PATHS,
                   help="with --weight-sharing: train each trial's own child, or a uniformly random child per batch")
    p.add_argument("--export-dir", default=str(REPO / "saved_models" / "nas_digits"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result = search_digits(args.strategy, max_trials=args.trials, epochs=args.epochs, final_epochs=args.final_epochs,
                           num_nodes=args.nodes, directory=str(REPO / "runs"), project_name=f"nas_digits_{args.strategy}{'_enas' if args.weight_sharing else ''}",
                           overwrite=True, seed=args.seed, export_dir=args.export_dir,
                           weight_sharing=args.weight_sharing, child_steps=args.child_steps,
                           train_paths=args.train_paths)
    result["total_wall_time_s"] = time.perf_counter() - t0
    result["settings"] = vars(args)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
