"""Search strategies behind one ask/tell interface: controller RNN, regularized evolution, random.

The predictor-guided (`tfmeta.nas.guided`), PNAS (`tfmeta.nas.pnas`) and TPE (`tfmeta.nas.tpe`)
strategies live in their own modules and are created by name through `make_strategy` too.

A `Strategy` proposes architectures (`propose()`) and learns from their rewards
(`observe(arch, reward)`); higher rewards are better. It never proposes an architecture that
was already evaluated or is being evaluated (distinct queries), keeps its whole state as JSON
(`get_state()` / `set_state()`) and is deterministic given its seed and the order of events.
The KerasTuner oracles in `tfmeta.nas.oracles` wrap these strategies, and the tabular
benchmark loop in `tfmeta.nas.benchmarks` calls them directly.

- `ControllerStrategy`: samples from a `ControllerRNN`, one REINFORCE update per observed
  reward. A sample that hits an already-evaluated architecture is not a new query: its cached
  reward is fed to the controller (`update_on_duplicates=True`, default) and it samples again.
- `EvolutionStrategy`: regularized (ageing) evolution, Real et al. 2019: a random initial
  population of `population_size`; then each child is a mutation (one decision changed) of
  the best of `sample_size` random members; the oldest member dies when a child is added.
- `RandomStrategy`: uniform samples without repetition.

Example:

>>> from tfmeta.nas.space import MacroSpace
>>> s = make_strategy("evolution", MacroSpace(), seed=0, population_size=10, sample_size=3)
>>> arch = s.propose(); s.observe(arch, 0.5)
>>> len(s.history)
1
"""

from __future__ import annotations

import collections
import numbers
import time
from typing import Any

import numpy as np

from tfmeta.nas.space import Architecture, SearchSpace


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def _set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


