"""The `tfmeta` command line: quickstart, oneshot-eval, ensemble, search, serve, check-export.

Run `tfmeta --help` or `tfmeta COMMAND --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tfmeta.serving.cli import add_serve_arguments


def _quickstart(args) -> int:
    from tfmeta.quickstart import run_quickstart

    result = run_quickstart(
        output=args.output, max_trials=args.max_trials, epochs=args.epochs, seed=args.seed,
        directory=args.directory,
    )
    print(json.dumps(result, indent=2) if args.json else
          f"quickstart: test accuracy of the reloaded SavedModel {result['test_accuracy']:.4f} "
          f"({result['export_path']}, {result['wall_time_s']:.0f} s)")
    return 0


def _oneshot_eval(args) -> int:
    from tfmeta.fewshot.oneshot import evaluate_saved_model

    result = evaluate_saved_model(args.model, args.runs)
    if args.json:
        print(json.dumps({k: result[k] for k in ("error_rate", "accuracy", "trials")}))
    else:
        print(f"{result['runs']} runs, {result['trials']} trials: accuracy {result['accuracy']:.4f}, "
              f"error rate {result['error_rate']:.4f} ({result['model']})")
    return 0


def _ensemble(args) -> int:
    from tfmeta.fewshot.ensemble import FewShotEnsemble

    ensemble = FewShotEnsemble(args.models, weights=args.weights, temperatures=args.temperatures)
    path = ensemble.export(args.output)
    if args.json:
        print(json.dumps({"export": path, "members": ensemble.member_paths, "weights": ensemble.weights,
                          "temperatures": ensemble.temperatures}))
    else:
        print(f"ensemble of {len(ensemble.member_paths)} few_shot models exported to {path}")
    return 0


def _search(args) -> int:
    if args.space == "layerwise":  # no table for this space: children train on digits
        from tfmeta.nas.digits_search import run_digits_search
        from tfmeta.nas.space import LayerwiseSpace

        result = run_digits_search(LayerwiseSpace(num_layers=args.layers), args.strategy, args.budget,
                                   seed=args.seed, epochs=args.epochs)
        result["best_accuracy"] = result["best_val_accuracy"]
    elif args.data is None:
        raise SystemExit("tfmeta search: `--data` (nas-bench-macro_cifar10.json) is required with `--space macro`.")
    else:
        from tfmeta.nas.benchmarks import run_tabular_search

        result = run_tabular_search(
            benchmark=args.benchmark, data=args.data, strategy=args.strategy, budget=args.budget,
            seed=args.seed,
        )
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.strategy}: best {result['best_arch']} accuracy {result['best_accuracy']} "
              f"after {len(result['trajectory'])} queries")
    return 0


def _serve(args) -> int:
    from tfmeta.serving.cli import serve

    return serve(args)


def _check_export(args) -> int:
    from dataclasses import asdict

    from tfmeta.xla_check import check_export, format_report

    checks = check_export(args.model)
    print(json.dumps([asdict(c) for c in checks]) if args.json else format_report(checks))
    return 0 if all(check.ok for check in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfmeta", description="Meta-learning and AutoML for Keras.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quickstart", help="Search, train and export a model on scikit-learn's digits.")
    p.add_argument("--output", default="saved_models/quickstart", help="Export base directory.")
    p.add_argument("--directory", default="runs", help="Search directory.")
    p.add_argument("--max-trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_quickstart)

    p = sub.add_parser("oneshot-eval", help="Score a few_shot SavedModel on Lake's one-shot runs.")
    p.add_argument("--model", required=True, help="SavedModel version dir, or a base dir (newest version).")
    p.add_argument("--runs", required=True, help="Folder or zip of runNN/ one-shot runs.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_oneshot_eval)

    p = sub.add_parser(
        "ensemble", help="Join few_shot SavedModels into one that averages their probabilities."
    )
    p.add_argument("models", nargs="+", help="Member SavedModels (version dirs or base dirs: newest).")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="One weight per member.")
    p.add_argument(
        "--temperatures", type=float, nargs="+", default=None,
        help="One temperature per member: softmax(log(p) / T) before the vote (default 1).",
    )
    p.add_argument("--output", required=True, help="Export base directory of the ensemble.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_ensemble)

    p = sub.add_parser("search", help="Run a NAS strategy against a tabular benchmark, or on digits.")
    p.add_argument("--space", default="macro", choices=["macro", "layerwise"],
                   help="macro: the tabular benchmark (--data); layerwise: Zoph & Le's space, children "
                        "trained on scikit-learn's digits (--budget trials, --epochs each).")
    p.add_argument("--benchmark", default="nasbench-macro", choices=["nasbench-macro"])
    p.add_argument("--data", default=None, help="Path of nas-bench-macro_cifar10.json (or its folder).")
    p.add_argument("--layers", type=int, default=4, help="layerwise: convolutional layers")
    p.add_argument("--epochs", type=int, default=3, help="layerwise: training epochs of every child")
    p.add_argument("--strategy", default="controller",
                   choices=["controller", "evolution", "random", "predictor", "pnas", "tpe"])
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_search)

    p = sub.add_parser("serve", help="Serve exports with TF Serving's REST and gRPC APIs.")
    add_serve_arguments(p)
    p.set_defaults(fn=_serve)

    p = sub.add_parser("check-export", help="Compile every signature of a SavedModel with XLA (the TPU check); "
                                            "exit status 1 if one fails.")
    p.add_argument("model", help="SavedModel version dir, or a base dir (newest version).")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=_check_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tfmeta` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
