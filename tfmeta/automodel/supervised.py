"""AutoModel's classification and regression: architecture search, refit, averaging, export.

The search trains children of a cell space (images) or a dense space (tables) on the search
split and scores them on the validation split, each child trained alone
(`tfmeta.nas.ArchitectureSearch`) or, with `weight_sharing=True`, as a path through one ENAS
supernet (`tfmeta.nas.enas.WeightSharingSearch`, whose `derive()` picks the architecture). The
refit then trains the chosen architecture on all the training data:

- at the searched size, the best trial's own model reset to its initial weights and optimizer
  state (its train step is already traced, which on a CPU costs more than a short refit);
- built afresh when the cell is stacked deeper or wider (`refit_cells`, `refit_filters`:
  NASNet's "search small, stack deep") or after a weight-sharing search (which trains no model
  per trial), with a cosine-decayed learning rate and dropout 0.1 before the classifier.

`search_sample` searches on part of the search split only (the refit trains on all the data).
With `ensemble=True` the refit model is averaged with the best trial's trained model.
Functions here take the `AutoModel` being fitted (`am`) and set its fitted attributes.
"""

from __future__ import annotations

import math
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfmeta import export as export_lib
from tfmeta.automodel import inputs as inputs_lib
from tfmeta.automodel import augmentation, warm_start
from tfmeta.automodel.distributed import finish_worker
from tfmeta.automodel.progress import TrialProgress
from tfmeta.nas.distribution import strategy_scope


def num_reductions(image_shape, smallest_side: int = 4, most: int = 2) -> int:
    """Reduction cells for an image shape: halve H and W while the smaller stays >= `smallest_side`.

    8x8 digits get one reduction (a 4x4 last stage), 28x28 and larger get two. On 8x8 inputs a
    second reduction would leave 2x2 maps and four times the parameters of the last stage.
    """
    side, count = min(int(image_shape[0]), int(image_shape[1])), 0
    while count < most and side // 2 >= smallest_side:
        side, count = side // 2, count + 1
    return count


def search_space(am):
    """The space searched: `am.space`, checked against the inputs, or the default for them."""
    from tfmeta.nas.space import DenseSpace, MicroCellSpace

    image = am.task_kind_ == "image"
    if not image:
        for name in ("weight_sharing", "refit_cells", "refit_filters"):
            if getattr(am, name):
                raise ValueError(f"`{name}` applies to images (a cell search space); `x` is a table "
                                 f"of shape {(None, *am.input_shape_)}.")
    if am.space is None:
        return MicroCellSpace(num_nodes=3) if image else DenseSpace(num_layers=3, units=(0, 64, 128, 256),
                                                                     dropout=(0.0, 0.25))
    expected = MicroCellSpace if image else DenseSpace
    if not isinstance(am.space, expected):
        raise ValueError(f"`space` must be a {expected.__name__} for {am.task_kind_} inputs; "
                         f"received {type(am.space).__name__}.")
    return am.space


def split(am, x, y, validation_split, validation_data, classification):
    """`(x_search, y_search, x_val, y_val)`: `validation_data` checked, or a seeded split."""
    if validation_data is not None:
        xv, yv = inputs_lib.to_arrays(*validation_data)
        inputs_lib.check_features(xv, "validation_data[0]", am.input_shape_)
        yv = inputs_lib.check_targets(xv, yv, "labels" if classification else "regression", "validation_data[1]")
        if classification:
            unknown = set(np.unique(yv)) - set(am.classes_)
            if unknown:
                raise ValueError(f"`validation_data` has labels not in `y`: {sorted(unknown)[:5]}.")
            yv = np.searchsorted(am.classes_, yv)
        return x, y, xv, yv
    from sklearn.model_selection import train_test_split

    stratify = y if classification and np.bincount(y).min() >= 2 else None
    x_tr, x_v, y_tr, y_v = train_test_split(x, y, test_size=validation_split, random_state=am.seed or 0,
                                            stratify=stratify)
    return x_tr, y_tr, x_v, y_v


def check_search_sample(search_sample, task: str) -> None:
    """Raises ValueError unless `search_sample` is None, a fraction in (0, 1] or a count >= 1."""
    if search_sample is None:
        return
    if task not in ("classification", "regression"):
        raise ValueError(f"`search_sample` is for task='classification' or 'regression'; received task={task!r}.")
    fraction = isinstance(search_sample, float) and 0.0 < search_sample <= 1.0
    count = isinstance(search_sample, (int, np.integer)) and not isinstance(search_sample, bool) and search_sample >= 1
    if not (fraction or count):
        raise ValueError("`search_sample` must be None, a fraction in (0, 1] or a number of examples >= 1; "
                         f"received {search_sample!r}.")


