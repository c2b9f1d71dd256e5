"""Chapter 9: a learned optimizer (Andrychowicz et al. 2016) against SGD, RMSprop and Adam.

The paper's experiments, on the problems that ship with the install:

- Quadratics: f(theta) = ||W theta - y||^2, 10-dimensional, W and y Gaussian. The rule is
  meta-trained on random quadratics and tested on other random quadratics.
- MLPs on digits: a one-hidden-layer MLP (20 sigmoid units) trained by cross-entropy on
  minibatches of 128 of scikit-learn's digits. The rule is meta-trained on MLPs from random
  initialisations and tested on fresh ones, and, as the paper's generalisation test, on MLPs
  with ReLU units or with 40 hidden units, which it never saw.

Meta-training: `tfmeta.learned_optimizer.meta_train`, the shared two-layer LSTM (20 units) on
preprocessed gradients, truncated back-propagation (20-step unrolls, 100-step horizon), Adam.

Baselines: SGD, RMSprop and Adam, each with the learning rate of a small grid that gives the
lowest loss after the horizon on training problems of the same family (other draws than the
test ones), so each baseline is tuned for the held-out architecture while the learned optimizer
is not.

Reported for each held-out family: the mean loss (on the whole training split for the MLPs)
over the test problems after the horizon and after each of `--report-steps`, for the learned
optimizer and each baseline, and the step from which tuned Adam stays ahead, if it does
within the curves.
`<out-dir>` receives the curves' plot, the results JSON and the learned optimizers (JSON files
that `tfmeta.LearnedOptimizer.load` reads).

Usage:

    python recipes/ch09_learned_optimizer.py                 # full run
    python recipes/ch09_learned_optimizer.py --quick         # smoke run, for CI
    python recipes/ch09_learned_optimizer.py --json          # one JSON line on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras
import numpy as np

from tfmeta.learned_optimizer import (
    CoordinatewiseLSTM, DigitsMLPFamily, LearnedOptimizer, QuadraticFamily, best_learning_rate,
    mean_curve, meta_train,
)

RECIPE = "ch09_learned_optimizer"
BASELINES = {"sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
QUICK = dict(quadratic_meta_steps=150, mlp_meta_steps=50, test_problems=2, tune_problems=1,
             report_steps=[100, 200], lr_grid=[0.01, 0.1, 1.0], mlp_held_out=["relu_20"])
#: Seeds of the test and tuning problems: far from the meta-training draws (0, 1, 2, ...).
TEST_SEED, TUNE_SEED = 10**6, 2 * 10**6


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--quick", action="store_true", help="smoke run, for CI")
    add("--json", action="store_true", help="print the results as one JSON line on stdout")
    add("--quadratic-meta-steps", type=int, default=1000, help="rule updates on quadratics")
    add("--mlp-meta-steps", type=int, default=2000, help="rule updates on digits MLPs")
    add("--unroll", type=int, default=20, help="optimisation steps per truncation")
    add("--horizon", type=int, default=100, help="optimisation steps per meta-training problem")
    add("--meta-lr", type=float, default=3e-3, help="Adam's learning rate on the rule")
    add("--test-problems", type=int, default=5, help="held-out problems per family")
    add("--tune-problems", type=int, default=3, help="problems per learning rate of the grid")
    add("--lr-grid", type=float, nargs="+", default=[1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
    add("--report-steps", type=int, nargs="+", default=[100, 200, 500],
        help="steps at which losses are reported (the last is the curves' length)")
    add("--mlp-held-out", nargs="+", default=["sigmoid_20", "relu_20", "sigmoid_40"],
        help="held-out MLPs as <activation>_<width>")
    add("--seed", type=int, default=0)
    add("--out-dir", default="recipe_outputs")
    if p.parse_known_args(argv)[0].quick:  # the smoke run's defaults; flags given still win
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    if args.horizon not in args.report_steps:
        args.report_steps = sorted({args.horizon, *args.report_steps})
    return args


def log(args, message: str) -> None:
    print(f"[{RECIPE}] {message}", file=sys.stderr if args.json else sys.stdout, flush=True)


def trained_rule(args, family, meta_steps: int, out_dir: Path) -> tuple[CoordinatewiseLSTM, dict]:
    """Meta-trains a fresh rule on `family`; saves it as a LearnedOptimizer JSON file."""
    keras.utils.set_random_seed(args.seed)
    rule = CoordinatewiseLSTM()
    start = time.time()
    history = meta_train(rule, family, steps=meta_steps, unroll=args.unroll, horizon=args.horizon,
                         learning_rate=args.meta_lr, seed=args.seed, verbose=0 if args.json else 1)
    seconds = time.time() - start
    per_trajectory = args.horizon // args.unroll
    losses = history["meta_loss"]
    path = LearnedOptimizer(rule).save(out_dir / f"{RECIPE}_{family.name}.json")
    return rule, {"meta_steps": meta_steps, "meta_train_seconds": round(seconds, 1), "saved": path,
                  "first_trajectory_mean_loss": float(np.mean(losses[:per_trajectory])),
                  "last_trajectory_mean_loss": float(np.mean(losses[-per_trajectory:]))}


def compare(args, rule, family) -> dict:
    """Curves of the learned optimizer and the tuned baselines on held-out problems of `family`."""
    steps = max(args.report_steps)
    tune = [family.sample(TUNE_SEED + i) for i in range(args.tune_problems)]
    test = [family.sample(TEST_SEED + i) for i in range(args.test_problems)]
    curves, learning_rates = {"learned": mean_curve(lambda: LearnedOptimizer(rule), family, test, steps)}, {}
    for name, optimizer_class in BASELINES.items():
        lr, _ = best_learning_rate(optimizer_class, family, tune, args.horizon, grid=args.lr_grid)
        learning_rates[name] = lr
        curves[name] = mean_curve(lambda: optimizer_class(learning_rate=lr), family, test, steps)
    ahead = curves["learned"] < curves["adam"]
    ahead_past_horizon = np.flatnonzero(ahead[args.horizon:])
    if not len(ahead_past_horizon):
        adam_ahead_from = args.horizon
    elif ahead_past_horizon[-1] == steps - args.horizon:
        adam_ahead_from = None
    else:
        adam_ahead_from = int(args.horizon + ahead_past_horizon[-1] + 1)
    return {
        "family": family.name, "test_problems": len(test), "learning_rates": learning_rates,
        "initial_loss": float(curves["learned"][0]),
        "final_loss": {k: float(c[args.horizon]) for k, c in curves.items()},
        "loss_at": {str(t): {k: float(c[t]) for k, c in curves.items()} for t in args.report_steps},
        "learned_ahead_of_adam_at": {str(t): bool(ahead[t]) for t in args.report_steps},
        # From this step on tuned Adam's loss stays at or below the learned optimizer's (None:
        # the learned optimizer is still ahead at the curves' end).
        "adam_ahead_from": adam_ahead_from,
        "curves": {k: c.tolist() for k, c in curves.items()},
    }


def plot(results: dict, horizon: int, path: Path) -> str:
    """One panel per held-out family: mean loss against steps, log scale, the horizon marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items()):
        for optimizer, curve in result["curves"].items():
            ax.plot(curve, label=f"{optimizer}" + (f" (lr {result['learning_rates'][optimizer]:g})"
                                                   if optimizer in result["learning_rates"] else ""),
                    linewidth=2.0 if optimizer == "learned" else 1.2)
        ax.axvline(horizon, color="gray", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("loss")
    fig.suptitle("Learned optimizer against tuned SGD, RMSprop and Adam on held-out problems")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def main(argv=None) -> dict:
    args, start = parse_args(argv), time.time()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    held_out, meta_training = {}, {}

    quadratics = QuadraticFamily()
    rule, meta_training["quadratic"] = trained_rule(args, quadratics, args.quadratic_meta_steps, out_dir)
    log(args, f"meta-trained on quadratics: {meta_training['quadratic']}")
    held_out["quadratic"] = compare(args, rule, quadratics)

    mlps = DigitsMLPFamily()
    rule, meta_training["digits_mlp"] = trained_rule(args, mlps, args.mlp_meta_steps, out_dir)
    log(args, f"meta-trained on digits MLPs: {meta_training['digits_mlp']}")
    for spec in args.mlp_held_out:
        activation, width = spec.rsplit("_", 1)
        family = DigitsMLPFamily(hidden_units=int(width), activation=activation)
        held_out[family.name] = compare(args, rule, family)
        log(args, f"{family.name}: loss after {args.horizon} steps {held_out[family.name]['final_loss']}")

    tag = f"{RECIPE}{'_quick' if args.quick else ''}"
    result = {
        "recipe": RECIPE, **{k: v for k, v in vars(args).items() if k != "json"},
        "trained_on": {"quadratic": quadratics.name, "digits_mlp": mlps.name},
        "meta_training": meta_training,
        "held_out": {k: {kk: vv for kk, vv in v.items() if kk != "curves"} for k, v in held_out.items()},
        "plot": plot(held_out, args.horizon, out_dir / f"{tag}.png"),
        "total_seconds": round(time.time() - start, 1),
    }
    (out_dir / f"{tag}.json").write_text(json.dumps({**result, "curves": {
        k: v["curves"] for k, v in held_out.items()}}, indent=2))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2), flush=True)
    return result


if __name__ == "__main__":
    main()
