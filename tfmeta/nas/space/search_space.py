"""`SearchSpace`: an ordered list of categorical decisions, and everything strategies do with it.

Encoding (choice indices <-> `Architecture`), validation, uniform sampling, one-decision
mutation, enumeration and the KerasTuner bridge (one `hp.Int` per decision) are written once
here; the built-in spaces (`MacroSpace`, `MicroCellSpace`, `DenseSpace`) only choose their
decisions. Your own space is a `SearchSpace` built from `Decision`s.

Example:

>>> space = SearchSpace([Decision("units", (32, 64)), Decision("act", ("relu", "gelu"))], name="mlp")
>>> arch = space.decode([1, 0])
>>> str(arch), space.encode(arch), space.size
('units=64, act=relu', [1, 0], 4)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from tfmeta.nas.space.architecture import Architecture, Decision, Scalar


class SearchSpace:
    """A search space: an ordered list of categorical decisions.

    Subclasses only set `decisions` (and usually `kind`); encoding, decoding, sampling,
    mutation and the KerasTuner bridge are shared. Users write their own spaces by passing
    decisions directly.

    Args:
        decisions: The decisions, in the order the controller emits them.
        name: The space name stored in every `Architecture`.
        kind: The printing style of its architectures (see `Architecture`).

    Example:

    >>> space = SearchSpace([Decision("units", (32, 64)), Decision("act", ("relu", "gelu"))],
    ...                     name="mlp")
    >>> arch = space.decode([1, 0])
    >>> str(arch), space.encode(arch)
    ('units=64, act=relu', [1, 0])
    """

    def __init__(self, decisions: Sequence[Decision], name: str = "custom", kind: str = "generic"):
        decisions = list(decisions)
        if not decisions:
            raise ValueError("`decisions` must hold at least one Decision; received an empty list.")
        for d in decisions:
            if not isinstance(d, Decision):
                raise ValueError(f"`decisions` must hold Decision objects; received {d!r}.")
        names = [d.name for d in decisions]
        if len(set(names)) != len(names):
            raise ValueError(f"Decision names must be unique; received {names}.")
        self.decisions: list[Decision] = decisions
        self.name = name
        self.kind = kind

    # -- description -------------------------------------------------------------------
    @property
    def names(self) -> tuple:
        return tuple(d.name for d in self.decisions)

    @property
    def num_choices(self) -> list[int]:
        """The number of choices of each decision (what the controller's softmaxes emit)."""
        return [d.num_choices for d in self.decisions]

    @property
    def size(self) -> int:
        """The number of distinct architectures (product of the choice counts)."""
        return math.prod(self.num_choices)

    def __len__(self) -> int:
        return len(self.decisions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, decisions={len(self)}, size={self.size})"

    def get_config(self) -> dict:
        return {
            "class": "SearchSpace",
            "name": self.name,
            "kind": self.kind,
            "decisions": [{"name": d.name, "choices": list(d.choices)} for d in self.decisions],
        }

    # -- encoding ----------------------------------------------------------------------
    def decode(self, indices: Sequence[int]) -> Architecture:
        """Choice indices (one per decision) -> `Architecture`."""
        indices = [int(i) for i in indices]
        if len(indices) != len(self.decisions):
            raise ValueError(
                f"`indices` must have {len(self.decisions)} entries for space {self.name!r}; "
                f"received {len(indices)}."
            )
        values = []
        for d, i in zip(self.decisions, indices):
            if not 0 <= i < d.num_choices:
                raise ValueError(
                    f"Index for decision {d.name!r} must be in [0, {d.num_choices}); received {i}."
                )
            values.append(d.choices[i])
        return Architecture(self.name, self.names, tuple(values), self.kind)

    def encode(self, arch: Architecture) -> list[int]:
        """`Architecture` -> choice indices (one per decision)."""
        self.validate(arch)
        return [d.index(v) for d, v in zip(self.decisions, arch.values)]

    def validate(self, arch: Architecture) -> Architecture:
        if not isinstance(arch, Architecture):
            raise ValueError(f"`arch` must be an Architecture; received {type(arch).__name__}.")
        if arch.names != self.names:
            raise ValueError(
                f"`arch` does not belong to space {self.name!r}: expected decisions "
                f"{list(self.names)[:4]}...; received {list(arch.names)[:4]}..."
            )
        for d, v in zip(self.decisions, arch.values):
            d.index(v)
        return arch

    def from_dict(self, values: Mapping[str, Scalar]) -> Architecture:
        """`{decision name: label}` -> `Architecture` (all decisions required)."""
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ValueError(f"`values` is missing decisions {missing[:5]} of space {self.name!r}.")
        return self.decode([d.index(values[d.name]) for d in self.decisions])

    def from_string(self, text: str) -> Architecture:
        """Parses `str(arch)` back for macro spaces; JSON (`arch.to_json()`) for every space."""
        text = text.strip()
        if text.startswith("{"):
            return self.validate(Architecture.from_json(text))
        raise ValueError(f"`text` must be the JSON form of an architecture; received {text[:40]!r}.")

    def controller_attention(self) -> dict[int, int] | None:
        """`{decision index: anchor decision index}` for decisions the controller RNN gives by
        anchor-point attention (`tfmeta.nas.controller`), or None: a softmax head each."""
        return None

    # -- KerasTuner bridge -------------------------------------------------------------
    def hp_values(self, arch: Architecture) -> dict[str, int]:
        """`{decision name: choice index}`: how architectures travel in KerasTuner trials."""
        return dict(zip(self.names, self.encode(arch)))

    def declare(self, hp) -> None:
        """Registers one `hp.Int(name, 0, n-1)` per decision in a KerasTuner `HyperParameters`."""
        for d in self.decisions:
            hp.Int(d.name, 0, d.num_choices - 1, default=0)

    def from_hp(self, hp) -> Architecture:
        """Reads (declaring if needed) the decisions from KerasTuner hyperparameters."""
        return self.decode([hp.Int(d.name, 0, d.num_choices - 1, default=0) for d in self.decisions])

    def from_hp_values(self, values: Mapping[str, Any]) -> Architecture:
        return self.decode([int(values[n]) for n in self.names])

    # -- sampling and mutation ---------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture."""
        return self.decode([int(rng.integers(n)) for n in self.num_choices])

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Changes one decision (with at least two choices) to a different value.

        Real et al. (2019) mutate either an operation or a hidden-state input of one node; with
        decisions being exactly those, one random decision is changed.
        """
        idx = self.encode(arch)
        mutable = [i for i, n in enumerate(self.num_choices) if n > 1]
        if not mutable:
            return arch
        i = mutable[int(rng.integers(len(mutable)))]
        new = int(rng.integers(self.num_choices[i] - 1))
        idx[i] = new if new < idx[i] else new + 1
        return self.decode(idx)

    def enumerate(self) -> Iterable[Architecture]:
        """Every architecture (only sensible for small spaces)."""
        for flat in range(self.size):
            idx = []
            for n in reversed(self.num_choices):
                idx.append(flat % n)
                flat //= n
            yield self.decode(idx[::-1])