class Strategy:
    """Base class: bookkeeping of evaluated/pending architectures, dedup and JSON state.

    Args:
        space: The search space.
        seed: Seed of the strategy's random numbers.
        max_attempts: Proposals tried before falling back to a uniformly random unseen
            architecture (counted in `stats["fallbacks"]`).

    Subclasses implement `_propose() -> list[int]` and `_observe(indices, reward)`, and may
    extend `get_state` / `set_state`.
    """

    name = "base"

    def __init__(self, space: SearchSpace, seed: int | None = None, max_attempts: int = 200):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"`space` must be a SearchSpace; received {type(space).__name__}.")
        self.space = space
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        self.rng = np.random.default_rng(self.seed)
        self.max_attempts = max_attempts
        self.known: dict[tuple, float | None] = {}  # evaluated: reward (None = failed)
        self.pending: set[tuple] = set()
        self.queued: list[tuple] = []  # suggested architectures, proposed first
        self.history: list[dict] = []  # observed, in completion order
        self.stats = collections.Counter()
        self.timings = collections.defaultdict(float)
        # A cost known before evaluating (e.g. FLOPs): `constraint(arch) -> bool`. Proposals that
        # fail it are rejected like duplicates (counted in `stats["infeasible"]`). Not persisted:
        # set it again after restoring a state.
        self.constraint = None

    def feasible(self, indices) -> bool:
        """Whether the architecture with these choice indices satisfies `constraint`."""
        return self.constraint is None or bool(self.constraint(self.space.decode(indices)))

    # -- ask / tell --------------------------------------------------------------------
    def suggest(self, architectures) -> None:
        """Queues architectures to be proposed before the strategy's own (e.g. a known-good
        default as the first trial); those already evaluated, pending or queued are skipped."""
        for arch in architectures:
            idx = tuple(self.space.encode(self.space.validate(arch)))
            if idx not in self.known and idx not in self.pending and idx not in self.queued:
                self.queued.append(idx)

    def propose(self) -> Architecture | None:
        """The next architecture to evaluate, or None when the space is exhausted."""
        while self.queued:
            idx = self.queued.pop(0)
            if idx not in self.known and idx not in self.pending:
                self.pending.add(idx)
                self.stats["suggested"] += 1
                return self.space.decode(idx)
        for _ in range(self.max_attempts):
            t0 = time.perf_counter()
            idx = tuple(int(i) for i in self._propose())
            self.timings["propose_s"] += time.perf_counter() - t0
            self.stats["samples"] += 1
            if idx in self.known or idx in self.pending:
                self.stats["duplicates"] += 1
                self._on_duplicate(list(idx), self.known.get(idx))
                continue
            if not self.feasible(idx):
                self.stats["infeasible"] += 1
                continue
            self.pending.add(idx)
            self.stats["proposals"] += 1
            return self.space.decode(idx)
        return self._fallback()

    def _fallback(self) -> Architecture | None:
        if len(self.known) + len(self.pending) >= self.space.size:
            return None
        self.stats["fallbacks"] += 1
        attempts = 0
        while True:  # feasible if possible: the constraint is relaxed after many rejections
            attempts += 1
            idx = tuple(int(self.rng.integers(n)) for n in self.space.num_choices)
            if idx not in self.known and idx not in self.pending and (attempts > 50 * self.max_attempts
                                                                        or self.feasible(idx)):
                self.pending.add(idx)
                self.stats["proposals"] += 1
                return self.space.decode(idx)

    def observe(self, arch: Architecture, reward: float | None, trial_id: str | None = None) -> None:
        """Reports the reward of a proposed architecture (None = the evaluation failed)."""
        idx = tuple(self.space.encode(arch))
        self.pending.discard(idx)
        if reward is not None and not np.isfinite(reward):
            reward = None
        self.known[idx] = None if reward is None else float(reward)
        self.history.append({"indices": list(idx), "reward": self.known[idx], "trial_id": trial_id})
        if reward is not None:
            t0 = time.perf_counter()
            self._observe(list(idx), float(reward))
            self.timings["observe_s"] += time.perf_counter() - t0
            self.stats["updates"] += 1

    def release(self, arch: Architecture) -> None:
        """Forgets a pending proposal that will never be evaluated."""
        self.pending.discard(tuple(self.space.encode(arch)))

    def _propose(self) -> list[int]:
        raise NotImplementedError

    def _observe(self, indices: list[int], reward: float) -> None:
        pass

    def _on_duplicate(self, indices: list[int], reward: float | None) -> None:
        pass

    # -- results -----------------------------------------------------------------------
    @property
    def observed_ids(self) -> set:
        return {h["trial_id"] for h in self.history if h["trial_id"] is not None}

    def best(self) -> tuple[Architecture | None, float | None]:
        scored = [(h["reward"], h["indices"]) for h in self.history if h["reward"] is not None]
        if not scored:
            return None, None
        r, idx = max(scored, key=lambda t: t[0])
        return self.space.decode(idx), r

    # -- state -------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "rng": _rng_state(self.rng),
            "history": self.history,
            "pending": [list(k) for k in sorted(self.pending)],
            "queued": [list(k) for k in self.queued],
            "stats": dict(self.stats),
        }

    def set_state(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"Strategy state is for {state.get('name')!r}; this strategy is {self.name!r}.")
        self.seed = state["seed"]
        _set_rng_state(self.rng, state["rng"])
        self.history = [dict(h) for h in state["history"]]
        self.known = {tuple(h["indices"]): h["reward"] for h in self.history}
        self.pending = {tuple(k) for k in state["pending"]}
        self.queued = [tuple(k) for k in state.get("queued", [])]
        self.stats = collections.Counter(state.get("stats", {}))


class RandomStrategy(Strategy):
    """Uniform random search without repetition."""

    name = "random"

    def _propose(self) -> list[int]:
        return [int(self.rng.integers(n)) for n in self.space.num_choices]


