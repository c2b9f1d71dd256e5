"""`run_digits_search`: one search strategy over any built-in space, children trained on digits.

The tabular benchmark (`run_tabular_search`) answers a query by a table look-up, but only for
the macro space it tabulates. Spaces without a table, such as Zoph & Le's `LayerwiseSpace`,
need their children trained: this trains each proposed architecture briefly on
scikit-learn's 8x8 digits (bundled with scikit-learn, so nothing to download; the 60/20/20
split of `tfmeta.data.digits.load_digits_splits`), scores it on the validation split, and
reports the best-so-far trajectory and the best child's test accuracy. `tfmeta search
--space layerwise` and `benchmarks/nas_layerwise_digits.py` run it.

Example:

>>> from tfmeta.nas.space import LayerwiseSpace
>>> result = run_digits_search(LayerwiseSpace(num_layers=3), "random", budget=4, seed=0,
...                            epochs=2)                                # doctest: +SKIP
>>> result["best_val_accuracy"], result["test_accuracy"]                # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings

import keras
import numpy as np

from tfmeta.data.digits import load_digits_splits
from tfmeta.nas.builders import build_model
from tfmeta.nas.search import ArchitectureSearch
from tfmeta.nas.space import SearchSpace


def run_digits_search(
    space: SearchSpace,
    strategy: str,
    budget: int,
    seed: int = 0,
    epochs: int = 3,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    split_seed: int = 0,
) -> dict:
    """Runs `strategy` for `budget` trials over `space`, each child trained `epochs` on digits.

    Args:
        space: A space with a built-in builder (`tfmeta.nas.builders.build_model`).
        strategy: A strategy name of `ArchitectureSearch` (`"controller"`, `"random"`, ...).
        budget: Trials (distinct architectures trained).
        seed: Seed of the strategy and of the children's initialisation.
        epochs: Training epochs of every child.
        batch_size: Children's batch size.
        learning_rate: Children's Adam learning rate.
        split_seed: Seed of the digits split (the same for every strategy compared).

    Returns:
        A JSON-ready dict: `strategy`, `seed`, `budget`, `best_arch` (readable),
        `best_arch_json`, `best_val_accuracy`, `trajectory` (best validation accuracy so far
        after each trial), `test_accuracy` (the best child as trained in the search, on the
        test split), `trials` (completed) and `wall_time_s`.
    """
    for name, value in (("budget", budget), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    splits = load_digits_splits(test_size=0.2, validation_size=0.2, seed=split_seed, scaled=True,
                                channel_axis=True)
    (x, y), (xv, yv), (xt, yt) = splits["train"], splits["validation"], splits["test"]

    def child(arch):
        model = build_model(space, arch, x.shape[1:], 10)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], jit_compile=False)
        return model

    keras.utils.set_random_seed(int(seed))
    directory = tempfile.mkdtemp(prefix="tfmeta_digits_search_")
    start = time.perf_counter()
    try:
        search = ArchitectureSearch(space, build_model=child, strategy=strategy, max_trials=int(budget),
                                    directory=directory, project_name=strategy, overwrite=True, seed=int(seed))
        with warnings.catch_warnings():  # architectures that ignore an input leave weights without gradients
            warnings.filterwarnings("ignore", message="Gradients do not exist")
            search.search(x, y, validation_data=(xv, yv), epochs=int(epochs), batch_size=int(batch_size), verbose=0)
        scores = [r["score"] for r in search.completed()]
        best = search.best_architecture()
        test_accuracy = float(search.best_model().evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"])
        return {"strategy": strategy, "seed": int(seed), "budget": int(budget), "best_arch": str(best),
                "best_arch_json": best.to_json(), "best_val_accuracy": search.best_score(),
                "trajectory": [float(v) for v in np.maximum.accumulate(scores)] if scores else [],
                "test_accuracy": test_accuracy, "trials": len(scores),
                "wall_time_s": time.perf_counter() - start}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
