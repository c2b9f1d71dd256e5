"""Search spaces and the JSON-serialisable `Architecture` value.

A search space is an ordered list of categorical `Decision`s. An architecture is one choice
per decision. Every strategy in `tfmeta.nas` (controller RNN, regularized evolution, random
search) works on this one representation, so any space works with any strategy.

Modules (import the names from here):

- `architecture`: `Decision` and `Architecture` (frozen, hashable, JSON round trip, readable
  `str`).
- `search_space`: `SearchSpace`, the base: encoding, sampling, mutation, KerasTuner bridge.
  User spaces are a `SearchSpace` of their own decisions.
- `macro`: `MacroSpace`, one operation per layer (NAS-Bench-Macro: 8 layers, 3 choices).
- `micro`: `MicroCellSpace`, the NASNet / ENAS cells (a normal and a reduction cell).
- `dense`: `DenseSpace`, dense blocks for tables (per layer a width or a skip, and a dropout).
- `layerwise`: `LayerwiseSpace`, Zoph & Le's layer-by-layer space (filter shape, count, stride,
  skip connections to any earlier layer).
- `op_names`: the operation names spaces accept (`DEFAULT_CELL_OPS`, `SHORT_OP_NAMES`,
  `MACRO_BENCH_OPS`); the Keras layers behind them are in `tfmeta.nas.operations`.
- `config`: `space_from_config`, a space back from its `get_config()`.

Example:

>>> import numpy as np
>>> from tfmeta.nas.space import MacroSpace
>>> space = MacroSpace(num_layers=8)
>>> arch = space.sample(np.random.default_rng(0))
>>> space.decode(space.encode(arch)) == arch
True
>>> str(space.decode([2, 1, 2, 2, 2, 2, 0, 0]))
'21222200'
"""

from tfmeta.nas.space.op_names import DEFAULT_CELL_OPS, MACRO_BENCH_OPS, SHORT_OP_NAMES
from tfmeta.nas.space.architecture import Architecture, Decision, Scalar
from tfmeta.nas.space.search_space import SearchSpace
from tfmeta.nas.space.macro import MacroSpace
from tfmeta.nas.space.micro import MicroCellSpace
from tfmeta.nas.space.dense import DenseSpace
from tfmeta.nas.space.layerwise import LayerwiseSpace
from tfmeta.nas.space.config import space_from_config
from tfmeta.nas.space.hyperparameters import SpaceWithHyperparameters

__all__ = [
    "Architecture",
    "DEFAULT_CELL_OPS",
    "Decision",
    "DenseSpace",
    "LayerwiseSpace",
    "MACRO_BENCH_OPS",
    "MacroSpace",
    "MicroCellSpace",
    "SHORT_OP_NAMES",
    "Scalar",
    "SearchSpace",
    "SpaceWithHyperparameters",
    "space_from_config",
]