class EvolutionStrategy(Strategy):
    """Regularized evolution (Real et al. 2019): tournament selection, mutation, ageing.

    Args:
        space: The search space.
        population_size: P, members alive at once (the P most recently evaluated).
        sample_size: S, tournament size.
        seed: Random seed.
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, population_size: int = 20, sample_size: int = 5, seed: int | None = None, **kwargs):
        super().__init__(space, seed=seed, **kwargs)
        if isinstance(population_size, bool) or not isinstance(population_size, numbers.Integral) \
                or population_size < 2:
            raise ValueError(f"`population_size` must be an int >= 2; received {population_size!r}.")
        population_size = int(population_size)
        if isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral) \
                or not 1 <= sample_size <= population_size:
            raise ValueError(f"`sample_size` must be an int in [1, population_size]; received {sample_size!r}.")
        sample_size = int(sample_size)
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: collections.deque = collections.deque()  # (indices, reward), oldest first

    def _propose(self) -> list[int]:
        if len(self.population) < self.population_size and self.stats["proposals"] < self.population_size:
            return [int(self.rng.integers(n)) for n in self.space.num_choices]
        if not self.population:
            return [int(self.rng.integers(n)) for n in self.space.num_choices]
        members = list(self.population)
        picks = self.rng.choice(len(members), size=min(self.sample_size, len(members)), replace=False)
        parent = max((members[i] for i in picks), key=lambda m: m[1])
        return self.space.encode(self.space.mutate(self.space.decode(parent[0]), self.rng))

    def _observe(self, indices: list[int], reward: float) -> None:
        self.population.append((list(indices), reward))
        while len(self.population) > self.population_size:
            self.population.popleft()  # ageing: the oldest dies, however good

    def get_state(self) -> dict:
        return {**super().get_state(), "population": [[m[0], m[1]] for m in self.population]}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.population = collections.deque((list(m[0]), float(m[1])) for m in state["population"])


class ControllerStrategy(Strategy):
    """The controller RNN (Zoph & Le / ENAS) trained with REINFORCE on observed rewards.

    Args:
        space: The search space.
        seed: Seeds the controller's initial weights and its sampling.
        update_on_duplicates: Feed the cached reward of a re-sampled architecture to the
            controller (a REINFORCE step without a new query).
        controller: An existing `ControllerRNN` to reuse (reset with `seed`), which skips
            re-tracing its TF functions; `controller_kwargs` are then ignored.
        **controller_kwargs: `ControllerRNN` arguments (units, tanh_constant, temperature,
            entropy_weight, baseline_decay, learning_rate).
    """

    name = "controller"

    def __init__(self, space: SearchSpace, seed: int | None = None, update_on_duplicates: bool = True,
                 max_attempts: int = 200, controller=None, **controller_kwargs: Any):
        super().__init__(space, seed=seed, max_attempts=max_attempts)
        from tfmeta.nas.controller import ControllerRNN

        self.update_on_duplicates = update_on_duplicates
        if controller is not None:
            # Reuse an existing controller (same decisions), re-initialised with this seed.
            if controller.num_choices != space.num_choices:
                raise ValueError(
                    f"`controller` emits decisions {controller.num_choices}; the space has {space.num_choices}."
                )
            if controller.attention != (space.controller_attention() or {}):
                raise ValueError(f"`controller` has attention steps {controller.attention}; the space wants "
                                 f"{space.controller_attention()}.")
            controller.reset(self.seed)
            self.controller = controller
        else:
            controller_kwargs.setdefault("attention", space.controller_attention())
            self.controller = ControllerRNN(space.num_choices, seed=self.seed, **controller_kwargs)
        self.num_samples = 0
        self.sample_times: list[float] = []  # seconds per controller sample / update (not persisted)
        self.update_times: list[float] = []

    def _propose(self) -> list[int]:
        t0 = time.perf_counter()
        idx, _, _ = self.controller.sample(seed=[self.seed, self.num_samples])
        self.sample_times.append(time.perf_counter() - t0)
        self.num_samples += 1
        return idx

    def _update(self, indices, reward):
        t0 = time.perf_counter()
        self.controller.reinforce(indices, reward)
        dt = time.perf_counter() - t0
        self.update_times.append(dt)
        self.timings["reinforce_s"] += dt
        self.stats["reinforce_updates"] += 1

    def _observe(self, indices: list[int], reward: float) -> None:
        self._update(indices, reward)

    def _on_duplicate(self, indices: list[int], reward: float | None) -> None:
        if self.update_on_duplicates and reward is not None:
            self._update(indices, reward)

    def get_state(self) -> dict:
        return {**super().get_state(), "num_samples": self.num_samples, "controller": self.controller.get_state()}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.num_samples = int(state["num_samples"])
        self.controller.set_state(state["controller"])


STRATEGIES = {"controller": ControllerStrategy, "evolution": EvolutionStrategy, "random": RandomStrategy}
# Strategies in their own modules (they import this one): name -> "module:class".
STRATEGY_MODULES = {"predictor": "tfmeta.nas.guided:PredictorStrategy", "pnas": "tfmeta.nas.pnas:PNASStrategy",
                    "tpe": "tfmeta.nas.tpe:TPEStrategy"}
STRATEGY_NAMES = tuple(sorted([*STRATEGIES, *STRATEGY_MODULES]))


def strategy_class(name: str) -> type:
    """The `Strategy` class of a strategy name."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    if name in STRATEGY_MODULES:
        import importlib

        module, cls = STRATEGY_MODULES[name].split(":")
        return getattr(importlib.import_module(module), cls)
    raise ValueError(f"`strategy` must be one of {list(STRATEGY_NAMES)}; received {name!r}.")


def make_strategy(name: str, space: SearchSpace, seed: int | None = None, **kwargs: Any) -> Strategy:
    """Creates a strategy by name: `"controller"`, `"evolution"`, `"random"`, `"predictor"`,
    `"pnas"` or `"tpe"`."""
    return strategy_class(name)(space, seed=seed, **kwargs)
