"""Deprecated: the digits architecture search runs through `tfmeta.AutoModel`; this module will be removed.

- `load_digits_splits(seed)`: `tfmeta.data.digits.load_digits_splits(test_size=0.2,
  validation_size=0.2, seed=seed, scaled=True, channel_axis=True)`, its validation split under
  the old key `"val"` as well.
- `build_child_model(space, arch, input_shape, filters)`: `tfmeta.nas.cells.build_cell_model(
  space, arch, input_shape, 10, num_cells=1, filters=filters)` compiled with Adam 3e-3.
- `search_digits(...)`: `tfmeta.AutoModel` with a cell `space`, `refit_cells` and
  `refit_filters` (the best cell retrained stacked deeper), `weight_sharing` for ENAS, fitted
  on the 80% training pool with `validation_split=0.25` (the same 60/20/20 split), then
  `score` and `export`; `benchmarks/nas_digits.py` shows the call.
- `export_classifier(model, base_dir, metadata)`: `tfmeta.export.export_classifier`.
"""

from __future__ import annotations

from typing import Any, Sequence

from tfmeta._deprecation import moved_names, warn_moved

SPLIT_SEED = 0  # the seed of the digits split (deprecated with this module)

__getattr__ = moved_names(__name__, {"export_classifier": "tfmeta.export"})


def load_digits_splits(seed: int = 0) -> dict:
    """Deprecated: digits `[N, 8, 8, 1]` in [0, 1]; stratified 60/20/20 train/val/test split."""
    from tfmeta.data.digits import load_digits_splits as load

    warn_moved("tfmeta.nas.digits.load_digits_splits", "tfmeta.data.digits.load_digits_splits")
    splits = load(test_size=0.2, validation_size=0.2, seed=seed, scaled=True, channel_axis=True)
    return {**splits, "val": splits["validation"]}


def build_child_model(space, arch, input_shape: Sequence[int], filters: int = 16):
    """Deprecated: one normal cell per stage, compiled (Adam 3e-3, sparse cross-entropy, accuracy)."""
    import keras

    from tfmeta.nas.cells import build_cell_model

    warn_moved("tfmeta.nas.digits.build_child_model", "tfmeta.nas.cells.build_cell_model")
    model = build_cell_model(space, arch, input_shape, 10, num_cells=1, filters=filters)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def search_digits(
    strategy: str = "controller", max_trials: int = 8, epochs: int = 2, final_epochs: int = 30,
    num_nodes: int = 3, ops: Sequence[str] | None = None, filters: int = 16, final_cells: int = 2,
    final_filters: int = 24, directory: str = "runs", project_name: str = "nas_digits", overwrite: bool = True,
    seed: int = 0, export_dir: str | None = "saved_models/nas_digits", max_time: float | None = None,
    strategy_kwargs: dict | None = None, batch_size: int = 64, verbose: int = 0, return_model: bool = False,
    weight_sharing: bool = False, child_steps: int = 20, train_paths: str = "trial",
) -> dict[str, Any]:
    """Deprecated: `tfmeta.AutoModel` on digits with the NAS parameters (see the module docstring).

    Returns the old keys: `best_arch`, `best_val_accuracy`, `test_accuracy`,
    `search_wall_time_s`, `retrain_wall_time_s`, `trials`, `trial_scores` (search order),
    `export_path`, `strategy`, `weight_sharing`, `final_params` (+ `model`).
    """
    from tfmeta.automodel import AutoModel
    from tfmeta.data.digits import load_digits_splits as load
    from tfmeta.nas.space import DEFAULT_CELL_OPS, MicroCellSpace

    warn_moved("tfmeta.nas.digits.search_digits", "tfmeta.AutoModel")
    if strategy_kwargs:
        raise ValueError("`strategy_kwargs` is not supported by the AutoModel path; received "
                         f"{strategy_kwargs!r}. Use tfmeta.nas.ArchitectureSearch for strategy arguments.")
    splits = load(test_size=0.2, scaled=True, channel_axis=True)
    am = AutoModel(
        space=MicroCellSpace(num_nodes=num_nodes, ops=tuple(ops or DEFAULT_CELL_OPS)), strategy=strategy,
        max_trials=max_trials, epochs=epochs, max_time=max_time, filters=filters, learning_rate=3e-3,
        batch_size=batch_size, weight_sharing=weight_sharing, child_steps=child_steps, train_paths=train_paths,
        refit_cells=final_cells, refit_filters=final_filters, refit_epochs=final_epochs, ensemble=False,
        directory=directory, project_name=project_name, overwrite=overwrite, seed=seed, verbose=verbose,
    ).fit(*splits["train"], validation_split=0.25)
    result = {
        "strategy": strategy, "best_arch": am.best_architecture_, "best_val_accuracy": am.best_score_,
        "weight_sharing": weight_sharing, "test_accuracy": am.score(*splits["test"]),
        "search_wall_time_s": am.search_time_, "retrain_wall_time_s": am.refit_time_, "trials": len(am.trials_),
        "trial_scores": [t["score"] for t in sorted(am.trials_, key=lambda t: int(t["trial"]))],
        "export_path": am.export(export_dir) if export_dir else None, "final_params": int(am.model_.count_params()),
    }
    if return_model:
        result["model"] = am.model_
    return result
