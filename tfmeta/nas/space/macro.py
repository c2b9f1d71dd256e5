"""`MacroSpace`: one operation per layer, as in NAS-Bench-Macro.

Example:

>>> space = MacroSpace(num_layers=8)
>>> arch = space.from_key("21222200")
>>> str(arch), space.layer_ops(arch)[:2]
('21222200', ['mbconv_k5_e6', 'mbconv_k3_e3'])
"""

from __future__ import annotations

import numbers
from typing import Sequence

from tfmeta.nas.space.architecture import Architecture, Decision
from tfmeta.nas.space.op_names import MACRO_BENCH_OPS
from tfmeta.nas.space.search_space import SearchSpace


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
        if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive int; received {num_layers!r}.")
        num_layers = int(num_layers)
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
