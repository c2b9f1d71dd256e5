"""Subprocess entry of the strategy and chief/worker tests: one tiny AutoModel fit.

Usage: python distributed_fit_script.py DATA DIR PROJECT MAX_TRIALS [--replicas N] [--kill-in-trial K]
       [--export PATH]

DATA is `digits` (8x8 image arrays) or `table` (a small mixed-type DataFrame). With
`--replicas N` the process splits its CPU into N logical devices (before TensorFlow starts)
and fits under `MirroredStrategy` over them. KerasTuner's environment variables make it a
chief or a worker. Prints `RAN <trial id> <tuner id> <strategy> <replicas>` per trial it
trained, and on the chief (or alone) `RESULT <json>`.
"""

import argparse
import json
import os
import sys

import numpy as np

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)
import tensorflow as tf


def logical_cpus(count: int) -> list:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def digits(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, d.target, test_size=0.3, random_state=seed, stratify=d.target)


def table(rows: int = 400, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 20, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    score = (amount - 50) / 20 + np.where(plan == "pro", 1.5, np.where(plan == "basic", -1.5, 0))
    frame = pd.DataFrame({"amount": amount, "plan": plan,
                          "label": np.where(score + rng.normal(0, 0.3, rows) > 0, "yes", "no")})
    return frame[: rows * 3 // 4], frame[rows * 3 // 4:]


def strategy_name(model) -> tuple:
    strategy = model.distribute_strategy
    return type(strategy).__name__, int(strategy.num_replicas_in_sync)


def mirrored(model) -> bool:
    return all(isinstance(v.value, tf.distribute.DistributedValues) for v in model.trainable_variables)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data", choices=("digits", "table"))
    p.add_argument("directory")
    p.add_argument("project")
    p.add_argument("max_trials", type=int)
    p.add_argument("--replicas", type=int, default=0)
    p.add_argument("--kill-in-trial", type=int, default=None, help="hard exit during this process's trial K (1-based)")
    p.add_argument("--export", default=None)
    args = p.parse_args()
    strategy = None
    if args.replicas:
        strategy = tf.distribute.MirroredStrategy(logical_cpus(args.replicas))

    from tfmeta.nas import search as search_lib

    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "local")
    trials = {"n": 0}
    fit = search_lib.ArchitectureHyperModel.fit

    def recording_fit(self, hp, model, *fit_args, **fit_kwargs):
        trials["n"] += 1
        if args.kill_in_trial == trials["n"]:
            os._exit(17)  # killed mid-trial: the trial is the oracle's ongoing one, no result sent
        trials["model"] = model
        return fit(self, hp, model, *fit_args, **fit_kwargs)

    def on_trial_end(self, trial):
        name, replicas = strategy_name(trials["model"])
        print(f"RAN {trial.trial_id} {tuner_id} {name} {replicas} {mirrored(trials['model'])}", flush=True)
        return end(self, trial)

    search_lib.ArchitectureHyperModel.fit = recording_fit
    end = search_lib.KerasArchitectureTuner.on_trial_end
    search_lib.KerasArchitectureTuner.on_trial_end = on_trial_end

    from tfmeta.nas.space import MicroCellSpace

    common = dict(task="classification", max_trials=args.max_trials, seed=0, verbose=0, strategy="controller",
                  directory=args.directory, project_name=args.project, distribution_strategy=strategy)
    if args.data == "digits":
        x, x_test, y, y_test = digits()
        am = tfmeta.AutoModel(epochs=3, batch_size=64, filters=8, space=MicroCellSpace(num_nodes=2),
                              learning_rate=3e-3, refit_epochs=4, **common).fit(x, y)
        score = am.score(x_test, y_test) if am.search_role_ != "worker" else None
    else:
        train, test = table()
        am = tfmeta.AutoModel(epochs=4, refit_epochs=4, **common).fit(train, y="label")
        score = am.score(test, test["label"]) if am.search_role_ != "worker" else None
    if am.search_role_ == "worker":
        return
    result = {
        "role": am.search_role_,
        "trials": sorted(t["trial"] for t in am.trials_),
        "score": score,
        "members": [[*strategy_name(m), mirrored(m)] for m in am.members_],
        "controller_updates": am.search_["stats"].get("updates"),
    }
    if args.export:
        result["export"] = am.export(args.export)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
