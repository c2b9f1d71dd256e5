"""Search, refit and export for models that take the user's raw data: tables, text, image folders.

A *raw-data task* (`tables.TableTask`, `text.TextTask`, `image_folder.ImageFolderTask`) reads
the user's data (streamed when it is a file or a folder), builds the in-graph preprocessing,
and says what is searched (`space`, the first `initial_architectures`) and how a trial's model is
built. This module runs the rest the same way for all of them:

1. The search (`tfmeta.nas.ArchitectureSearch`): the task's initial configurations first, then
   the strategy's proposals; every trial trains on the search split with its own batch size and
   early stopping on the validation split. A trial that fails (an error, a NaN loss) is
   recorded as failed with its reason, and the search goes on.
2. The refit: the best configuration trained afresh on all rows (search + validation) for
   its trial's best epoch count, averaged with the second-best trial's model (`ensemble=True`).
3. Predictions and the export: `serving_default` takes the raw inputs (one named input per
   table column, raw strings, images of any size or encoded image bytes).

Functions here take the `AutoModel` being fitted (`am`) and set its fitted attributes.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Iterator

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from tfmeta import export as export_lib
from tfmeta.automodel import augmentation, fingerprint, warm_start
from tfmeta.automodel.distributed import finish_worker
from tfmeta.automodel.progress import TrialProgress
from tfmeta.nas.distribution import strategy_scope


class FailOnNaN(keras.callbacks.Callback):
    """Ends a trial whose loss became NaN or infinite: KerasTuner records it as failed."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise keras_tuner.errors.FailedTrialError(f"The loss became {float(loss)} at batch {batch}.")


#: Optimizer steps before a validation score is trusted (early stopping, refit lengths).
WARM_UP_STEPS = 100


class WarmEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that does not stop before `min_steps` optimizer steps have run.

    On small data sets an epoch is a handful of steps: BatchNormalization's moving statistics
    (what validation uses) are still warming up, and a validation score flat for `patience`
    epochs says nothing yet. The first epochs, up to `min_steps` steps, only record the best.
    """

    def __init__(self, min_steps: int = WARM_UP_STEPS, **kwargs):
        super().__init__(**kwargs)
        self.min_steps = int(min_steps)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        steps = (self.params or {}).get("steps") or 0
        self.start_from_epoch = math.ceil(self.min_steps / steps) if steps else 0


class RawDataTask:
    """What a raw-data family provides to `fit` (subclasses implement every method).

    Attributes set by `prepare`: `classes` (classification: the label values, sorted),
    `target_mean` / `target_std` (regression), `rows` (training rows).
    """

    kind = "raw"

    def __init__(self, am):
        self.am = am
        self.classification = am.task == "classification"

    # -- reading ----------------------------------------------------------------------------
    def prepare(self, x, y, validation_split: float, validation_data) -> None:
        """Reads and checks the data, learns the preprocessing statistics, splits the rows."""
        raise NotImplementedError

    def dataset(self, part: str, batch_size: int, shuffle: bool = False) -> tf.data.Dataset:
        """`(inputs, targets)` batches of `part`: "search", "validation" or "all"."""
        raise NotImplementedError

    def predict_batches(self, x) -> Iterator[Any]:
        """Model inputs for `x` (the user's raw data), in batches of rows."""
        raise NotImplementedError

    def evaluation_batches(self, x, y) -> Iterator[tuple[Any, np.ndarray]]:
        """`(model inputs, true targets)` batches for `evaluate` (targets as `dataset` gives them:
        class indices or numbers), rows without a target left out."""
        raise NotImplementedError

    # -- searching --------------------------------------------------------------------------
    def space(self):
        raise NotImplementedError

    def initial_architectures(self) -> list:
        """The first trials (known-good configurations), before the strategy's proposals."""
        raise NotImplementedError

    def build(self, arch) -> keras.Model:
        """A compiled model of `arch` taking the raw inputs."""
        raise NotImplementedError

    def batch_size(self, arch) -> int:
        return int(arch.as_dict().get("batch_size", self.am.batch_size))

    # -- serving ----------------------------------------------------------------------------
    def model_inputs(self) -> Any:
        """Fresh Keras inputs of the trial models (to average members on)."""
        raise NotImplementedError

    def serving_model(self, core: keras.Model) -> keras.Model:
        """The model that takes the user's raw inputs, around `core` (a trial model or their
        average). The trial models take the raw inputs themselves unless a task decodes first."""
        return core

    def endpoints(self, model: keras.Model, outputs) -> dict:
        """`{signature name: (fn, input_signature)}` of the export; `outputs(model_out)` names them."""
        raise NotImplementedError

    def describe(self) -> dict:
        """The input spec written to tfmeta.json."""
        raise NotImplementedError


def make_task(am) -> RawDataTask:
    """The task for `am.data_kind_`: `"table"`, `"text"` or `"image_folder"`."""
    if am.data_kind_ == "table":
        from tfmeta.automodel.tables import TableTask as task
    elif am.data_kind_ == "text":
        from tfmeta.automodel.text import TextTask as task
    else:
        from tfmeta.automodel.image_folder import ImageFolderTask as task
    return task(am)


def fit(am, x, y, validation_split: float, validation_data) -> None:
    """Reads, searches, refits; sets `am`'s fitted attributes."""
    task = make_task(am)
    augmentation.check_input(am, task.kind)  # before reading the data
    task.prepare(x, y, validation_split, validation_data)
    fingerprint.start_project(am, fingerprint.of_raw_task(am.task, task))
    if task.classification:
        am.classes_ = task.classes
    am.raw_task_ = task
    augmentation.resolve_raw(am, task)  # an image folder's policy, in front of every trial's network
    monitor = "val_accuracy" if task.classification else "val_loss"
    sign = 1.0 if task.classification else -1.0
    space = task.space()
    progress = TrialProgress(am._log, am.max_trials, am._start, sign)

    def fit_child(arch, model, *args, **kwargs):  # runs in the scope of `distribution_strategy`
        size = task.batch_size(arch)
        data = task.dataset("search", size, shuffle=True)  # the dataset shuffles itself
        _build_training_state(model, data)
        return model.fit(data, validation_data=task.dataset("validation", size), shuffle=False, **kwargs)

    from tfmeta.nas.search import ArchitectureSearch

    search = ArchitectureSearch(
        space, build_model=task.build, fit_model=fit_child, strategy=am.strategy, objective=monitor,
        max_trials=am.max_trials, max_time=am.max_time, directory=am.directory, project_name=am.project_name,
        overwrite=False, seed=am.seed, callbacks=[progress],  # `fingerprint.start_project` cleared it
        initial_architectures=warm_start.architectures(am, space) + task.initial_architectures(),
        distribution_strategy=am.distribution_strategy,
    )
    search.oracle.max_consecutive_failed_trials = max(3, am.max_trials)  # a failed trial ends no search
    stop = WarmEarlyStopping(monitor=monitor, patience=am.patience, restore_best_weights=True)
    start = time.time()
    search.search(epochs=am.epochs, callbacks=[stop, FailOnNaN()], verbose=0)
    am.search_time_ = time.time() - start
    if finish_worker(am, progress):
        return
    completed = search.completed()
    if not completed:
        reasons = "; ".join(f"trial {r['trial']}: {r['error']}" for r in _failed(search))
        raise RuntimeError(f"Every trial failed or none ran ({reasons or 'no trial'}): raise `max_time` or "
                           "`max_trials`, or check the data.")
    am.trials_ = _leaderboard(search, sign, progress.seconds)
    warm_start.finish(am, completed, sign)
    best = search.best_architecture()
    am.best_architecture_ = str(best)
    am.best_choices_ = best.as_dict()
    am.best_score_ = am.trials_[0]["score"]
    am.best_learner_ = f"{task.kind}/{space.name}"
    am.search_ = search.summary()
    am.refit_epochs_ = None
    start = time.time()
    out_of_time = am.max_time is not None and time.time() - am._start >= am.max_time
    if am.refit and validation_data is None and not out_of_time:
        _refit(am, task, search)
    else:
        am.members_ = [_trial_model(search, search.best_trial()["trial_id"])]
        am.model_ = task.serving_model(am.members_[0])
    am.refit_time_ = time.time() - start


def _build_training_state(model: keras.Model, data: tf.data.Dataset) -> None:
    """The model's optimizer, metric and loss variables, built on one batch before `fit`, so
    that its train step is traced once (`tfmeta.training_state`)."""
    from tfmeta.training_state import build_training_state

    for x, y in data.take(1):
        build_training_state(model, x, y)


def _failed(search) -> list[dict]:
    return [{"trial": r["trial_id"], "error": r["error"], "architecture": r["arch"]}
            for r in search.results() if r["status"] == "FAILED"]


def _leaderboard(search, sign: float, seconds: dict) -> list[dict]:
    """Completed trials best first, then the failed ones with their reason."""
    rows = [
        {"trial": r["trial_id"], "status": "completed", "architecture": r["arch"],
         "choices": r["architecture"]["values"], "score": sign * float(r["score"]),
         "seconds": seconds.get(r["trial_id"])}
        for r in search.completed()
    ]
    rows.sort(key=lambda t: -t["score"])
    for failed in _failed(search):
        rows.append({"trial": failed["trial"], "status": "failed", "architecture": failed["architecture"],
                     "score": None, "error": failed["error"], "seconds": seconds.get(failed["trial"])})
    return rows


def refit_epochs(am, task: RawDataTask, arch, trial) -> int:
    """Epochs of a refit: the trial's best epoch count, but not fewer than the warm-up.

    A best epoch found within the first `WARM_UP_STEPS` optimizer steps (a small data set, a
    noisy validation split) says little, so a refit trains at least that many steps (never
    more than `epochs`).
    """
    if am.refit_epochs:
        return int(am.refit_epochs)
    steps = max(1, math.ceil(task.rows / task.batch_size(arch)))
    warm_up = min(int(am.epochs), math.ceil(WARM_UP_STEPS / steps))
    return max(int(trial.best_step or 0) + 1, warm_up)


def _trial_model(search, trial_id: str) -> keras.Model:
    """A completed trial's trained model, restored from its KerasTuner checkpoint."""
    with warnings.catch_warnings():  # KerasTuner checkpoints hold optimizer slots we do not need
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return search.tuner.load_model(search.oracle.get_trial(trial_id))


def _refit(am, task: RawDataTask, search) -> None:
    """The best configuration retrained on all rows (`refit_epochs`).

    With `ensemble=True` it is averaged with the second-best trial's own model (trained on the
    search split, stopped early on the validation split): two configurations (often of
    different families: a TF-IDF model and a convolution, a network and an additive model) err
    on different rows, so the average is more accurate than either (docs/results.md measures
    it), for no more training than the refit.
    """
    from tfmeta.nas.space import Architecture

    sign = 1.0 if task.classification else -1.0
    ranked = sorted(search.completed(), key=lambda r: -sign * float(r["score"]))
    arch = Architecture.from_config(ranked[0]["architecture"])
    epochs = refit_epochs(am, task, arch, search.oracle.get_trial(ranked[0]["trial_id"]))
    keras.utils.set_random_seed(0 if am.seed is None else int(am.seed))
    with strategy_scope(am.distribution_strategy):  # the refit trains under the search's strategy
        model = task.build(arch)
        data = task.dataset("all", task.batch_size(arch), shuffle=True)
        _build_training_state(model, data)
        model.fit(data, epochs=epochs, shuffle=False, verbose=0, callbacks=[FailOnNaN()])
    am.refit_epochs_ = epochs
    am.members_ = [model]
    if am.ensemble and len(ranked) > 1:  # KerasTuner loads it under the strategy itself
        am.members_.append(_trial_model(search, ranked[1]["trial_id"]))
    with strategy_scope(am.distribution_strategy):
        am.model_ = task.serving_model(am.members_[0] if len(am.members_) == 1 else average(task, am.members_))
    what = " + the second-best trial's model, averaged" if len(am.members_) > 1 else ""
    am._log(f"[refit] best configuration on all {task.rows} rows for {epochs} epochs{what}  "
            f"elapsed={time.time() - am._start:.0f}s")


def average(task: RawDataTask, members: list) -> keras.Model:
    """One model (the raw inputs in) whose output is the mean of the members' outputs."""
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    inputs = task.model_inputs()
    outputs = keras.layers.Average(name="ensemble_mean")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name="automodel_ensemble")


