"""The names of the operations a searched layer or cell node can choose.

Spaces validate and print architectures with these names; the model builders
(`tfmeta.nas.operations`) turn each name into a Keras layer. The names live here, on the
space side, so a space checks its `ops` without importing Keras or the builders.

- `SHORT_OP_NAMES`: every cell operation a `MicroCellSpace` accepts, with the short form
  `str(arch)` prints (`"sep_conv_3x3"` -> `"sep3x3"`).
- `DEFAULT_CELL_OPS`: the ENAS micro search set.
- `MACRO_BENCH_OPS`: NAS-Bench-Macro's three layer choices (digits 0, 1, 2 of its keys).

A new cell operation is registered by giving the builders a factory for it
(`tfmeta.nas.operations.OPS[name] = factory`), which also registers its name here.

Example:

>>> check_cell_ops(["sep_conv_3x3", "identity"])
('sep_conv_3x3', 'identity')
>>> SHORT_OP_NAMES["avg_pool_3x3"]
'avg3x3'
"""

from __future__ import annotations

from typing import Iterable

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


def register_cell_op_name(name: str, short_name: str | None = None) -> None:
    """Makes `name` a valid `MicroCellSpace` operation, printed as `short_name` (default: `name`).

    A name already registered keeps its short form unless `short_name` is given.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string; received {name!r}.")
    if short_name is not None and (not isinstance(short_name, str) or not short_name):
        raise ValueError(f"`short_name` must be a non-empty string or None; received {short_name!r}.")
    if short_name is not None or name not in SHORT_OP_NAMES:
        SHORT_OP_NAMES[name] = short_name or name


def check_cell_ops(ops: Iterable[str]) -> tuple[str, ...]:
    """Returns `ops` as a tuple; raises ValueError when it is empty or names an unknown operation."""
    ops = tuple(ops)
    unknown = [o for o in ops if o not in SHORT_OP_NAMES]
    if not ops or unknown:
        raise ValueError(f"`ops` must be names from {sorted(SHORT_OP_NAMES)}; received unknown {unknown or ops}.")
    return ops
