"""Image folders: the search space (cells, image size, augmentation) and the model builder.

Images arrive at the folder's load size (`tfmeta.data.image_folders.ImageFolder`); the model
resizes them inside its graph to the size the trial chose, scales them to [0, 1], optionally
augments them (random flips, rotations and zooms, Keras preprocessing layers that are active
only in training) and classifies them with a stacked-cell network whose normal and reduction
cells are searched (`tfmeta.nas.MicroCellSpace`).

Example:

>>> space, cells = image_space(load_size=(128, 128))
>>> model = build_image_model(space, cells, arch, (128, 128, 3), outputs=5)
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np

from tfmeta.automodel.table_models import optimizer_for
from tfmeta.multi_worker_fit import FunctionalModel
from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.space import Architecture, Decision, MicroCellSpace, SearchSpace

#: Searched image sides, kept below the load size.
IMAGE_SIDES = (32, 48, 64, 96)


def num_reductions(side: int, smallest_side: int = 4, most: int = 3) -> int:
    """Reduction cells for a square image side: halve while the side stays >= `smallest_side`."""
    count = 0
    while count < most and side // 2 >= smallest_side:
        side, count = side // 2, count + 1
    return count


def image_space(load_size: Sequence[int], num_nodes: int = 3) -> tuple[SearchSpace, MicroCellSpace]:
    """`(search space, cell space)`: the cells' decisions plus image size, augmentation, rate."""
    cells = MicroCellSpace(num_nodes=num_nodes)
    smaller = min(int(load_size[0]), int(load_size[1]))
    sides = tuple(s for s in IMAGE_SIDES if s <= smaller) or (smaller,)
    extra = [
        Decision("image_size", sides),
        Decision("augment", ("none", "flip_rotate_zoom")),
        Decision("learning_rate", (1e-3, 3e-3)),
    ]
    return SearchSpace(list(cells.decisions) + extra, name="image", kind="generic"), cells


def default_image_architecture(space: SearchSpace, cells: MicroCellSpace, seed: int = 0) -> Architecture:
    """The first trial: a seeded random cell at the smallest image size, no augmentation, rate 1e-3."""
    values = cells.sample(np.random.default_rng(seed)).as_dict()
    sizes = next(d for d in space.decisions if d.name == "image_size").choices
    values.update(image_size=min(sizes), augment="none", learning_rate=1e-3)
    return space.from_dict(values)


def cell_architecture(cells: MicroCellSpace, arch: Architecture) -> Architecture:
    """The cell part of an image-space architecture."""
    values = arch.as_dict()
    return cells.from_dict({d.name: values[d.name] for d in cells.decisions})


def augmentation(kind: str) -> list[keras.layers.Layer]:
    """Keras's random preprocessing layers for `kind` (active in training only)."""
    if kind == "none":
        return []
    return [keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.05),
            keras.layers.RandomZoom(0.1)]


def build_image_model(space: SearchSpace, cells: MicroCellSpace, arch: Architecture,
                      load_shape: Sequence[int], outputs: int, filters: int = 16,
                      num_cells: int = 1, augmentation_policy: dict | None = None) -> keras.Model:
    """Load-size images (0..255) -> resize, scale, augment -> cell network -> softmax, compiled.

    `augmentation_policy`: the config of a `tfmeta.augmentation_search.AugmentationPolicy` for
    images in [0, 1], applied after the trial's own augmentation (training only).
    """
    choices = space.validate(arch).as_dict()
    side = int(choices["image_size"])
    channels = int(load_shape[-1])
    inputs = keras.Input(tuple(int(d) for d in load_shape), name="image")
    x = keras.layers.Resizing(side, side, name="resize")(inputs)
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(x)
    for layer in augmentation(choices["augment"]):
        x = layer(x)
    if augmentation_policy is not None:
        from tfmeta.augmentation_search import AugmentationPolicy

        x = AugmentationPolicy.from_config(augmentation_policy)(x)
    body = build_cell_model(cells, cell_architecture(cells, arch), (side, side, channels), outputs,
                            num_cells=num_cells, filters=filters, num_reductions=num_reductions(side))
    model = FunctionalModel(inputs, body(x), name="image_model")
    model.compile(optimizer=optimizer_for({"learning_rate": choices["learning_rate"]}),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
