"""Chapter 2: MAML on the sinusoid regression tasks of the MAML paper (section 5.1).

Tasks `y = A sin(x - phase)`, A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5]; a 1-40-40-1 ReLU
network; K = 10 support points (`--shots`), one inner step with inner lr 0.01 during
meta-training, meta-batch 25, Adam 1e-3. The recipe

- meta-trains `tfmeta.MAML` with `fit` (TensorBoard logs in `runs/ch02_maml_sinusoid`),
- reports the post-adaptation query MSE over 600 test tasks with a 95% confidence interval,
  after 1 and after 10 inner steps,
- plots, like the paper's figure 2, the ground truth, the K support points, the
  meta-initialisation's prediction (pre-update) and the predictions after 1 and 10 steps of
  `maml.adapt(...)` to `recipe_outputs/ch02_maml_sinusoid.png`.

Usage:

    python recipes/ch02_maml_sinusoid.py              # full run
    python recipes/ch02_maml_sinusoid.py --quick      # smoke test (< 60 s)
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfmeta  # noqa: E402
from tfmeta.data.sinusoid import SinusoidTasks  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke run for CI (< 60 s)")
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--meta-batch", type=int, default=25)
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--inner-lr", type=float, default=0.01)
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--order", type=int, default=2, choices=(1, 2))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--out-dir", default="recipe_outputs")
    p.add_argument("--log-dir", default="runs/ch02_maml_sinusoid")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.episodes = 200, 50
    return args


def plot(maml, task, path: Path, shots: int) -> None:
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
    net = tfmeta.backbones.mlp((1,), hidden=(40, 40), outputs=1)
    maml = tfmeta.MAML(net, inner_lr=args.inner_lr, inner_steps=args.inner_steps, order=args.order)
    maml.compile(optimizer=keras.optimizers.Adam(args.lr))
    train = SinusoidTasks(shots=args.shots, queries=args.shots, seed=args.seed)
    test = SinusoidTasks(shots=args.shots, queries=100, seed=args.seed + 1)
    steps_per_epoch = min(1000, args.iterations)
    callbacks = [] if args.quick else [keras.callbacks.TensorBoard(args.log_dir)]
    t0 = time.time()
    maml.fit(train.dataset(meta_batch=args.meta_batch), steps_per_epoch=steps_per_epoch,
             epochs=max(1, args.iterations // steps_per_epoch), callbacks=callbacks, verbose=2)
    train_s = time.time() - t0
    results = {}
    for steps in (1, 10):
        maml.eval_steps = steps
        maml.__dict__.pop("_eval_batch_fn", None)
        results[steps] = maml.evaluate_tasks(test, episodes=args.episodes, seed=1234)
        print(f"K={args.shots}, {steps} inner step(s): query MSE {results[steps]['mse']:.3f} "
              f"+- {results[steps]['ci95']:.3f} over {results[steps]['episodes']} tasks")
    maml.eval_steps = args.inner_steps
    figure = Path(args.out_dir) / "ch02_maml_sinusoid.png"
    plot(maml, test.sample(seed=3), figure, args.shots)
    out = {
        "shots": args.shots, "iterations": args.iterations, "train_seconds": train_s,
        "mse_1_step": results[1]["mse"], "ci95_1_step": results[1]["ci95"],
        "mse_10_steps": results[10]["mse"], "ci95_10_steps": results[10]["ci95"],
        "episodes": results[1]["episodes"], "figure": str(figure),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
