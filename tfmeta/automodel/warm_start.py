"""Meta-feature warm starts: a new search begins with what won on the most similar past data sets.

auto-sklearn's meta-learning step (Feurer et al. 2015): each finished project leaves its data
set's meta-features (`tfmeta.automodel.meta_features`) and its best configurations in a local
store; a new search computes its own meta-features, finds the nearest past data sets by the
Euclidean distance of the *standardised* meta-features (each feature scaled by its spread over
the store, so that rows do not drown the landmarkers) and evaluates their best configurations
first, before its own defaults and the strategy's proposals.

Only projects searched in a space of the same name (tables from tables, texts from texts, image
folders from image folders) are neighbours. A past configuration is carried into the new space
decision by decision: a decision of the same name takes the stored label, or the nearest numeric
choice (batch sizes depend on the rows); one that shares fewer than half of the new space's
decisions does not transfer. The store is one JSON file per project in a directory:
`~/.tfmeta/warm_start` by default, `$TFMETA_WARM_START_DIR` or `AutoModel(warm_start_store=...)`.

Example:

>>> am = tfmeta.AutoModel(max_trials=3, warm_start_store=tmp_dir, project_name="tips")
>>> am.fit("tips.csv", y="time")        # its best configurations go to the store
>>> am = tfmeta.AutoModel(max_trials=3, warm_start_store=tmp_dir, project_name="taxis")
>>> am.fit("taxis.csv", y="payment")    # starts with the tips project's best configuration
>>> [t["origin"] for t in am.leaderboard()]
['warm start', 'search', 'search']
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tfmeta.automodel import meta_features as meta_features_lib
from tfmeta.nas.space import Architecture, SearchSpace

#: Past data sets whose configurations seed a search, and configurations kept per project.
NEIGHBOURS = 2
KEPT_PER_PROJECT = 3


def default_directory() -> Path:
    """`$TFMETA_WARM_START_DIR`, else `~/.tfmeta/warm_start`."""
    return Path(os.environ.get("TFMETA_WARM_START_DIR", Path.home() / ".tfmeta" / "warm_start"))


class WarmStartStore:
    """Past projects' meta-features and best configurations, one JSON file per project.

    Args:
        directory: The store's folder (created on the first `add`); None: `default_directory()`.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else default_directory()

    def _path(self, name: str) -> Path:
        return self.directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".json")

    def add(self, name: str, task: str, meta_features: dict, configurations: list[dict], space: str) -> None:
        """Records (or replaces) a project searched in the space named `space`: `configurations`
        are `{"choices": {decision: label}, "score": float}`, best first."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {"name": name, "task": task, "space": space, "meta_features": meta_features,
                  "configurations": configurations[:KEPT_PER_PROJECT]}
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(handle, "w") as out:  # written whole, then renamed: never half a file
            json.dump(record, out, indent=1, default=float)
        os.replace(temporary, self._path(name))

    def records(self) -> list[dict]:
        if not self.directory.is_dir():
            return []
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a foreign or damaged file is not a past project
        return records

    def nearest(self, meta_features: dict, task: str, k: int = NEIGHBOURS, exclude: str | None = None,
                space: str | None = None) -> list[tuple[float, dict]]:
        """The `k` past projects of the same task (and space, when given) nearest in standardised
        meta-feature space, `(distance, record)` nearest first; `exclude` leaves out a project."""
        records = [r for r in self.records() if r.get("task") == task and r.get("name") != exclude
                   and (space is None or r.get("space") == space)]
        if not records:
            return []
        names = meta_features_lib.NAMES
        past = np.array([[float(r["meta_features"].get(n, 0.0)) for n in names] for r in records])
        query = np.array([float(meta_features.get(n, 0.0)) for n in names])
        everything = np.vstack([past, query])
        spread = everything.std(axis=0)
        spread[spread == 0] = 1.0
        distances = np.linalg.norm((past - query) / spread, axis=1)
        order = np.argsort(distances, kind="stable")[:k]
        return [(float(distances[i]), records[i]) for i in order]


def transfer(choices: dict, space: SearchSpace) -> Architecture | None:
    """A stored configuration in `space`, or None when it shares under half of its decisions."""
    shared = [d for d in space.decisions if d.name in choices]
    if 2 * len(shared) < len(space.decisions):
        return None
    values = {}
    for decision in space.decisions:
        stored = choices.get(decision.name)
        if stored in decision.choices:
            values[decision.name] = stored
        elif isinstance(stored, (int, float)) and all(isinstance(c, (int, float)) for c in decision.choices):
            values[decision.name] = min(decision.choices, key=lambda c: abs(math.log1p(abs(c)) - math.log1p(abs(stored))))
        else:
            values[decision.name] = decision.choices[len(decision.choices) // 2]
    return space.from_dict(values)


def seed_configurations(store: WarmStartStore, meta_features: dict, space: SearchSpace, task: str,
                        k: int = NEIGHBOURS, exclude: str | None = None) -> list[tuple[Architecture, str]]:
    """`(architecture, past project name)` of the nearest past projects' best configurations that
    transfer to `space`: each neighbour's best first, nearest neighbour first, no duplicates."""
    seeds, seen = [], set()
    for _, record in store.nearest(meta_features, task, k, exclude=exclude, space=space.name):
        for configuration in record.get("configurations", []):
            arch = transfer(configuration["choices"], space)
            if arch is not None and str(arch) not in seen:
                seen.add(str(arch))
                seeds.append((arch, record["name"]))
                break
    return seeds


