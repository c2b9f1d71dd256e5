"""AutoModel's few-shot task: the learner candidates, their ranking and their ensemble.

Each candidate builds a learner around an encoder that holds the preprocessing, trains it on
base classes for a budget of steps, and is scored on validation episodes drawn from held-out
base classes. The two best learners then vote together in a `FewShotEnsemble` (in memory),
kept when it scores higher than the best learner alone.
Functions here take the `AutoModel` being fitted (`am`) and set its fitted attributes.

Example:

>>> learner = CANDIDATES["protonet"](Preprocessing(x, "image"), x, y, ways=5, shots=1, steps=200, seed=0)
>>> learner.evaluate_episodes(x_new, y_new, ways=5, shots=1)["accuracy"]   # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import keras
import numpy as np

from tfmeta import backbones
from tfmeta.automodel import inputs as inputs_lib
from tfmeta.automodel.preprocessing import Preprocessing
from tfmeta.automodel.progress import progress_line
from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.validation import check_support_set
from tfmeta.nas.distribution import strategy_scope


# ----------------------------------------------------------------------------- candidates
def encoder_for(pre: Preprocessing, name: str = "encoder") -> keras.Model:
    """conv4-style encoder (as many blocks as the image size allows) or an MLP for tables."""
    shape = pre.model_input_shape
    if pre.kind == "image":
        blocks = max(1, min(4, int(math.log2(max(1, min(shape[0], shape[1]))))))
        return pre.wrap(lambda s: backbones.conv4(s, blocks=blocks), name=name)
    return pre.wrap(lambda s: backbones.mlp(s, hidden=(128, 64)), name=name)


def _episodes(x, y, ways, shots, queries, seed, meta_batch=1):
    return EpisodeSampler(x, y, ways=ways, shots=shots, queries=queries, seed=seed).dataset(meta_batch=meta_batch)


def _max_queries(y, shots, wanted):
    smallest = int(np.bincount(y).min()) if len(y) else 0
    return max(1, min(wanted, smallest - shots))


def train_protonet(pre, x, y, ways, shots, steps, seed, verbose=0):
    from tfmeta.metric.protonet import PrototypicalNetwork

    model = PrototypicalNetwork(encoder=encoder_for(pre))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    queries = _max_queries(y, shots, 5)
    model.fit(_episodes(x, y, ways, shots, queries, seed), steps_per_epoch=steps, epochs=1, verbose=verbose)
    return model


def train_siamese(pre, x, y, ways, shots, steps, seed, verbose=0):
    from tfmeta.metric.siamese import SiameseNetwork

    model = SiameseNetwork(encoder=encoder_for(pre), input_shape=pre.raw_shape)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(PairSampler(x, y, seed=seed).dataset(batch_size=64), steps_per_epoch=steps, epochs=1, verbose=verbose)
    return model


def train_maml(pre, x, y, ways, shots, steps, seed, verbose=0):
    from tfmeta.gradient.maml import MAML

    body = encoder_for(pre, name="body")
    inputs = keras.Input(pre.raw_shape, dtype=pre.raw_dtype)
    net = keras.Model(inputs, keras.layers.Dense(ways, name="head")(body(inputs)))
    # The MAML paper's Omniglot inner rate, 0.4, diverges on small inputs such as 8x8 digits:
    # one step sends every query to one class. 0.1 learns (tests/automodel).
    model = MAML(net, inner_lr=0.1, inner_steps=1, order=1, ways=ways)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    queries = _max_queries(y, shots, 5)
    model.fit(_episodes(x, y, ways, shots, queries, seed, meta_batch=4), steps_per_epoch=max(1, steps // 4), epochs=1, verbose=verbose)
    return model


CANDIDATES: dict[str, Callable] = {
    "protonet": train_protonet,
    "maml": train_maml,
    "siamese": train_siamese,
}


def check_candidates(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise ValueError(f"`learners` must be a non-empty subset of {sorted(CANDIDATES)}; received {list(names)}.")
    return list(names)


# ------------------------------------------------------------------------------------ fit
def _split_classes(am, y, validation_split):
    rng = np.random.default_rng(am.seed)
    classes = rng.permutation(len(am.classes_))
    n_val = max(am.ways, int(round(validation_split * len(classes))))
    if len(classes) - n_val < am.ways:
        raise ValueError(
            f"`task='few_shot'` needs at least 2 x `ways` = {2 * am.ways} base classes to train and "
            f"validate {am.ways}-way episodes; `y` has {len(classes)}."
        )
    return classes[n_val:], classes[:n_val]


def _subset(x, y, classes):
    mask = np.isin(y, classes)
    remap = np.full(y.max() + 1, -1)
    remap[classes] = np.arange(len(classes))
    return x[mask], remap[y[mask]]


def fit(am, x, y, validation_split, validation_data=None) -> None:
    """Trains the candidates on the training base classes, ranks them on validation episodes."""
    train_cls, val_cls = _split_classes(am, y, validation_split)
    xt, yt = _subset(x, y, train_cls)
    xv, yv = _subset(x, y, val_cls)
    steps = am.epochs * am.steps_per_epoch
    names = check_candidates(am.learners)[: am.max_trials]
    queries = max(1, min(5, int(np.bincount(yv).min()) - am.shots))
    am.trials_, learners, best = [], [], None
    for i, name in enumerate(names):
        if am.max_time is not None and time.time() - am._start > am.max_time:
            break
        t0 = time.time()
        with strategy_scope(am.distribution_strategy):  # the learner's variables under the strategy
            learner = CANDIDATES[name](am.preprocessing_, xt, yt, am.ways, am.shots, steps, am.seed or 0)
        result = learner.evaluate_episodes(xv, yv, ways=am.ways, shots=am.shots, queries=queries, episodes=100, seed=1)
        trial = {"trial": i, "learner": name, "architecture": name, "score": result["accuracy"],
                 "ci95": result["ci95"], "seconds": time.time() - t0}
        am.trials_.append(trial)
        learners.append((trial, learner))
        if best is None or trial["score"] > best[0]["score"]:
            best = (trial, learner)
        am._log(progress_line(i + 1, len(names), name, trial["score"], best[0]["score"], time.time() - am._start))
    am.best_learner_ = am.best_architecture_ = best[0]["learner"]
    am.best_score_ = best[0]["score"]
    am.model_ = best[1]
    am.members_ = [best[1]]
    if am.ensemble and len(learners) >= 2 and (am.max_time is None or time.time() - am._start <= am.max_time):
        _try_ensemble(am, learners, xv, yv, queries)
    am.trials_.sort(key=lambda t: -t["score"])


def _try_ensemble(am, learners: list, xv, yv, queries: int) -> None:
    """Soft-votes the two best learners (in memory); keeps the ensemble if it scores higher.

    Each member's temperature is fitted on 100 other validation episodes (seed 2), so an
    over-confident member (MAML's probabilities are near one-hot) does not decide every vote;
    then the ensemble is scored on the very validation episodes that ranked the learners
    (seed 1). Learners of different families err on different tasks.
    """
    from tfmeta.fewshot.ensemble import FewShotEnsemble

    t0 = time.time()
    top = sorted(learners, key=lambda t: -t[0]["score"])[:2]
    ensemble = FewShotEnsemble([learner for _, learner in top])
    episodes = dict(ways=am.ways, shots=am.shots, queries=queries, episodes=100)
    temperatures = ensemble.calibrate(xv, yv, seed=2, **episodes)
    result = ensemble.evaluate_episodes(xv, yv, seed=1, **episodes)
    names = [trial["learner"] for trial, _ in top]
    trial = {"trial": len(am.trials_), "learner": "ensemble", "architecture": "+".join(names),
             "members": names, "temperatures": temperatures, "score": result["accuracy"],
             "ci95": result["ci95"], "seconds": time.time() - t0}
    am.trials_.append(trial)
    if trial["score"] > am.best_score_:
        am.best_learner_, am.best_architecture_ = "ensemble", trial["architecture"]
        am.best_score_ = trial["score"]
        am.model_ = ensemble
        am.members_ = [learner for _, learner in top]
    am._log(f"[ensemble] {trial['architecture']}  score={trial['score']:.4f}  "
            f"best={am.best_score_:.4f} ({am.best_learner_})  elapsed={time.time() - am._start:.0f}s")


# ------------------------------------------------------------------- predict, evaluate, export
def predict_proba(am, query_x, support) -> np.ndarray:
    """`[Q, N]` probabilities of the queries over the support set's N classes."""
    if support is None or len(support) != 2:
        raise ValueError("`support` must be `(support_x, support_y)` for task='few_shot'.")
    sx, sy = np.asarray(support[0]), np.asarray(support[1])
    inputs_lib.check_features(sx, "support_x", am.input_shape_)
    qx = am._check_x(query_x, "query_x")
    sx, sy, qx, _ = check_support_set(sx, sy, qx)
    return am.model_.predict_few_shot(sx, sy, qx)


def predict(am, query_x, support) -> np.ndarray:
    return predict_proba(am, query_x, support).argmax(-1)


def evaluate(am, x, y, episodes: int = 200) -> dict:
    y_index = np.unique(y, return_inverse=True)[1]
    queries = max(1, min(5, int(np.bincount(y_index).min()) - am.shots))
    ways = min(am.ways, len(np.unique(y_index)))
    r = am.model_.evaluate_episodes(x, y_index, ways=ways, shots=am.shots, queries=queries, episodes=episodes)
    return {"accuracy": r["accuracy"], "ci95": r["ci95"], "episodes": r["episodes"]}


def export(am, path: str, meta: dict, version: int | None) -> str:
    """The learner's (or the ensemble's) own export: `few_shot` and `serving_default`."""
    return am.model_.export(path, metadata=meta, version=version)
