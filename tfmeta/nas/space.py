"""Search spaces and the JSON-serialisable `Architecture` value.

A search space is an ordered list of categorical `Decision`s. An architecture is one choice
per decision. Every strategy in `tfmeta.nas` (controller RNN, regularized evolution, random
search) works on this one representation, so any space works with any strategy:

- `MicroCellSpace`: the NASNet / ENAS micro space. A cell has `num_nodes` (B) nodes; node i
  picks two inputs among the two cell inputs (0 = h[k-2], 1 = h[k-1]) and the earlier nodes
  (2 .. i+1), and one operation for each input from `ops`. A normal and a reduction cell are
  searched together. Decisions per node, in controller order: `in0, in1, op0, op1`.
- `MacroSpace`: one operation per layer (NAS-Bench-Macro: 8 layers, 3 choices each).
- `DenseSpace`: dense blocks for tables: per layer a width (0 = identity/skip) and a dropout.
- `SearchSpace`: user spaces, a list of `Decision(name, choices)`.

An `Architecture` is a frozen, hashable value: the space name and one choice label per
decision. `arch.to_json()` / `Architecture.from_json()` round-trip through plain JSON and
`str(arch)` is a readable form (`"21222200"` for a macro space, an ENAS-like cell list for
cells).

Example:

>>> space = MacroSpace(num_layers=8)
>>> arch = space.sample(np.random.default_rng(0))
>>> space.decode(space.encode(arch)) == arch
True
>>> str(space.decode([2, 1, 2, 2, 2, 2, 0, 0]))
'21222200'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

Scalar = Any  # a JSON scalar: int, float, str, bool or None

DEFAULT_CELL_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
SHORT_OP_NAMES = {
    "sep_conv_3x3": "sep3x3",
    "sep_conv_5x5": "sep5x5",
    "avg_pool_3x3": "avg3x3",
    "max_pool_3x3": "max3x3",
    "identity": "id",
    "conv_3x3": "conv3x3",
    "conv_1x1": "conv1x1",
    "dil_conv_3x3": "dil3x3",
}
MACRO_BENCH_OPS = ("identity", "mbconv_k3_e3", "mbconv_k5_e6")


@dataclass(frozen=True)
class Decision:
    """One categorical decision of a search space.

    Args:
        name: Unique name inside its space, e.g. `"normal/node0/op0"`.
        choices: The labels to choose from (JSON scalars), e.g. `("sep_conv_3x3", "identity")`.

    Example:

    >>> Decision("units", (0, 32, 64)).num_choices
    3
    """

    name: str
    choices: tuple

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string; received {self.name!r}.")
        choices = tuple(self.choices)
        if len(choices) < 1:
            raise ValueError(
                f"`choices` of decision {self.name!r} must hold at least one value; received {choices!r}."
            )
        if len(set(map(_hashable, choices))) != len(choices):
            raise ValueError(f"`choices` of decision {self.name!r} must be distinct; received {choices!r}.")
        for c in choices:
            if not isinstance(c, (int, float, str, bool)) and c is not None:
                raise ValueError(
                    f"`choices` of decision {self.name!r} must be JSON scalars; received {c!r}."
                )
        object.__setattr__(self, "choices", choices)

    @property
    def num_choices(self) -> int:
        return len(self.choices)

    def index(self, label: Scalar) -> int:
        for i, c in enumerate(self.choices):
            if _hashable(c) == _hashable(label):
                return i
        raise ValueError(
            f"Value for decision {self.name!r} must be one of {list(self.choices)}; received {label!r}."
        )


def _hashable(value):
    return (type(value).__name__ if isinstance(value, bool) else "n" if isinstance(value, (int, float)) else type(value).__name__, value)


@dataclass(frozen=True)
class Architecture:
    """One point of a search space: a plain, hashable, JSON-serialisable value.

    Attributes:
        space: The name of the space it belongs to (e.g. `"macro8"`, `"micro"`).
        names: The decision names, in space order.
        values: One choice label per decision.
        kind: How to print it: `"macro"`, `"cell"`, `"dense"` or `"generic"`.

    Example:

    >>> a = Architecture("toy", ("units",), (64,))
    >>> Architecture.from_json(a.to_json()) == a
    True
    >>> str(a)
    'units=64'
    """

    space: str
    names: tuple
    values: tuple
    kind: str = field(default="generic")

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "values", tuple(self.values))
        if len(self.names) != len(self.values):
            raise ValueError(
                f"`values` must have one entry per name ({len(self.names)}); received {len(self.values)}."
            )

    def __getitem__(self, name: str) -> Scalar:
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def as_dict(self) -> dict:
        """`{decision name: choice label}` in space order."""
        return dict(zip(self.names, self.values))

    def to_json(self) -> str:
        """A compact JSON string; `Architecture.from_json` reads it back."""
        return json.dumps(self.get_config(), separators=(",", ":"))

    def get_config(self) -> dict:
        return {"space": self.space, "kind": self.kind, "values": self.as_dict()}

    @classmethod
    def from_config(cls, config: Mapping) -> "Architecture":
        values = dict(config["values"])
        return cls(config["space"], tuple(values), tuple(values.values()), config.get("kind", "generic"))

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        return cls.from_config(json.loads(text))

    def __str__(self) -> str:
        return _FORMATTERS.get(self.kind, _format_generic)(self)


def _format_generic(arch: Architecture) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(arch.names, arch.values))


def _format_macro(arch: Architecture) -> str:
    # The NAS-Bench-Macro key form: one digit (the choice index = label) per layer.
    return "".join(str(v) for v in arch.values)


def _format_cell(arch: Architecture) -> str:
    d = arch.as_dict()
    parts = []
    for cell in ("normal", "reduce"):
        nodes = []
        i = 0
        while f"{cell}/node{i}/in0" in d:
            p = f"{cell}/node{i}/"
            nodes.append(
                f"{d[p + 'in0']}:{SHORT_OP_NAMES.get(d[p + 'op0'], d[p + 'op0'])}"
                f"+{d[p + 'in1']}:{SHORT_OP_NAMES.get(d[p + 'op1'], d[p + 'op1'])}"
            )
            i += 1
        if nodes:
            parts.append(f"{cell}[{' '.join(nodes)}]")
    return " ".join(parts)


def _format_dense(arch: Architecture) -> str:
    d = arch.as_dict()
    layers = []
    i = 0
    while f"layer{i}/units" in d:
        u = d[f"layer{i}/units"]
        drop = d.get(f"layer{i}/dropout", 0.0)
        layers.append("skip" if u == 0 else (f"{u}" + (f"(d{drop:g})" if drop else "")))
        i += 1
    return "dense[" + "-".join(layers) + "]"


_FORMATTERS = {"macro": _format_macro, "cell": _format_cell, "dense": _format_dense, "generic": _format_generic}


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


class MacroSpace(SearchSpace):
    """One operation per layer, as in NAS-Bench-Macro.

    The label of each choice is its digit (0 .. len(ops)-1) and `space.ops[digit]` is the
    operation, so `str(arch)` is the NAS-Bench-Macro key, e.g. `"21222200"`
    (`space.layer_ops(arch)` gives the operation names).

    Args:
        num_layers: Searchable layers (8 in NAS-Bench-Macro).
        ops: Operation names per layer; default `("identity", "mbconv_k3_e3", "mbconv_k5_e6")`
            (digits 0, 1, 2 of the benchmark keys).
        name: Space name.

    Example:

    >>> MacroSpace().size
    6561
    """

    def __init__(self, num_layers: int = 8, ops: Sequence[str] = MACRO_BENCH_OPS, name: str | None = None):
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive int; received {num_layers!r}.")
        ops = tuple(ops)
        if len(ops) > 10:
            raise ValueError(f"`ops` must hold at most 10 operations (one digit each); received {len(ops)}.")
        self.num_layers = num_layers
        self.ops = ops
        super().__init__(
            [Decision(f"layer{i}", tuple(range(len(ops)))) for i in range(num_layers)],
            name=name or f"macro{num_layers}",
            kind="macro",
        )

    def layer_ops(self, arch: Architecture) -> list[str]:
        """The operation name of each layer."""
        return [self.ops[i] for i in self.encode(arch)]

    def key(self, arch: Architecture) -> str:
        """The NAS-Bench-Macro key: one digit (choice index) per layer."""
        return "".join(str(i) for i in self.encode(arch))

    def from_key(self, key: str) -> Architecture:
        """Parses a NAS-Bench-Macro key such as `"21222200"`."""
        if not isinstance(key, str) or len(key) != self.num_layers or not key.isdigit():
            raise ValueError(
                f"`key` must be a string of {self.num_layers} digits; received {key!r}."
            )
        return self.decode([int(c) for c in key])

    def from_string(self, text: str) -> Architecture:
        text = text.strip()
        if text.isdigit():
            return self.from_key(text)
        return super().from_string(text)

    def get_config(self) -> dict:
        return {"class": "MacroSpace", "num_layers": self.num_layers, "ops": list(self.ops), "name": self.name}


class MicroCellSpace(SearchSpace):
    """The NASNet / ENAS micro cell space (a normal and a reduction cell).

    Node i (0-based) of a cell reads two inputs among `0` (the cell input h[k-2]), `1` (h[k-1])
    and `2 .. i+1` (earlier nodes), applies one operation to each and adds the results. The
    cell output concatenates the nodes no other node reads (the "loose ends").

    Args:
        num_nodes: B, nodes per cell (5 in ENAS).
        ops: Operation names (see `tfmeta.nas.cells.OPS`).
        reduction: Also search the reduction cell (default); if False only a normal cell is
            searched and reductions use the same cell with stride 2.
        name: Space name.

    Example:

    >>> space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))
    >>> len(space), space.num_choices[:4]
    (16, [2, 2, 2, 2])
    """

    def __init__(
        self,
        num_nodes: int = 5,
        ops: Sequence[str] = DEFAULT_CELL_OPS,
        reduction: bool = True,
        name: str = "micro",
    ):
        if not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"`num_nodes` must be a positive int; received {num_nodes!r}.")
        ops = tuple(ops)
        from tfmeta.nas.cells import OPS  # validates op names against the builder's registry

        unknown = [o for o in ops if o not in OPS]
        if not ops or unknown:
            raise ValueError(f"`ops` must be names from {sorted(OPS)}; received unknown {unknown or ops}.")
        self.num_nodes = num_nodes
        self.ops = ops
        self.reduction = bool(reduction)
        decisions = []
        for cell in ("normal", "reduce") if reduction else ("normal",):
            for i in range(num_nodes):
                inputs = tuple(range(i + 2))
                decisions += [
                    Decision(f"{cell}/node{i}/in0", inputs),
                    Decision(f"{cell}/node{i}/in1", inputs),
                    Decision(f"{cell}/node{i}/op0", ops),
                    Decision(f"{cell}/node{i}/op1", ops),
                ]
        super().__init__(decisions, name=name, kind="cell")

    def cell(self, arch: Architecture, which: str = "normal") -> list[tuple[int, str, int, str]]:
        """The nodes of one cell as `[(in0, op0, in1, op1), ...]`."""
        if which not in ("normal", "reduce"):
            raise ValueError(f"`which` must be 'normal' or 'reduce'; received {which!r}.")
        if which == "reduce" and not self.reduction:
            which = "normal"
        d = self.validate(arch).as_dict()
        return [
            (d[f"{which}/node{i}/in0"], d[f"{which}/node{i}/op0"], d[f"{which}/node{i}/in1"], d[f"{which}/node{i}/op1"])
            for i in range(self.num_nodes)
        ]

    def get_config(self) -> dict:
        return {
            "class": "MicroCellSpace",
            "num_nodes": self.num_nodes,
            "ops": list(self.ops),
            "reduction": self.reduction,
            "name": self.name,
        }


class DenseSpace(SearchSpace):
    """Dense blocks for tabular data: per layer a width (0 = identity/skip) and a dropout.

    Args:
        num_layers: Searchable layers.
        units: Width choices; `0` means the layer is skipped (identity).
        dropout: Dropout choices per layer.
        name: Space name.

    Example:

    >>> space = DenseSpace(num_layers=2, units=(0, 32), dropout=(0.0, 0.5))
    >>> str(space.decode([1, 1, 0, 0]))
    'dense[32(d0.5)-skip]'
    """

    def __init__(
        self,
        num_layers: int = 3,
        units: Sequence[int] = (0, 32, 64, 128, 256),
        dropout: Sequence[float] = (0.0, 0.25, 0.5),
        name: str = "dense",
    ):
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive int; received {num_layers!r}.")
        units = tuple(int(u) for u in units)
        if not units or min(units) < 0:
            raise ValueError(f"`units` must be non-negative ints; received {units!r}.")
        dropout = tuple(float(p) for p in dropout)
        if not dropout or any(not 0.0 <= p < 1.0 for p in dropout):
            raise ValueError(f"`dropout` must be rates in [0, 1); received {dropout!r}.")
        self.num_layers, self.units, self.dropout = num_layers, units, dropout
        decisions = []
        for i in range(num_layers):
            decisions += [Decision(f"layer{i}/units", units), Decision(f"layer{i}/dropout", dropout)]
        super().__init__(decisions, name=name, kind="dense")

    def layers(self, arch: Architecture) -> list[tuple[int, float]]:
        """`[(units, dropout), ...]` per layer (units 0 = skipped)."""
        d = self.validate(arch).as_dict()
        return [(d[f"layer{i}/units"], d[f"layer{i}/dropout"]) for i in range(self.num_layers)]

    def get_config(self) -> dict:
        return {
            "class": "DenseSpace",
            "num_layers": self.num_layers,
            "units": list(self.units),
            "dropout": list(self.dropout),
            "name": self.name,
        }


def space_from_config(config: Mapping) -> SearchSpace:
    """Rebuilds a space from `space.get_config()`."""
    config = dict(config)
    cls = config.pop("class", "SearchSpace")
    if cls == "MacroSpace":
        return MacroSpace(**config)
    if cls == "MicroCellSpace":
        return MicroCellSpace(**config)
    if cls == "DenseSpace":
        return DenseSpace(**config)
    if cls == "SearchSpace":
        return SearchSpace(
            [Decision(d["name"], tuple(d["choices"])) for d in config["decisions"]],
            name=config.get("name", "custom"),
            kind=config.get("kind", "generic"),
        )
    raise ValueError(f"`config['class']` must name a known space; received {cls!r}.")
