"""`space_from_config`: rebuilds any built-in or user space from its `get_config()`.

Oracles store their space this way in `oracle.json`, so a resumed or distributed search
rebuilds the same space without pickling.

Example:

>>> space = MacroSpace(num_layers=3)
>>> space_from_config(space.get_config()).names == space.names
True
"""

from __future__ import annotations

from typing import Mapping

from tfmeta.nas.space.architecture import Decision
from tfmeta.nas.space.dense import DenseSpace
from tfmeta.nas.space.layerwise import LayerwiseSpace
from tfmeta.nas.space.macro import MacroSpace
from tfmeta.nas.space.micro import MicroCellSpace
from tfmeta.nas.space.search_space import SearchSpace


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
    if cls == "LayerwiseSpace":
        return LayerwiseSpace(**config)
    if cls == "SearchSpace":
        return SearchSpace(
            [Decision(d["name"], tuple(d["choices"])) for d in config["decisions"]],
            name=config.get("name", "custom"),
            kind=config.get("kind", "generic"),
        )
    raise ValueError(f"`config['class']` must name a known space; received {cls!r}.")
