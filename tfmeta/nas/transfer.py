"""Search small, transfer deep: a searched cell stacked deeper and wider, trained on other data.

The reason to search cells (NASNet, Zoph et al. 2018) is that a cell found cheaply (one cell
per stage, few filters, a small data set) transfers: stacked N times per stage with more
filters it becomes a network for a larger task. `transfer(arch, (x, y), cells=N, filters=F)`
does that step: it builds `tfmeta.nas.cells.build_cell_model` with N normal cells per stage
and F first-stage filters around a `MicroCellSpace` architecture from any search (controller,
evolution, ENAS, DARTS, a JSON file) and trains it from scratch on the new data with Adam and
a cosine-decayed learning rate, returning the trained model and its history.
`fit_classifier(model, (x, y), epochs)` trains any other classifier (a baseline) the same way.
Both take `batch_norm_momentum`: short trainings of a few hundred steps need batch norm's
moving statistics to follow the weights quickly (Keras's default momentum 0.99 averages over
about 100 steps and still reflects early weights at the end, so inference-mode accuracy can stay
near chance while training accuracy is high); setting it on every network compared keeps the
comparison fair.

Example:

>>> from tfmeta.nas.space import MicroCellSpace
>>> space = MicroCellSpace(num_nodes=3)
>>> arch = space.sample(np.random.default_rng(0))        # or search.best_architecture()
>>> model, history = transfer(arch, (x_train, y_train), cells=2, filters=32, epochs=10,
...                           validation_data=(x_test, y_test))           # doctest: +SKIP
>>> model.evaluate(x_test, y_test, return_dict=True)["accuracy"]         # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np

from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.space import DEFAULT_CELL_OPS, Architecture, MicroCellSpace


def cell_space_of(arch: Architecture) -> MicroCellSpace:
    """A `MicroCellSpace` that holds `arch`: its nodes and cells, the default ops plus its own."""
    if not isinstance(arch, Architecture) or arch.kind != "cell":
        raise ValueError(f"`architecture` must be a cell Architecture (a MicroCellSpace's); received {arch!r}.")
    names = set(arch.names)
    num_nodes = 0
    while f"normal/node{num_nodes}/in0" in names:
        num_nodes += 1
    used = [v for n, v in zip(arch.names, arch.values) if "/op" in n]
    ops = tuple(DEFAULT_CELL_OPS) + tuple(dict.fromkeys(o for o in used if o not in DEFAULT_CELL_OPS))
    return MicroCellSpace(num_nodes=num_nodes, ops=ops, reduction="reduce/node0/in0" in names, name=arch.space)


def transfer(
    architecture: Architecture,
    data: tuple,
    cells: int = 2,
    filters: int = 32,
    epochs: int = 10,
    validation_data: tuple | None = None,
    space: MicroCellSpace | None = None,
    num_classes: int | None = None,
    num_reductions: int | None = None,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    dropout: float = 0.1,
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
    batch_norm_momentum: float | None = None,
) -> tuple[keras.Model, keras.callbacks.History]:
    """Stacks a searched cell `cells` deep per stage with `filters` channels and trains it on `data`.

    Args:
        architecture: A `MicroCellSpace` architecture (normal and reduction cell).
        data: `(x, y)`: images `[N, H, W, C]` and integer labels `[N]`.
        cells: Normal cells per stage (the search used 1).
        filters: First-stage channels (doubled at each reduction).
        epochs: Training epochs.
        validation_data: Optional `(x, y)` scored after every epoch (`val_accuracy`).
        space: The architecture's space; None rebuilds one from the architecture
            (`cell_space_of`).
        num_classes: Classes; None: `max(y) + 1`.
        num_reductions: Reduction cells; None: halve H and W while the smaller side stays
            >= 4, at most twice (8x8 digits: one, 28x28 images: two).
        batch_size: Training batch size.
        learning_rate: Adam's initial learning rate (cosine-decayed to 0 over the training).
        dropout: Dropout before the classifier.
        seed: Seed of the initialisation and the batch order.
        callbacks: Keras callbacks for `fit`.
        verbose: `fit` verbosity.
        batch_norm_momentum: If given, the momentum of every batch norm layer of the network
            (see `fit_classifier`); None keeps the cells' own.

    Returns:
        `(model, history)`: the trained softmax classifier and `fit`'s history.
    """
    from tfmeta.automodel.supervised import num_reductions as default_reductions

    space = space if space is not None else cell_space_of(architecture)
    space.validate(architecture)
    try:
        x, y = data
    except (TypeError, ValueError):
        raise ValueError(f"`data` must be a pair (x, y) of arrays; received {type(data).__name__}.") from None
    x, y = np.asarray(x, "float32"), np.asarray(y)
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"`data` must be images [N, H, W, C] and labels [N]; received x {x.shape}, y {y.shape}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    shape = x.shape[1:]
    reductions = default_reductions(shape) if num_reductions is None else num_reductions
    keras.utils.set_random_seed(seed)
    model = build_cell_model(space, architecture, shape, num_classes, num_cells=cells, filters=filters,
                             num_reductions=reductions, dropout=dropout, name="transferred_cell_net")
    history = fit_classifier(model, (x, y), epochs, validation_data=validation_data, batch_size=batch_size,
                             learning_rate=learning_rate, callbacks=callbacks, verbose=verbose,
                             batch_norm_momentum=batch_norm_momentum)
    return model, history


def fit_classifier(
    model: keras.Model,
    data: tuple,
    epochs: int,
    validation_data: tuple | None = None,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
    batch_norm_momentum: float | None = None,
) -> keras.callbacks.History:
    """Compiles and trains a softmax classifier the way `transfer` does (the same budget for baselines).

    Adam with a learning rate cosine-decayed to 0 over `epochs`, sparse categorical
    cross-entropy, accuracy; `data` is `(x, y)`. `batch_norm_momentum`, if given, is set on
    every batch norm layer of `model` (nested models and cells included) before training, so
    networks compared at a short budget share one setting (`set_batch_norm_momentum`).
    """
    if batch_norm_momentum is not None:
        set_batch_norm_momentum(model, batch_norm_momentum)
    x, y = data
    steps = epochs * math.ceil(len(x) / batch_size)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)  # XLA compiling a fresh network costs more than it saves on a CPU
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                     callbacks=list(callbacks or []), verbose=verbose)


def set_batch_norm_momentum(model: keras.Layer, momentum: float) -> int:
    """Sets `momentum` on every `BatchNormalization` layer inside `model`; returns how many.

    Keras reads the momentum when the layer is called, so this works on built models too.

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    >>> set_batch_norm_momentum(model, 0.9)
    1
    """
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)) or not 0 <= momentum < 1:
        raise ValueError(f"`batch_norm_momentum` must be a number in [0, 1); received {momentum!r}.")
    # Keras has no public walk over nested layers (cells hold their batch norms as attributes).
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)
