"""A real architecture search on scikit-learn's digits (8x8): search, retrain, export.

`search_digits()` searches the micro cell space (children: one normal cell per stage, trained
for a few epochs on the training split, scored on the validation split), then retrains the
best architecture stacked deeper (`final_cells` normal cells per stage; NASNet's transfer) on
train + validation, scores it on the held-out test split and exports a SavedModel with a
`serving_default` signature `x: float32[None, 8, 8, 1] in [0, 1] -> {"probabilities", "classes"}`.

Example:

>>> result = search_digits(strategy="controller", max_trials=8, epochs=2,
...                        directory="runs", export_dir="saved_models/nas_digits")  # doctest: +SKIP
>>> result["test_accuracy"], result["export_path"]                                 # doctest: +SKIP
(0.97, 'saved_models/nas_digits/1')
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Sequence

import numpy as np

SPLIT_SEED = 0


def load_digits_splits(seed: int = SPLIT_SEED) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Digits as float32 `[N, 8, 8, 1]` in [0, 1] and int labels; stratified 60/20/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images.astype("float32") / 16.0)[..., None]
    y = data.target.astype("int64")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(x_tr, y_tr, test_size=0.25, random_state=seed, stratify=y_tr)
    return {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}


def build_child_model(space, arch, input_shape: Sequence[int], filters: int = 16):
    """A compiled search child as `search_digits` trains it without weight sharing: one normal
    cell per stage, Adam 3e-3, sparse cross-entropy, accuracy."""
    import keras

    from tfmeta.nas.cells import build_cell_model

    model = build_cell_model(space, arch, input_shape, 10, num_cells=1, filters=filters)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def export_classifier(model, base_dir: str, metadata: dict) -> str:
    """Exports an image classifier with `serving_default: x -> {probabilities, classes}`."""
    import tensorflow as tf

    from tfmeta.export import export_endpoints

    shape = [None, *model.input_shape[1:]]

    def serve(x):
        probs = model(x, training=False)
        return {"probabilities": probs, "classes": tf.argmax(probs, axis=-1, output_type=tf.int32)}

    return export_endpoints(
        base_dir, model, {"serving_default": (serve, [tf.TensorSpec(shape, tf.float32, name="x")])}, metadata
    )


def search_digits(
    strategy: str = "controller",
    max_trials: int = 8,
    epochs: int = 2,
    final_epochs: int = 30,
    num_nodes: int = 3,
    ops: Sequence[str] | None = None,
    filters: int = 16,
    final_cells: int = 2,
    final_filters: int = 24,
    directory: str = "runs",
    project_name: str = "nas_digits",
    overwrite: bool = True,
    seed: int = 0,
    export_dir: str | None = "saved_models/nas_digits",
    max_time: float | None = None,
    strategy_kwargs: dict | None = None,
    batch_size: int = 64,
    verbose: int = 0,
    return_model: bool = False,
    weight_sharing: bool = False,
    child_steps: int = 20,
    train_paths: str = "trial",
) -> dict[str, Any]:
    """Searches cells on digits, retrains the best one deeper, evaluates and exports it.

    Args:
        strategy: `"controller"`, `"evolution"` or `"random"`.
        max_trials: Children trained during the search.
        epochs: Training epochs per child.
        final_epochs: Training epochs of the retrained best architecture.
        num_nodes: Nodes per cell (B).
        ops: Cell operations (default: the ENAS set).
        filters: First-stage channels of the children.
        final_cells: Normal cells per stage of the retrained model (children use 1).
        final_filters: First-stage channels of the retrained model.
        directory: Search directory (KerasTuner project parent).
        project_name: Search project name.
        overwrite: Start a fresh search (False resumes).
        seed: Seeds the strategy, the split shuffling and Keras.
        export_dir: SavedModel base directory (None: no export).
        max_time: Optional wall-clock limit of the search, seconds.
        strategy_kwargs: Strategy arguments.
        batch_size: Batch size.
        verbose: Keras verbosity.
        return_model: Also return the retrained Keras model under `"model"`.
        weight_sharing: ENAS: the children share one supernet (`WeightSharingSearch`), each
            trained for `child_steps` batches instead of `epochs`; the architecture retrained
            is `derive()`'s pick.
        child_steps: Shared-weight training batches per child (with `weight_sharing`).
        train_paths: Which children those batches train (with `weight_sharing`): `"trial"`
            (the trial's own) or `"uniform"` (a random one per batch); see `WeightSharingSearch`.

    Returns:
        `{"best_arch", "best_val_accuracy", "test_accuracy", "search_wall_time_s",
        "retrain_wall_time_s", "trials", "trial_scores", "export_path", "strategy",
        "weight_sharing", "final_params"}` (+ `"model"`). `trial_scores` are the children's
        validation accuracies in the order they were searched (with `weight_sharing`, with the
        shared weights of the moment). With `weight_sharing`, `best_val_accuracy` is the pick's
        accuracy with the shared weights, not after its own training.
    """
    import keras

    from tfmeta.nas.cells import build_cell_model
    from tfmeta.nas.search import ArchitectureSearch
    from tfmeta.nas.space import DEFAULT_CELL_OPS, MicroCellSpace

    keras.utils.set_random_seed(seed)
    splits = load_digits_splits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits["train"], splits["val"], splits["test"]
    space = MicroCellSpace(num_nodes=num_nodes, ops=tuple(ops or DEFAULT_CELL_OPS))
    input_shape = x_tr.shape[1:]

    def child(arch):
        return build_child_model(space, arch, input_shape, filters)

    t0 = time.perf_counter()
    common = dict(strategy=strategy, max_trials=max_trials, directory=directory, project_name=project_name,
                  overwrite=overwrite, seed=seed, max_time=max_time, strategy_kwargs=strategy_kwargs)
    if weight_sharing:
        from tfmeta.nas.enas import WeightSharingSearch

        search = WeightSharingSearch(space, input_shape, 10, child_steps=child_steps, batch_size=batch_size,
                                     train_paths=train_paths, filters=filters, **common)
        search.search(x_tr, y_tr, validation_data=(x_va, y_va), verbose=verbose)
        best, best_val = search.derive((x_va, y_va))
    else:
        search = ArchitectureSearch(space, build_model=child, objective="val_accuracy", **common)
        with warnings.catch_warnings():
            # A cell may ignore one of its inputs (as in ENAS), leaving some weights without
            # gradients; Keras warns about it every epoch.
            warnings.filterwarnings("ignore", message="Gradients do not exist")
            search.search(x_tr, y_tr, validation_data=(x_va, y_va), epochs=epochs, batch_size=batch_size,
                          verbose=verbose)
        best, best_val = search.best_architecture(), search.best_score()
    search_time = time.perf_counter() - t0
    completed = search.completed()

    t0 = time.perf_counter()
    keras.utils.set_random_seed(seed)
    final = build_cell_model(space, best, input_shape, 10, num_cells=final_cells, filters=final_filters, dropout=0.1,
                             name="nas_digits")
    steps = final_epochs * int(np.ceil((len(x_tr) + len(x_va)) / batch_size))
    final.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        final.fit(np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va]), epochs=final_epochs,
                  batch_size=batch_size, verbose=verbose)
    test_acc = float(final.evaluate(x_te, y_te, verbose=0)[1])
    retrain_time = time.perf_counter() - t0
    path = None
    if export_dir:
        path = export_classifier(
            final,
            export_dir,
            {
                "task": "classification",
                "learner": "nas_cells",
                "architecture": best.get_config(),
                "architecture_str": str(best),
                "input_spec": {"shape": [None, 8, 8, 1], "dtype": "float32", "range": [0.0, 1.0]},
                "class_names": [str(i) for i in range(10)],
                "metrics": {"test_accuracy": test_acc},
            },
        )
    result = {
        "strategy": strategy,
        "best_arch": str(best),
        "best_val_accuracy": best_val,
        "weight_sharing": weight_sharing,
        "test_accuracy": test_acc,
        "search_wall_time_s": search_time,
        "retrain_wall_time_s": retrain_time,
        "trials": len(completed),
        "trial_scores": [record["score"] for record in completed],
        "export_path": path,
        "final_params": int(final.count_params()),
    }
    if return_model:
        result["model"] = final
    return result
