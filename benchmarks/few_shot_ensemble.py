"""Scores few_shot SavedModels and their soft-voting ensemble on Omniglot's held-out alphabets.

Every member and the ensemble (`tfmeta.fewshot.ensemble.FewShotEnsemble`: the mean of the members'
class probabilities) answer the same N-way K-shot episodes, drawn from the held-out alphabets
of the shared background sets (`tfmeta.data.omniglot_splits.load_omniglot_split`), through their exported `few_shot`
signatures, so any exported learner can be a member (MAML adapts inside its graph). The images
are decoded at the largest member's size; smaller members see them area-resized, as inside the
ensemble.

    python benchmarks/few_shot_ensemble.py runs/maml_a/export runs/maml_b/export \\
        --ways 5 --shots 1 --episodes 600 --json [--export saved_models/omniglot_maml_ensemble]

`--subsets` also scores the equal-weight soft vote of every subset of two or more members,
from the member probabilities saved during their one pass (no more model calls), best first.
Choosing a subset by these scores chooses it on the test episodes: report the set you chose
before scoring, and the best subset only as an upper bound.

Prints one JSON object: `{"members": [{"path", "accuracy", "ci95", "seconds"}...],
"ensemble": {"accuracy", "ci95", "seconds"}, "ways", "shots", "episodes"}` (+ `"subsets":
[{"members": [index...], "accuracy", "ci95"}...]` with `--subsets`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from tfmeta.data.episodes import EpisodeSampler
from tfmeta.data.omniglot_splits import load_omniglot_split
from tfmeta.fewshot.ensemble import FewShotEnsemble
from tfmeta.fewshot.evaluation import mean_confidence_interval, score_episodes


def _timed(fn, sampler, episodes, seed) -> dict:
    t = time.time()
    result = score_episodes(fn, sampler, episodes=episodes, seed=seed, meta_batch=1)
    return {"accuracy": result["accuracy"], "ci95": result["ci95"], "seconds": time.time() - t}


def score_subsets(member_probs: list[np.ndarray], labels: np.ndarray) -> list[dict]:
    """Equal-weight soft vote of every subset of >= 2 members, from `[E, Q, N]` probabilities."""
    rows = []
    for k in range(2, len(member_probs) + 1):
        for subset in itertools.combinations(range(len(member_probs)), k):
            mean = np.mean([member_probs[i] for i in subset], axis=0)
            acc, ci = mean_confidence_interval(list(np.mean(mean.argmax(-1) == labels, axis=-1)))
            rows.append({"members": list(subset), "accuracy": acc, "ci95": ci})
    return sorted(rows, key=lambda r: -r["accuracy"])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("members", nargs="+", help="few_shot SavedModels (version or base dirs)")
    p.add_argument("--weights", type=float, nargs="+", default=None)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--seed", type=int, default=1234, help="test episodes (ch03 and ch04 use 1234)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--export", default=None, help="also export the ensemble to this base dir")
    p.add_argument("--subsets", action="store_true",
                   help="also score every subset of >= 2 members (equal weights), best first")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    ensemble = FewShotEnsemble(args.members, weights=args.weights)
    # Images at the ensemble's size: the largest member's (smaller members get them area-resized).
    height, width = ensemble.input_shape[:2]
    split = load_omniglot_split(height if height == width else (height, width), test_protocols="characters",
                                data_dir=args.data_dir)
    test = split.held_out
    sampler = EpisodeSampler(test.x, test.y, args.ways, args.shots, args.queries, seed=args.seed)
    members, member_probs = [], []
    for index, path in enumerate(ensemble.member_paths):
        member_probs.append([])

        def member(sx, sy, qx, index=index, record=member_probs[-1]):
            probs = ensemble.member_probabilities(index, sx, sy, qx)  # sy: int32 from the scorer
            record.append(probs.numpy())
            return probs

        members.append({"path": path, **_timed(member, sampler, args.episodes, args.seed)})
        if not args.json:
            print(f"{path}: {100 * members[-1]['accuracy']:.2f}% +- {100 * members[-1]['ci95']:.2f}%",
                  flush=True)
    out = {
        "ways": args.ways, "shots": args.shots, "episodes": args.episodes,
        "members": members, "weights": ensemble.weights,
        "ensemble": _timed(ensemble.probabilities, sampler, args.episodes, args.seed),
    }
    if args.subsets:
        labels = np.stack([qy[0].numpy() for _, qy in sampler.dataset(
            meta_batch=1, episodes=args.episodes, seed=args.seed)])
        out["subsets"] = score_subsets([np.stack(p) for p in member_probs], labels)
        if not args.json:
            for row in out["subsets"]:
                print(f"subset {row['members']}: {100 * row['accuracy']:.2f}% +- "
                      f"{100 * row['ci95']:.2f}%")
    if args.export:
        out["export"] = ensemble.export(args.export, metadata={"metrics": {
            f"{args.ways}way_{args.shots}shot_accuracy": out["ensemble"]["accuracy"],
            f"{args.ways}way_{args.shots}shot_ci95": out["ensemble"]["ci95"],
        }})
    if args.json:
        print(json.dumps(out))
    else:
        e = out["ensemble"]
        print(f"ensemble of {len(members)}: {100 * e['accuracy']:.2f}% +- {100 * e['ci95']:.2f}%")
    return out


if __name__ == "__main__":
    main()