def sample_for_search(am, x, y, classification: bool):
    """The search split reduced to `am.search_sample` examples (stratified, seeded)."""
    size = am.search_sample
    size = int(round(size * len(x))) if isinstance(size, float) else int(size)
    if size >= len(x):
        return x, y
    from sklearn.model_selection import train_test_split

    stratify = y if classification and np.bincount(y).min() >= 2 and size >= len(np.unique(y)) else None
    x, _, y, _ = train_test_split(x, y, train_size=size, random_state=am.seed or 0, stratify=stratify)
    return x, y


def fit(am, x, y, validation_split, validation_data) -> None:
    """Searches, refits and sets `am`'s fitted attributes (classification or regression)."""
    _SupervisedFit(am).run(x, y, validation_split, validation_data)


class _SupervisedFit:
    """The state of one `fit`: the space, the output size, the kept children."""

    def __init__(self, am):
        self.am = am
        self.classification = am.task == "classification"
        self.sign = 1.0 if self.classification else -1.0
        self.monitor = "val_accuracy" if self.classification else "val_loss"
        self.fresh_refit = am.weight_sharing or am.refit_cells is not None or am.refit_filters is not None
        self.kept = {}  # readable architecture -> (model, initial weights, initial optimizer state)

    def run(self, x, y, validation_split, validation_data) -> None:
        am = self.am
        self.space = search_space(am)
        x_tr, y_tr, xv, yv = split(am, x, y, validation_split, validation_data, self.classification)
        if am.search_sample is not None:  # search small; the refit below still trains on all of x
            x_tr, y_tr = sample_for_search(am, x_tr, y_tr, self.classification)
        am.search_examples_ = len(x_tr)
        self.policy = augmentation.resolve(am, x_tr, y_tr, xv, yv)
        self.outputs = len(am.classes_) if self.classification else (1 if y.ndim == 1 else int(y.shape[1]))
        self.keep = am.refit and validation_data is None and not self.fresh_refit
        progress = TrialProgress(am._log, am.max_trials, am._start, self.sign, on_best=self._drop_kept_models)
        start = time.time()
        if am.weight_sharing:
            search, best_arch, best_score = self._search_shared(x_tr, y_tr, xv, yv, progress)
        else:
            search = self._search_alone(x_tr, y_tr, xv, yv, progress)
        am.search_time_ = time.time() - start
        if finish_worker(am, progress):
            return
        completed = search.completed()
        if not completed:
            raise RuntimeError("The search finished no trial: raise `max_time` or `max_trials`.")
        am.trials_ = sorted(
            ({"trial": r["trial_id"], "architecture": r["arch"], "score": self.sign * float(r["score"]),
              "seconds": progress.seconds.get(r["trial_id"])} for r in completed),
            key=lambda t: -t["score"],
        )
        warm_start.finish(am, completed, self.sign)
        if not am.weight_sharing:
            best_arch, best_score = search.best_architecture(), am.trials_[0]["score"]
        am.best_architecture_ = str(best_arch)
        am.best_score_ = best_score
        am.best_learner_ = f"nas/{self.space.name}"
        am.search_ = search.summary()
        am.refit_epochs_ = None
        out_of_time = am.max_time is not None and time.time() - am._start >= am.max_time
        start = time.time()
        if am.weight_sharing or (am.refit and validation_data is None and not out_of_time):
            self._refit(search, best_arch, x, y)
        else:
            am.model_ = self._best_trial_model(search)
            am.members_ = [am.model_]
        am.refit_time_ = time.time() - start
        self.kept = {}
        self.policy = None  # the augmentation policy's config, images only

    # ----------------------------------------------------------------- children
    def _core(self, arch, num_cells: int = 1, filters: int | None = None, dropout: float = 0.0):
        """`input shape -> keras.Model` of `arch` (the preprocessing goes in front of it)."""
        from tfmeta.nas.cells import build_model

        activation = "softmax" if self.classification else None
        if self.am.task_kind_ != "image":
            return lambda shape: build_model(self.space, arch, shape, self.outputs, final_activation=activation)
        filters = filters or self.am.filters
        core = lambda shape: build_model(self.space, arch, shape, self.outputs, num_cells=num_cells,  # noqa: E731
                                         filters=filters, num_reductions=num_reductions(shape), dropout=dropout,
                                         final_activation=activation)
        return augmentation.with_policy(core, self.policy)  # the augmentation policy (if any) in front

    def _compile(self, model: keras.Model, learning_rate) -> keras.Model:
        from tfmeta.training_state import build_training_state

        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy" if self.classification else "mse",
            metrics=["accuracy"] if self.classification else ["mae"],
        )  # jit_compile: Keras's "auto" (XLA on a GPU or TPU, unless a layer cannot compile)
        build_training_state(model)
        return model

    def _child(self, arch) -> keras.Model:
        model = self._compile(self.am.preprocessing_.wrap(self._core(arch)), self.am.learning_rate)
        if self.keep:  # the refit may reuse this model: remember its initial state
            self.kept[str(arch)] = (model, model.get_weights(), [v.numpy() for v in model.optimizer.variables])
        return model

    def _drop_kept_models(self, best_arch: str) -> None:
        """Frees every kept child but the best so far (the only one the refit may need)."""
        for arch in [a for a in self.kept if a != best_arch]:
            del self.kept[arch]

    # ------------------------------------------------------------------ searches
    def _search_alone(self, x, y, xv, yv, progress):
        from tfmeta.nas.search import ArchitectureSearch

        am = self.am
        search = ArchitectureSearch(
            self.space, build_model=self._child, strategy=am.strategy, objective=self.monitor,
            max_trials=am.max_trials, max_time=am.max_time, directory=am.directory,
            # `overwrite=True` was done by the facade's `fingerprint.start_project`, which keeps its record.
            project_name=am.project_name, overwrite=False, seed=am.seed, callbacks=[progress],
            initial_architectures=warm_start.architectures(am, self.space),
            distribution_strategy=am.distribution_strategy,
        )
        stop = keras.callbacks.EarlyStopping(monitor=self.monitor, patience=am.patience, restore_best_weights=True)
        with warnings.catch_warnings():  # cells that ignore an input leave weights without gradients
            warnings.filterwarnings("ignore", message="Gradients do not exist")
            search.search(x, y, validation_data=(xv, yv), epochs=am.epochs, batch_size=am.batch_size,
                          callbacks=[stop], verbose=0)
        return search

    def _search_shared(self, x, y, xv, yv, progress):
        """ENAS on preprocessed arrays; returns `(search, derived architecture, its score)`."""
        from tfmeta.nas.enas import WeightSharingSearch

        am = self.am
        pre = am.preprocessing_
        shape = pre.model_input_shape
        search = WeightSharingSearch(
            self.space, shape, self.outputs, strategy=am.strategy, child_steps=am.child_steps,
            train_paths=am.train_paths, batch_size=am.batch_size, filters=am.filters,
            num_reductions=num_reductions(shape), optimizer=keras.optimizers.Adam(am.learning_rate),
            max_trials=am.max_trials, directory=am.directory, project_name=am.project_name,
            overwrite=False, seed=am.seed, max_time=am.max_time,  # cleared by `fingerprint.start_project`
            distribution_strategy=am.distribution_strategy,
        )
        search.callbacks.append(progress)
        validation = (pre.transform(xv), yv)
        search.search(pre.transform(x), y, validation_data=validation, verbose=0)
        arch, score = search.derive(validation)
        am._log(f"[derive] {arch}  shared-weight score={score:.4f}  elapsed={time.time() - am._start:.0f}s")
        return search, arch, score

    # --------------------------------------------------------------------- refit
    @staticmethod
    def _best_trial_model(search) -> keras.Model:
        """The best trial's trained model, restored from its KerasTuner checkpoint."""
        with warnings.catch_warnings():  # KerasTuner checkpoints hold optimizer slots we do not need
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return search.best_model()

    def _refit(self, search, arch, x, y) -> None:
        """Trains `arch` on all of `x` (search split + validation split).

        The search scores trials on a held-out split; once the architecture is chosen, that
        split is training data too (AutoKeras's final fit does the same). The refit needs no
        validation data of its own: it trains for `refit_epochs`, by default the full `epochs`
        budget or the best trial's best epoch count if larger (the best epoch alone is a noisy
        guide on a small validation split, where early stopping ends trials at a plateau).
        """
        am = self.am
        epochs = am.refit_epochs
        if epochs is None:
            epochs = max(int(am.epochs), int(search.oracle.get_best_trials(1)[0].best_step or 0) + 1)
        keras.utils.set_random_seed(0 if am.seed is None else int(am.seed))
        kept = self.kept.get(str(arch))
        with strategy_scope(am.distribution_strategy):  # the refit trains under the search's strategy
            model = self._refit_model(search, arch, kept, x, epochs)
            with warnings.catch_warnings():  # cells that ignore an input leave weights without gradients
                warnings.filterwarnings("ignore", message="Gradients do not exist")
                model.fit(x, y, epochs=epochs, batch_size=am.batch_size, verbose=0)
        am.refit_epochs_ = epochs
        am.members_ = [model]
        if am.ensemble and not am.weight_sharing:  # KerasTuner loads it under the strategy itself
            am.members_.append(self._best_trial_model(search))
        with strategy_scope(am.distribution_strategy):
            am.model_ = am.members_[0] if len(am.members_) == 1 else average(am, am.members_)
        what = " + best trial's model averaged" if len(am.members_) > 1 else ""
        am._log(f"[refit] {'deeper ' if (am.refit_cells or 1) > 1 else ''}best architecture on all {len(x)} examples for "
                f"{epochs} epochs{what}  elapsed={time.time() - am._start:.0f}s")

    def _refit_model(self, search, arch, kept, x, epochs: int) -> keras.Model:
        """The model the refit trains: built afresh, or a kept trial model reset, or rebuilt."""
        am = self.am
        if self.fresh_refit:
            steps = epochs * math.ceil(len(x) / am.batch_size)
            core = self._core(arch, num_cells=am.refit_cells or 1, filters=am.refit_filters, dropout=0.1)
            model = self._compile(am.preprocessing_.wrap(core),
                                  keras.optimizers.schedules.CosineDecay(am.learning_rate, steps))
        elif kept is not None:  # the trial's own model, reset to its initial state
            model, weights, optimizer_state = kept
            model.set_weights(weights)
            for variable, value in zip(model.optimizer.variables, optimizer_state):
                variable.assign(value)
        else:  # resumed search, or the best trial ran in another process (a worker)
            model = search.build_best_model()
        return model


