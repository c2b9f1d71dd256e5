"""AutoModel few-shot on scikit-learn's digits: the learners, the calibrated ensemble, new classes.

`tfmeta.AutoModel(task="few_shot")` trains its candidate learners on the base classes 0-6,
ranks them on validation episodes from held-out base classes, then scores a soft-voting
ensemble of the two best (each member's temperature fitted on other validation episodes) and
keeps it only if it scores higher. This script prints that leaderboard and scores the chosen
model and each ensemble member on episodes from the new classes 7-9, which no step of the fit
saw: whether keeping the ensemble paid off on new classes.

    python benchmarks/automodel_few_shot_digits.py --json [--seed 0 --uncalibrated]

`--uncalibrated` fixes every temperature at 1 (the plain mean of the members' probabilities),
for comparison.

Prints one JSON object: `{"leaderboard": [...], "chosen", "test": {"accuracy", "ci95"},
"members_test": {learner: accuracy}, "seconds"}`.
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import tempfile
import time

from sklearn.datasets import load_digits


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=60, help="training steps per learner")
    p.add_argument("--episodes", type=int, default=200, help="test episodes on the new classes")
    p.add_argument("--uncalibrated", action="store_true", help="all temperatures 1 (plain mean)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    if args.uncalibrated:  # the ensemble as it was before temperature scaling
        tfmeta.fewshot.ensemble.FewShotEnsemble.calibrate = lambda self, *a, **k: self.temperatures
    digits = load_digits()
    x, y = (digits.images / 16).astype("float32"), digits.target
    base = y < 7
    t0 = time.time()
    am = tfmeta.AutoModel(task="few_shot", learners=("protonet", "maml", "siamese"), ways=3, shots=1,
                          epochs=1, steps_per_epoch=args.steps, seed=args.seed, verbose=0,
                          directory=tempfile.mkdtemp(prefix="tfmeta_fs_digits_"))
    am.fit(x[base], y[base])
    new_x, new_y = x[~base], y[~base] - 7
    test = am.evaluate(new_x, new_y, episodes=args.episodes)
    members_test = {}
    names = am.leaderboard()[0].get("members") or [am.best_learner_]
    for name, member in zip(names, am.members_):
        r = member.evaluate_episodes(new_x, new_y, ways=3, shots=1, queries=5, episodes=args.episodes)
        members_test[name] = r["accuracy"]
    out = {
        "leaderboard": [{k: v for k, v in t.items() if k != "seconds"} for t in am.leaderboard()],
        "chosen": am.best_learner_, "calibrated": not args.uncalibrated,
        "test": {"accuracy": test["accuracy"], "ci95": test["ci95"], "episodes": test["episodes"]},
        "members_test": members_test, "seconds": time.time() - t0,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for t in out["leaderboard"]:
            print(f"{t['learner']:>9}  validation {t['score']:.3f}")
        print(f"chosen {out['chosen']}: new classes {test['accuracy']:.3f} +- {test['ci95']:.3f}; "
              f"members {members_test}")
    return out


if __name__ == "__main__":
    main()