# -- AutoModel glue: the estimator calls `prepare`, the search families `architectures` and `finish`.
def prepare(am, x: Any, y: Any) -> None:
    """Computes the data set's meta-features when `am.warm_start_store` is set (`am.warm_start_`).

    `x` and `y` as `meta_features.describe` takes them: arrays (a `tf.data` input after the
    estimator turned it into arrays), a table, texts or an image folder."""
    setting = getattr(am, "warm_start_store", None)
    am.warm_start_ = None
    if setting is None or setting is False or am.task not in ("classification", "regression"):
        return
    store = WarmStartStore(None if setting is True else setting)
    am.warm_start_ = {"store": store, "meta_features": meta_features_lib.describe(x, y, am.task, seed=am.seed or 0),
                      "seeds": []}


def architectures(am, space: SearchSpace) -> list[Architecture]:
    """The warm-start architectures of a search (empty without a store)."""
    warm = getattr(am, "warm_start_", None)
    if warm is None:
        return []
    warm["seeds"] = seed_configurations(warm["store"], warm["meta_features"], space, am.task,
                                        exclude=am.project_name)
    if warm["seeds"]:
        am._log("warm start: " + ", ".join(f"{arch} (from {name})" for arch, name in warm["seeds"]))
    return [arch for arch, _ in warm["seeds"]]


def finish(am, completed: list[dict], sign: float) -> None:
    """Marks the leaderboard rows (`origin`: "warm start" or "search", `warm_start_from`) and
    records this project's best configurations in the store. `completed` are the search's
    completed trial records (`ArchitectureSearch.completed()`)."""
    warm = getattr(am, "warm_start_", None)
    if warm is None:
        return
    sources = {str(arch): name for arch, name in warm["seeds"]}
    for row in am.trials_:
        source = sources.get(row.get("architecture"))
        row["origin"] = "search" if source is None else "warm start"
        if source is not None:
            row["warm_start_from"] = source
    best = sorted(completed, key=lambda r: -sign * float(r["score"]))
    configurations = [{"choices": Architecture.from_config(r["architecture"]).as_dict(),
                       "score": sign * float(r["score"])} for r in best]
    if best:
        warm["store"].add(am.project_name, am.task, warm["meta_features"], configurations,
                          space=best[0]["architecture"]["space"])