def average(am, members: list) -> keras.Model:
    """One Keras model (raw inputs in) whose output is the mean of the members' outputs."""
    for i, member in enumerate(members):
        member.name = f"member_{i}"  # sub-model names must be unique in a functional model
    pre = am.preprocessing_
    inputs = keras.Input(pre.raw_shape, dtype=pre.raw_dtype, name="x")
    outputs = keras.layers.Average(name="ensemble_mean")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="automodel_ensemble")


# ------------------------------------------------------------------- predict, evaluate, export
def predict_proba(am, x, support=None) -> np.ndarray:
    if support is not None:
        raise ValueError(f"`support` is for task='few_shot'; this AutoModel has task={am.task!r}.")
    return am.model_.predict(am._check_x(x), verbose=0, batch_size=256)


def predict(am, x, support=None) -> np.ndarray:
    if am.task == "classification":
        return am.classes_[predict_proba(am, x, support).argmax(-1)]
    out = predict_proba(am, x, support)
    return out[:, 0] if out.shape[-1] == 1 else out


def evaluate(am, x, y, episodes: int | None = None) -> dict:
    if am.task == "classification":
        return {"accuracy": float(np.mean(predict(am, x) == y))}
    err = predict(am, x) - y
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err))),
            "r2": float(1 - np.sum(err**2) / max(np.sum((y - y.mean()) ** 2), 1e-12))}


def export(am, path: str, meta: dict, version: int | None) -> str:
    """`serving_default`: raw `x` -> `{"probabilities", "classes"}` (classification, the one
    classifier export of `tfmeta.export`) or `{"values"}` (regression)."""
    meta["ensemble"] = {"members": len(am.members_), "combine": "mean of outputs", "refit_epochs": am.refit_epochs_}
    model = am.model_
    if am.task == "classification":
        return export_lib.export_classifier(model, path, meta, class_names=am.classes_, version=version)
    pre = am.preprocessing_
    spec = [tf.TensorSpec((None, *pre.raw_shape), tf.as_dtype(pre.raw_dtype), name="x")]

    def serve(x):
        out = model(x, training=False)
        return {"values": out[:, 0] if out.shape[-1] == 1 else out}

    return export_lib.export_endpoints(path, model, {"serving_default": (serve, spec)}, meta, version=version)
