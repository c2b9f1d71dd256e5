"""Chapter 2: MAML on the sinusoid regression tasks of the MAML paper (section 5.1).

Data: tasks `y = A sin(x - phase)`, A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]
(`tfmeta.data.sinusoid.SinusoidTasks`), K = 10 support points per task (`--shots`).

Model: a 1-40-40-1 ReLU network in `tfmeta.MAML`, one inner step with inner lr 0.01 during
meta-training, meta-batch 25, Adam 1e-3, trained with `fit` (TensorBoard logs in
`runs/ch02_maml_sinusoid`).

Score: the query MSE over 600 test tasks with a 95% confidence interval, after 0 (the
meta-learned initialisation as it is), 1 and 10 inner steps, and, as the baseline meta-learning
has to beat, a freshly initialised network of the same shape adapted with 10 steps on the same
tasks.

Plot: like the paper's figure 2, the ground truth, the K support points, the meta-initialisation's
prediction (pre-update) and the predictions after 1 and 10 steps of `maml.adapt(...)`, to
`recipe_outputs/ch02_maml_sinusoid.png`.

Usage:

    python recipes/ch02_maml_sinusoid.py                     # full run
    python recipes/ch02_maml_sinusoid.py --iterations 15000
    python recipes/ch02_maml_sinusoid.py --quick             # smoke run, under a minute
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tfmeta  # noqa: F401  (before keras: sets TensorFlow's environment defaults)

import keras
import numpy as np

from tfmeta.data.sinusoid import SinusoidTasks

#: The numbers of inner steps every test task is scored after.
EVAL_STEPS = (0, 1, 10)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run for CI (1,000 iterations, 50 tasks)")
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--meta-batch", type=int, default=25)
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--inner-lr", type=float, default=0.01)
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--order", type=int, default=2, choices=(1, 2))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--episodes", type=int, default=600, help="test tasks")
    p.add_argument("--out-dir", default="recipe_outputs")
    p.add_argument("--log-dir", default="runs/ch02_maml_sinusoid")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.episodes = 1000, 50
    return args


def plot(maml, task, path: Path, shots: int) -> None:
    """The paper's figure 2 for one test task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, task(grid), "r-", label="ground truth")
    ax.plot(grid, maml.call(grid).numpy(), "g:", label="pre-update")
    for steps, style in ((1, "c--"), (10, "b-.")):
        adapted = maml.adapt(task.support_x, task.support_y, steps=steps)
        ax.plot(grid, adapted.predict(grid, verbose=0), style, label=f"{steps} grad step{'s' * (steps > 1)}")
    ax.plot(task.support_x, task.support_y, "k^", label=f"{shots} points used for grad")
    ax.set_title(f"MAML, K={shots}")
    ax.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    # Data: training tasks, and test tasks with 100 query points each.
    train = SinusoidTasks(shots=args.shots, queries=args.shots, seed=args.seed)
    test = SinusoidTasks(shots=args.shots, queries=100, seed=args.seed + 1)

    # Model: the paper's network in MAML.
    def maml_on(net, eval_steps=args.inner_steps):
        return tfmeta.MAML(net, inner_lr=args.inner_lr, inner_steps=args.inner_steps,
                           order=args.order, eval_steps=eval_steps)

    def mlp():
        return tfmeta.backbones.mlp((1,), hidden=(40, 40), outputs=1)

    net = mlp()
    maml = maml_on(net)
    maml.compile(optimizer=keras.optimizers.Adam(args.lr))

    # Meta-train.
    steps_per_epoch = min(1000, args.iterations)
    callbacks = [] if args.quick else [keras.callbacks.TensorBoard(args.log_dir)]
    start = time.time()
    maml.fit(train.dataset(meta_batch=args.meta_batch), steps_per_epoch=steps_per_epoch,
             epochs=max(1, args.iterations // steps_per_epoch), callbacks=callbacks, verbose=2)
    train_seconds = time.time() - start

    # Score the same test tasks after 0, 1 and 10 inner steps, and an untrained network after 10.
    def score(net, steps, label):
        result = maml_on(net, eval_steps=steps).evaluate_tasks(test, episodes=args.episodes, seed=1234)
        print(f"K={args.shots}, {label}, {steps} inner step(s): query MSE {result['mse']:.3f} "
              f"+- {result['ci95']:.3f} over {result['episodes']} tasks", flush=True)
        return result

    scores = {steps: score(net, steps, "meta-trained") for steps in EVAL_STEPS}
    keras.utils.set_random_seed(args.seed)
    untrained = score(mlp(), 10, "untrained")

    figure = Path(args.out_dir) / "ch02_maml_sinusoid.png"
    plot(maml, test.sample(seed=3), figure, args.shots)
    out = {
        "shots": args.shots, "iterations": args.iterations, "train_seconds": train_seconds,
        **{f"{key}_{steps}_step{'s' * (steps != 1)}": scores[steps][key]
           for steps in EVAL_STEPS for key in ("mse", "ci95")},
        "mse_untrained_10_steps": untrained["mse"], "ci95_untrained_10_steps": untrained["ci95"],
        "episodes": scores[1]["episodes"], "figure": str(figure),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
