"""`LayerwiseSpace`: Zoph & Le's (2017) original space, one convolution per layer with skips.

Every layer chooses its filter height, filter width, number of filters and stride, and which
earlier layers feed it. The paper's controller picks those inputs with anchor points (one
sigmoid per earlier layer, content-based attention between the layers' anchor states). Here
each possible connection is one binary decision `layer{i}/input{j}` (1 = layer j feeds layer
i, for every j < i), so every strategy can search the space; the controller RNN gives these
decisions by that anchor-point attention (`controller_attention()`: layer j's anchor is the
step of its last shape decision, `layer{j}/stride`), the other strategies treat them as any
categorical decision.

The model (`build_layerwise_model`, also reached through `tfmeta.nas.builders.build_model`)
follows the paper's rules: a layer concatenates its inputs along the channels, smaller maps
zero-padded to the largest; a layer with no input reads the image; the layers no other layer
reads are concatenated the same way before the classifier. Layer 0 always reads the image.

Example:

>>> space = LayerwiseSpace(num_layers=3)
>>> arch = space.sample(np.random.default_rng(0))
>>> space.decode(space.encode(arch)) == arch
True
>>> space.inputs(space.from_dict({**arch.as_dict(), "layer2/input0": 1, "layer2/input1": 0}))[2]
[0]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfmeta.nas.space.architecture import Architecture, Decision, register_formatter
from tfmeta.nas.space.search_space import SearchSpace

#: The paper's CIFAR-10 choices (section 4.1), stride 1 or 2 as in its strided experiment.
FILTER_SIZES = (1, 3, 5, 7)
FILTER_COUNTS = (24, 36, 48, 64)
STRIDES = (1, 2)


def _check_ints(name: str, values) -> tuple:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ValueError(f"`{name}` must be positive ints; received {values!r}.")
    return tuple(int(v) for v in values)


class LayerwiseSpace(SearchSpace):
    """Zoph & Le's layer-by-layer convolutional space (filter shape, count, stride, skips).

    Decisions per layer i, in controller order: `layer{i}/height`, `layer{i}/width`,
    `layer{i}/filters`, `layer{i}/stride`, then `layer{i}/input{j}` in {0, 1} for j < i.

    Args:
        num_layers: Convolutional layers (15 in the paper's first CIFAR-10 model).
        filter_heights, filter_widths: Kernel size choices.
        filter_counts: Number-of-filters choices.
        strides: Stride choices (`(1,)` fixes the stride, as the paper's first experiment).
        name: Space name.

    Example:

    >>> LayerwiseSpace(num_layers=2, strides=(1,)).num_choices
    [4, 4, 4, 1, 4, 4, 4, 1, 2]
    """

    def __init__(self, num_layers: int = 6, filter_heights: Sequence[int] = FILTER_SIZES,
                 filter_widths: Sequence[int] = FILTER_SIZES, filter_counts: Sequence[int] = FILTER_COUNTS,
                 strides: Sequence[int] = STRIDES, name: str = "layerwise"):
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive int; received {num_layers!r}.")
        self.num_layers = int(num_layers)
        self.filter_heights = _check_ints("filter_heights", filter_heights)
        self.filter_widths = _check_ints("filter_widths", filter_widths)
        self.filter_counts = _check_ints("filter_counts", filter_counts)
        self.strides = _check_ints("strides", strides)
        decisions = []
        for i in range(self.num_layers):
            decisions += [
                Decision(f"layer{i}/height", self.filter_heights),
                Decision(f"layer{i}/width", self.filter_widths),
                Decision(f"layer{i}/filters", self.filter_counts),
                Decision(f"layer{i}/stride", self.strides),
            ]
            decisions += [Decision(f"layer{i}/input{j}", (0, 1)) for j in range(i)]
        super().__init__(decisions, name=name, kind="layerwise")

    def controller_attention(self) -> dict[int, int]:
        """`{index of layer{i}/input{j}: index of layer{j}/stride}`: the connection decisions,
        each attending to the anchor point of the layer it would read."""
        index = {name: t for t, name in enumerate(self.names)}
        return {index[f"layer{i}/input{j}"]: index[f"layer{j}/stride"]
                for i in range(self.num_layers) for j in range(i)}

    def layers(self, arch: Architecture) -> list[dict]:
        """Per layer `{"height", "width", "filters", "stride", "inputs"}` (inputs: layer ids)."""
        d = self.validate(arch).as_dict()
        return [{"height": d[f"layer{i}/height"], "width": d[f"layer{i}/width"],
                 "filters": d[f"layer{i}/filters"], "stride": d[f"layer{i}/stride"],
                 "inputs": [j for j in range(i) if d[f"layer{i}/input{j}"]]} for i in range(self.num_layers)]

    def inputs(self, arch: Architecture) -> list[list[int]]:
        """The earlier layers feeding each layer (`[]`: the image)."""
        return [layer["inputs"] for layer in self.layers(arch)]

    def loose_ends(self, arch: Architecture) -> list[int]:
        """The layers no later layer reads: concatenated before the classifier."""
        read = {j for inputs in self.inputs(arch) for j in inputs}
        return [i for i in range(self.num_layers) if i not in read]

    def get_config(self) -> dict:
        return {"class": "LayerwiseSpace", "num_layers": self.num_layers,
                "filter_heights": list(self.filter_heights), "filter_widths": list(self.filter_widths),
                "filter_counts": list(self.filter_counts), "strides": list(self.strides), "name": self.name}


def _format_layerwise(arch: Architecture) -> str:
    """`"3x5x36/s1<[] 1x1x24/s2<[0] ..."`: per layer height x width x filters / stride < inputs."""
    d = arch.as_dict()
    parts, i = [], 0
    while f"layer{i}/height" in d:
        p = f"layer{i}/"
        inputs = ",".join(str(j) for j in range(i) if d.get(f"{p}input{j}"))
        parts.append(f"{d[p + 'height']}x{d[p + 'width']}x{d[p + 'filters']}/s{d[p + 'stride']}<[{inputs}]")
        i += 1
    return " ".join(parts)


register_formatter("layerwise", _format_layerwise)
