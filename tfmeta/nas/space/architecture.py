"""`Decision` and `Architecture`: the choices of a search space and one point in it.

A search space is an ordered list of categorical `Decision`s; an `Architecture` is one choice
per decision. It is a frozen, hashable value: the space name and one choice label per
decision. `arch.to_json()` / `Architecture.from_json()` round-trip through plain JSON, and
`str(arch)` is a readable form: the NAS-Bench-Macro key (`"21222200"`) for a macro space, an
ENAS-like node list for cells (`"normal[0:sep3x3+1:id ...] reduce[...]"`), the layer widths
for dense blocks (`"dense[32(d0.5)-skip]"`).

Every strategy in `tfmeta.nas` works on this one representation, so any space works with any
strategy, and an architecture found by a search is stored, logged and rebuilt from its JSON.

Example:

>>> arch = Architecture("toy", ("units", "act"), (64, "relu"))
>>> Architecture.from_json(arch.to_json()) == arch
True
>>> str(arch), arch["units"]
('units=64, act=relu', 64)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from tfmeta.nas.space.op_names import SHORT_OP_NAMES

Scalar = Any  # a JSON scalar: int, float, str, bool or None


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


def register_formatter(kind: str, format_fn) -> None:
    """Makes `str(arch)` use `format_fn(arch) -> str` for architectures of `kind`."""
    if not isinstance(kind, str) or not kind or not callable(format_fn):
        raise ValueError(f"`kind` must be a non-empty string and `format_fn` callable; received {kind!r}, {format_fn!r}.")
    _FORMATTERS[kind] = format_fn
