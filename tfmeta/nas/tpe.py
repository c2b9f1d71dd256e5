"""`TPEStrategy`: the tree-structured Parzen estimator (Bergstra et al. 2011) over decisions.

TPE splits the results into the best `gamma` fraction ("good") and the rest ("bad"), models
each decision's choice frequencies in both groups (a categorical Parzen estimator with a
uniform prior weight), draws candidates from the good model and proposes the one with the
highest likelihood ratio good / bad. Every decision of a `SearchSpace` is categorical, so the
estimator is a product of smoothed histograms.

Why not Optuna's TPE sampler: KerasTuner oracles need a proposal/result split with the whole
state as JSON (resume after a kill, chief/worker), which this strategy gets from `Strategy`
by keeping only its history; an Optuna study would have to be rebuilt from the history on
every proposal (and it would be a new dependency) for the same few lines of estimator.

Example:

>>> from tfmeta.nas.space import MacroSpace
>>> s = TPEStrategy(MacroSpace(num_layers=4), seed=0, num_initial=4)
>>> for _ in range(8):
...     a = s.propose(); s.observe(a, float(sum(s.space.encode(a))))
>>> len(s.history)
8
"""

from __future__ import annotations

import numpy as np

from tfmeta.nas.space import SearchSpace
from tfmeta.nas.strategies import Strategy


class TPEStrategy(Strategy):
    """Tree-structured Parzen estimator over categorical decisions.

    Args:
        space: The search space.
        num_initial: Uniformly random architectures before the estimator is used.
        gamma: Fraction of the results that counts as good.
        num_candidates: Candidates drawn from the good model per proposal.
        prior_weight: Pseudo-count of the uniform prior in each decision's histogram.
        seed: Random seed.
    """

    name = "tpe"

    def __init__(self, space: SearchSpace, num_initial: int = 10, gamma: float = 0.15, num_candidates: int = 64,
                 prior_weight: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(space, seed=seed, **kwargs)
        if not isinstance(num_initial, int) or num_initial < 2:
            raise ValueError(f"`num_initial` must be an int >= 2; received {num_initial!r}.")
        if not 0 < gamma < 1:
            raise ValueError(f"`gamma` must be in (0, 1); received {gamma!r}.")
        self.num_initial = num_initial
        self.gamma = float(gamma)
        self.num_candidates = int(num_candidates)
        self.prior_weight = float(prior_weight)

    def _densities(self, rows: np.ndarray) -> list[np.ndarray]:
        """Per decision: smoothed choice probabilities of `rows` (`[N, decisions]`)."""
        out = []
        for j, n in enumerate(self.space.num_choices):
            counts = np.bincount(rows[:, j], minlength=n).astype(float) + self.prior_weight / n
            out.append(counts / counts.sum())
        return out

    def _propose(self) -> list[int]:
        scored = [(h["reward"], h["indices"]) for h in self.history if h["reward"] is not None]
        if len(scored) < self.num_initial:
            return [int(self.rng.integers(n)) for n in self.space.num_choices]
        scored.sort(key=lambda t: -t[0])
        rows = np.array([s[1] for s in scored], dtype=np.int64)
        n_good = max(1, int(np.ceil(self.gamma * len(rows))))
        good, bad = self._densities(rows[:n_good]), self._densities(rows[n_good:])
        cand = np.stack([self.rng.choice(len(p), size=self.num_candidates, p=p) for p in good], axis=1)
        score = sum(np.log(good[j][cand[:, j]]) - np.log(bad[j][cand[:, j]]) for j in range(len(good)))
        seen = set(self.known) | self.pending
        for i in np.argsort(-score, kind="stable"):
            if tuple(int(c) for c in cand[i]) not in seen and self.feasible(cand[i]):
                return [int(c) for c in cand[i]]
        return [int(c) for c in cand[int(np.argmax(score))]]
