"""`MicroCellSpace`: the NASNet / ENAS micro cell space (a normal and a reduction cell).

A cell has `num_nodes` (B) nodes; node i picks two inputs among the two cell inputs
(0 = h[k-2], 1 = h[k-1]) and the earlier nodes (2 .. i+1), and one operation for each input
from `ops`. A normal and a reduction cell are searched together. Decisions per node, in
controller order: `in0, in1, op0, op1`. `tfmeta.nas.cells.build_cell_model` stacks the cells
into a network.

Example:

>>> space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))
>>> str(space.decode([0] * len(space)))
'normal[0:sep3x3+0:sep3x3 0:sep3x3+0:sep3x3] reduce[0:sep3x3+0:sep3x3 0:sep3x3+0:sep3x3]'
"""

from __future__ import annotations

import numbers
from typing import Sequence

from tfmeta.nas.space.architecture import Architecture, Decision
from tfmeta.nas.space.op_names import DEFAULT_CELL_OPS, check_cell_ops
from tfmeta.nas.space.search_space import SearchSpace


class MicroCellSpace(SearchSpace):
    """The NASNet / ENAS micro cell space (a normal and a reduction cell).

    Node i (0-based) of a cell reads two inputs among `0` (the cell input h[k-2]), `1` (h[k-1])
    and `2 .. i+1` (earlier nodes), applies one operation to each and adds the results. The
    cell output concatenates the nodes no other node reads (the "loose ends").

    Args:
        num_nodes: B, nodes per cell (5 in ENAS).
        ops: Operation names (`tfmeta.nas.space.op_names.SHORT_OP_NAMES`; each built by
            `tfmeta.nas.operations.OPS`).
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
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, numbers.Integral) or num_nodes < 1:
            raise ValueError(f"`num_nodes` must be a positive int; received {num_nodes!r}.")
        num_nodes = int(num_nodes)
        ops = check_cell_ops(ops)
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
