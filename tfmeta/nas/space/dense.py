"""`DenseSpace`: dense blocks for tabular data, per layer a width (0 = skip) and a dropout rate.

Example:

>>> space = DenseSpace(num_layers=2, units=(0, 32), dropout=(0.0, 0.5))
>>> space.layers(space.decode([1, 1, 0, 0]))
[(32, 0.5), (0, 0.0)]
"""

from __future__ import annotations

import numbers
from typing import Sequence

from tfmeta.nas.space.architecture import Architecture, Decision
from tfmeta.nas.space.search_space import SearchSpace


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
        if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive int; received {num_layers!r}.")
        num_layers = int(num_layers)
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
