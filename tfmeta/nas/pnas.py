"""`PNASStrategy`: Progressive Neural Architecture Search (Liu et al. 2018) for any space.

PNAS grows architectures one *block* at a time. Level 1 evaluates every architecture with
only the first block decided; at level b+1 every evaluated level-b architecture of the beam is
expanded by every choice of block b+1, a predictor trained on all results so far
(`ArchitecturePredictor`) ranks the expansions, and only the `beam_size` best are evaluated.

Partial architectures. A strategy proposes complete architectures, so the undecided blocks
are filled with a neutral default (`progressive_blocks(space)`):

- `MacroSpace`: a block is one layer, grown from the input side; the undecided layers are
  the identity operation, so a level-L architecture *is* the L-layer network (the macro
  analogue of PNAS's smaller cells).
- `MicroCellSpace`: a block is node i of the normal and of the reduction cell (PNAS searches
  one cell; this space searches both, grown together). An undecided node reads the previous
  node on both inputs through `identity` (node 0: the cell input h[k-1]), so it only rescales
  what the decided nodes compute.
- `SpaceWithHyperparameters`: the architecture's blocks, then one block of every training
  hyperparameter (their first values until then).
- Any other space: a block is one decision, filled with its first choice.

After the last level every decision is set; with budget left, PNAS keeps refining: the
one-decision mutations of the `beam_size` best architectures are ranked by the predictor and
the best `beam_size` are evaluated, level after level.

The level, the beam and the queue of the level are part of the JSON state (with the history
and RNG), so a resumed search continues the same level.

Example:

>>> from tfmeta.nas.space import MacroSpace
>>> s = PNASStrategy(MacroSpace(num_layers=3), beam_size=2, seed=0)
>>> [str(s.propose()) for _ in range(3)]   # level 1: the first layer's 3 choices
['000', '100', '200']
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tfmeta.nas.guided import fitted_predictor, mutations
from tfmeta.nas.space import MacroSpace, MicroCellSpace, SearchSpace, SpaceWithHyperparameters
from tfmeta.nas.strategies import Strategy


def progressive_blocks(space: SearchSpace) -> tuple[list[list[int]], Callable[[list[int], int], list[int]]]:
    """How PNAS grows a space: `(blocks, fill)`.

    `blocks[b]` holds the decision positions of block b; `fill(indices, b)` returns `indices`
    with every block from `b` on set to its neutral default (see the module docstring).
    """
    names = list(space.names)
    if isinstance(space, SpaceWithHyperparameters):  # the architecture first, the hyperparameters last
        base_blocks, base_fill = progressive_blocks(space.base)
        n = len(space.base)

        def fill(indices, b):
            filled = base_fill(list(indices[:n]), b)
            return filled + [c if b > len(base_blocks) else 0 for c in indices[n:]]

        return [*base_blocks, list(space.hyperparameter_positions)], fill
    if isinstance(space, MacroSpace):
        zero = space.ops.index("identity") if "identity" in space.ops else 0
        blocks = [[i] for i in range(len(names))]

        def fill(indices, b):
            return [c if i < b else zero for i, c in enumerate(indices)]

        return blocks, fill
    if isinstance(space, MicroCellSpace):
        ident = space.decisions[names.index("normal/node0/op0")].choices
        ident = ident.index("identity") if "identity" in ident else 0
        blocks = [[names.index(f"{cell}/node{i}/{d}") for cell in ("normal", "reduce")
                   for d in ("in0", "in1", "op0", "op1")] for i in range(space.num_nodes)]

        def fill(indices, b):
            out = list(indices)
            for i in range(b, space.num_nodes):
                for cell in ("normal", "reduce"):
                    src = 1 if i == 0 else i + 1  # h[k-1] for node 0, else the previous node
                    out[names.index(f"{cell}/node{i}/in0")] = src
                    out[names.index(f"{cell}/node{i}/in1")] = src
                    out[names.index(f"{cell}/node{i}/op0")] = ident
                    out[names.index(f"{cell}/node{i}/op1")] = ident
            return out

        return blocks, fill
    blocks = [[i] for i in range(len(names))]

    def fill(indices, b):
        return [c if i < b else 0 for i, c in enumerate(indices)]

    return blocks, fill


class PNASStrategy(Strategy):
    """Progressive search: grow one block per level, the predictor picks the expansions.

    Args:
        space: The search space (see `progressive_blocks` for how each space grows).
        beam_size: K, architectures evaluated per level (and kept in the beam).
        max_initial: Level-1 architectures evaluated at most (a random subset when block 1
            has more choices).
        max_expansions: Expansions scored per level at most (a random subset beyond).
        predictor_kwargs: `ArchitecturePredictor` arguments.
        seed: Random seed.
    """

    name = "pnas"

    def __init__(self, space: SearchSpace, beam_size: int = 10, max_initial: int = 64, max_expansions: int = 5000,
                 predictor_kwargs: dict | None = None, seed: int | None = None, **kwargs):
        super().__init__(space, seed=seed, **kwargs)
        for arg, value in (("beam_size", beam_size), ("max_initial", max_initial), ("max_expansions", max_expansions)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be a positive int; received {value!r}.")
        self.beam_size = beam_size
        self.max_initial = max_initial
        self.max_expansions = max_expansions
        self.predictor_kwargs = dict(predictor_kwargs or {})
        self.blocks, self.fill = progressive_blocks(space)
        self.level = 0  # blocks decided by the architectures of the current level
        self.level_archs: list[tuple] = []  # proposed at the current level
        self.level_queue: list[tuple] = []  # still to propose at the current level
        self.levels: list[dict] = []  # per level: blocks decided, candidates scored, evaluated

    # -- growing -------------------------------------------------------------------------
    def _expand(self, indices: tuple, block: int) -> list[tuple]:
        out = [list(indices)]
        for pos in self.blocks[block]:
            out = [o[:pos] + [c] + o[pos + 1:] for o in out for c in range(self.space.num_choices[pos])]
        return [tuple(o) for o in out]

    def _scored(self, archs) -> list[tuple]:
        """`archs` with a reward, best first."""
        rewards = [(self.known.get(a), a) for a in archs]
        return [a for r, a in sorted((t for t in rewards if t[0] is not None), key=lambda t: -t[0])]

    def _next_level(self) -> None:
        seen = set(self.known) | self.pending
        if self.level == 0:
            base = tuple(self.fill([0] * len(self.space), 0))
            candidates = self._expand(base, 0)
            self.level = 1
        else:
            beam = self._scored(self.level_archs)[: self.beam_size]
            if not beam:  # nothing of this level scored (all failed): widen to the best overall
                beam = self._scored(self.known)[: self.beam_size]
            candidates = set()
            if self.level < len(self.blocks):
                for arch in beam:
                    candidates.update(tuple(self.fill(list(e), self.level + 1))
                                      for e in self._expand(arch, self.level))
                self.level += 1
            else:  # every block decided: refine the best architectures found
                for arch in self._scored(self.known)[: self.beam_size]:
                    candidates.update(mutations(self.space, arch))
                self.level += 1
            candidates = sorted(candidates)
        candidates = [c for c in dict.fromkeys(candidates) if c not in seen and self.feasible(c)]
        limit = self.max_initial if self.level == 1 else self.max_expansions
        if len(candidates) > limit:
            picks = self.rng.choice(len(candidates), size=limit, replace=False)
            candidates = [candidates[i] for i in sorted(picks)]
        predictor = fitted_predictor(self, **self.predictor_kwargs) if self.level > 1 else None
        if predictor is not None and len(candidates) > self.beam_size:
            mean, _ = predictor.predict(candidates)
            chosen = [candidates[i] for i in np.argsort(-mean, kind="stable")[: self.beam_size]]
        else:
            chosen = candidates if self.level == 1 else candidates[: self.beam_size]
        self.levels.append({"level": self.level, "blocks_decided": min(self.level, len(self.blocks)),
                            "candidates": len(candidates), "evaluated": len(chosen)})
        self.level_archs = list(chosen)
        self.level_queue = list(chosen)

    def _propose(self) -> list[int]:
        for _ in range(len(self.blocks) + 3):
            if self.level_queue:
                return list(self.level_queue.pop(0))
            self._next_level()
        return [int(self.rng.integers(n)) for n in self.space.num_choices]

    # -- state -----------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {**super().get_state(), "level": self.level, "levels": self.levels,
                "level_archs": [list(a) for a in self.level_archs],
                "level_queue": [list(a) for a in self.level_queue]}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.level = int(state["level"])
        self.levels = [dict(x) for x in state["levels"]]
        self.level_archs = [tuple(a) for a in state["level_archs"]]
        self.level_queue = [tuple(a) for a in state["level_queue"]]