# ------------------------------------------------------------------- predict, evaluate, export
def predict_batch(model: keras.Model, inputs) -> np.ndarray:
    """The model's outputs for one batch of model inputs.

    Keras's `predict_on_batch` gives a model built under a strategy of several replicas the
    whole batch on every replica and concatenates their outputs (each row several times);
    `predict` splits the batch between them.
    """
    if model.distribute_strategy.num_replicas_in_sync > 1:
        rows = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
        return np.asarray(model.predict(inputs, batch_size=max(1, rows), verbose=0))
    return np.asarray(model.predict_on_batch(inputs))


def predict_proba(am, x, support=None) -> np.ndarray:
    if support is not None:
        raise ValueError(f"`support` is for task='few_shot'; this AutoModel has task={am.task!r}.")
    outputs = [predict_batch(am.model_, batch) for batch in am.raw_task_.predict_batches(x)]
    return np.concatenate(outputs) if outputs else np.empty((0, len(getattr(am, "classes_", [0]))))


def predict(am, x, support=None) -> np.ndarray:
    out = predict_proba(am, x, support)
    if am.task == "classification":
        return am.classes_[out.argmax(-1)]
    return out[:, 0] if out.shape[-1] == 1 else out


def evaluate(am, x, y, episodes: int | None = None) -> dict:
    outputs, truths = [], []
    for inputs, truth in am.raw_task_.evaluation_batches(x, y):
        outputs.append(predict_batch(am.model_, inputs))
        truths.append(truth)
    if not outputs:
        raise ValueError("`y` has no target value to evaluate against: every target is missing.")
    out, truth = np.concatenate(outputs), np.concatenate(truths)
    if am.task == "classification":
        return {"accuracy": float(np.mean(out.argmax(-1) == truth))}
    err = (out[:, 0] if out.shape[-1] == 1 else out) - truth
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err))),
            "r2": float(1 - np.sum(err**2) / max(np.sum((truth - truth.mean()) ** 2), 1e-12))}


def export(am, path: str, meta: dict, version: int | None) -> str:
    """Signatures from the task (`serving_default` on raw inputs, and others it adds)."""
    task = am.raw_task_
    meta["input_spec"] = task.describe()
    meta["best_choices"] = am.best_choices_
    meta["ensemble"] = {"members": len(am.members_), "combine": "mean of outputs", "refit_epochs": am.refit_epochs_}
    if am.task == "classification":
        names = tf.constant(np.asarray(am.classes_))

        def outputs(probs):
            return {"probabilities": probs, "classes": tf.gather(names, tf.argmax(probs, axis=-1))}
    else:
        def outputs(values):
            return {"values": values[:, 0] if values.shape[-1] == 1 else values}

    return export_lib.export_endpoints(path, am.model_, task.endpoints(am.model_, outputs), meta, version=version)
