"""`PredictorStrategy`: a surrogate predictor proposes the next architecture, for any space.

After `num_initial` random architectures, the strategy refits an `ArchitecturePredictor`
(an MLP ensemble) on all results so far, scores a pool of unseen candidates (uniform samples
and one- or two-decision mutations of the best architectures found) by the predicted mean plus
`exploration` times the ensemble's spread (an upper confidence bound), and queues the best
`batch_size` for the next proposals (a batch also keeps parallel workers busy).

The strategy's state is its history, RNG and queued batch; the predictor is refitted from
them (see `tfmeta.nas.predictor`), so a resumed search proposes exactly what it would have proposed.

Example:

>>> from tfmeta.nas.space import MacroSpace
>>> s = PredictorStrategy(MacroSpace(num_layers=4), seed=0, num_initial=3)
>>> for _ in range(5):
...     a = s.propose(); s.observe(a, float(sum(s.space.encode(a))))
>>> len(s.history)
5
"""

from __future__ import annotations

import numpy as np

from tfmeta.nas.predictor import ArchitecturePredictor
from tfmeta.nas.space import SearchSpace
from tfmeta.nas.strategies import Strategy


def fitted_predictor(strategy: Strategy, **predictor_kwargs) -> ArchitecturePredictor | None:
    """A predictor fitted on a strategy's scored history (None with fewer than 2 results)."""
    scored = [(h["indices"], h["reward"]) for h in strategy.history if h["reward"] is not None]
    if len(scored) < 2:
        return None
    predictor = ArchitecturePredictor(strategy.space, seed=strategy.seed, **predictor_kwargs)
    return predictor.fit([s[0] for s in scored], [s[1] for s in scored])


def mutations(space: SearchSpace, indices) -> list[tuple]:
    """Every architecture that differs from `indices` in exactly one decision."""
    out = []
    for i, n in enumerate(space.num_choices):
        for c in range(n):
            if c != indices[i]:
                new = list(indices)
                new[i] = c
                out.append(tuple(new))
    return out


class PredictorStrategy(Strategy):
    """Predictor-guided search: propose the candidate with the best predicted score.

    Args:
        space: The search space.
        num_initial: Uniformly random architectures evaluated before the predictor is used.
        num_candidates: Uniform random candidates scored per proposal (besides the mutations
            of the `num_parents` best architectures and their one-step neighbours).
        num_parents: Best architectures whose mutations join the candidate pool.
        exploration: Weight of the ensemble's spread in the acquisition (mean + w * std).
        batch_size: Candidates queued per predictor fit.
        predictor_kwargs: `ArchitecturePredictor` arguments (ensemble size, width...).
        seed: Random seed.
    """

    name = "predictor"

    def __init__(self, space: SearchSpace, num_initial: int = 10, num_candidates: int = 500, num_parents: int = 5,
                 exploration: float = 0.5, batch_size: int = 1, predictor_kwargs: dict | None = None,
                 seed: int | None = None, **kwargs):
        super().__init__(space, seed=seed, **kwargs)
        for arg, value, low in (("num_initial", num_initial, 2), ("num_candidates", num_candidates, 0),
                                ("num_parents", num_parents, 0), ("batch_size", batch_size, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"`{arg}` must be an int >= {low}; received {value!r}.")
        self.num_initial = num_initial
        self.num_candidates = num_candidates
        self.num_parents = num_parents
        self.exploration = float(exploration)
        self.batch_size = batch_size
        self.batch: list[tuple] = []  # ranked by the last predictor fit, proposed next
        self.predictor_kwargs = dict(predictor_kwargs or {})

    def candidates(self) -> list[tuple]:
        """Unseen candidates: mutations (and their neighbours) of the best, plus random ones."""
        seen = set(self.known) | self.pending
        best = sorted((h for h in self.history if h["reward"] is not None), key=lambda h: -h["reward"])
        pool = set()
        for h in best[: self.num_parents]:
            for m in mutations(self.space, h["indices"]):
                pool.add(m)
                pool.update(mutations(self.space, m)[:: max(1, len(self.space) // 4)])
        pool.update(tuple(int(self.rng.integers(n)) for n in self.space.num_choices)
                    for _ in range(self.num_candidates))
        return sorted(p for p in pool - seen if self.feasible(p))

    def _propose(self) -> list[int]:
        seen = set(self.known) | self.pending
        self.batch = [b for b in self.batch if b not in seen]
        if self.batch:
            return list(self.batch.pop(0))
        scored = sum(h["reward"] is not None for h in self.history)
        if scored < self.num_initial:
            return [int(self.rng.integers(n)) for n in self.space.num_choices]
        pool = self.candidates()
        predictor = fitted_predictor(self, **self.predictor_kwargs)
        if not pool or predictor is None:
            return [int(self.rng.integers(n)) for n in self.space.num_choices]
        mean, std = predictor.predict(pool)
        order = np.argsort(-(mean + self.exploration * std), kind="stable")[: self.batch_size]
        self.batch = [pool[i] for i in order]
        self.stats["predictor_fits"] += 1
        return list(self.batch.pop(0))

    def get_state(self) -> dict:
        return {**super().get_state(), "batch": [list(b) for b in self.batch]}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.batch = [tuple(b) for b in state.get("batch", [])]
