"""`ArchitectureSearch`: a resumable, distributable KerasTuner search over architectures.

One class drives every strategy (`"controller"`, `"evolution"`, `"random"`) over every space
(`MicroCellSpace` for images, `DenseSpace` for tables, `MacroSpace`, your own `SearchSpace`)
against either objective:

- **training**: `build_model(arch) -> keras.Model` (compiled or not; uncompiled models get
  `compile_kwargs`, default Adam + sparse categorical cross-entropy + accuracy). `search(x, y,
  validation_data=..., epochs=..., callbacks=...)` takes `model.fit` arguments; the objective
  is a `fit` metric such as `"val_accuracy"` (the best epoch counts, as in KerasTuner).
- **any function**: `evaluate(arch) -> float | dict` (e.g. a tabular benchmark lookup or a
  proxy score); `search()` then takes no arguments, and the objective names the value.

Every trial is stored under `directory/project_name` (KerasTuner layout). With
`overwrite=False` a killed search resumes where it stopped: finished trials are kept and never
repeated, and the strategy (controller weights, Adam slots and baseline; evolution population;
RNG states) is restored from `oracle.json`. `max_trials` counts all trials of the project, so
resuming with a larger `max_trials` extends a finished search.

Callbacks: `callbacks=[...]` (or `search.callbacks.append(...)`) are objects with
`on_trial_end(search, record)` (see `SearchCallback`), called after every trial with the trial's
record and its wall time, e.g. to print progress. The tuners here call them from KerasTuner's
own `on_trial_end` hook (`TrialCallbacks`); a tuner of your own mixes `TrialCallbacks` in.

Distributed: run the same script in several processes with KerasTuner's environment
variables (`KERASTUNER_TUNER_ID=chief|tuner0|tuner1...`, `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT`). The chief serves the oracle (its `search()` blocks until the
workers are done); workers run trials, each under its own `distribution_strategy` if given
(`tfmeta.nas.distribution.search_role()` says which process this is). Results are read on the
chief or in a later (non-distributed) process with the same directory. docs/scale-out.md
shows the commands.

Example:

>>> space = DenseSpace(num_layers=2, units=(0, 16, 32))
>>> search = ArchitectureSearch(
...     space, build_model=lambda arch: build_dense_model(space, arch, (64,), 10),
...     strategy="evolution", objective="val_accuracy", max_trials=4,
...     directory="runs", project_name="digits_dense", seed=0)
>>> search.search(x, y, validation_data=(xv, yv), epochs=2, verbose=0)  # doctest: +SKIP
>>> search.best_architecture(), search.best_score()                      # doctest: +SKIP
(Architecture(...), 0.93)
>>> search.results()[0]["arch"]                                          # doctest: +SKIP
'dense[32-skip]'
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Mapping

import keras
import keras_tuner
from keras_tuner.src.engine import base_tuner
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine import tuner_utils

from tfmeta.nas import trial_files
from tfmeta.nas.distribution import check_strategy, strategy_scope
from tfmeta.nas.oracles import ArchitectureOracle
from tfmeta.nas.space import Architecture, DenseSpace, MacroSpace, MicroCellSpace, SearchSpace  # noqa: F401
from tfmeta.nas.builders import build_dense_model  # noqa: F401  (docstring example)
from tfmeta.training_state import build_training_state


class SearchCallback:
    """A hook of `ArchitectureSearch(callbacks=[...])`, called as each trial finishes.

    `on_trial_end(search, record)` runs in the process that ran the trial, after KerasTuner has
    stored it. `record` is the trial's entry as `ArchitectureSearch.results()` gives it
    (`trial_id`, `arch`, `architecture`, `status`, `score`, `metrics`) plus `seconds`, the
    trial's wall time. Any object with this method works; subclassing is optional.

    Example:

    >>> class PrintScores(SearchCallback):
    ...     def on_trial_end(self, search, record):
    ...         print(record["arch"], record["score"], f"{record['seconds']:.1f}s")
    >>> search = ArchitectureSearch(space, evaluate=score, callbacks=[PrintScores()])  # doctest: +SKIP
    """

    def on_trial_end(self, search: "ArchitectureSearch", record: dict) -> None:
        """Called after each trial; `record` as described in the class docstring."""


class TrialCallbacks:
    """Tuner mixin: calls its search's callbacks from KerasTuner's `on_trial_end` hook.

    Mix it in before the KerasTuner base class, `class MyTuner(TrialCallbacks, keras_tuner.Tuner)`;
    `ArchitectureSearch` sets `architecture_search` on the tuner it makes.
    """

    #: The `ArchitectureSearch` whose `callbacks` are called (None: no callbacks).
    architecture_search = None

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_started = time.time()

    # KerasTuner writes `<tuner id>.json` in place after every trial; a kill mid-write would
    # make the project unloadable. Written atomically here, and a torn one is tolerated.
    def save(self):
        if not self._is_worker():
            self.oracle.save()
        trial_files.save_json(self._get_tuner_fname(), self.get_state())

    def reload(self):
        if not self._is_worker():
            self.oracle.reload()
        self.set_state(trial_files.load_tuner_state(self._get_tuner_fname()))

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        search = self.architecture_search
        if search is None or not search.callbacks:
            return
        record = _trial_record(search.space, self.oracle.get_trial(trial.trial_id))
        record["seconds"] = time.time() - getattr(self, "_trial_started", time.time())
        for callback in search.callbacks:
            callback.on_trial_end(search, record)


def _check_callbacks(callbacks) -> list:
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not callable(getattr(callback, "on_trial_end", None)):
            raise ValueError(
                "`callbacks` must hold objects with an `on_trial_end(search, record)` method; "
                f"received {type(callback).__name__}."
            )
    return callbacks


class ArchitectureHyperModel(keras_tuner.HyperModel):
    """A KerasTuner hypermodel building `build_model(space.from_hp(hp))`, compiled if needed.

    `fit_model(arch, model, *fit_args, **fit_kwargs)`, when given, trains the child instead of
    `model.fit(*fit_args, **fit_kwargs)`: for spaces whose architecture also holds training
    settings (a batch size, a data pipeline) that `fit` must apply.
    """

    def __init__(self, space: SearchSpace, build_model: Callable[[Architecture], keras.Model],
                 compile_kwargs: Mapping[str, Any] | None = None,
                 fit_model: Callable[..., Any] | None = None):
        super().__init__(name="architecture")
        self.space = space
        self.build_model = build_model
        self.compile_kwargs = dict(compile_kwargs or {})
        self.fit_model = fit_model

    def declare_hyperparameters(self, hp):
        self.space.declare(hp)

    def build(self, hp):
        arch = self.space.from_hp(hp)
        model = self.build_model(arch)
        if not isinstance(model, keras.Model):
            raise ValueError(f"`build_model` must return a keras.Model; received {type(model).__name__}.")
        if not getattr(model, "compiled", False):
            kwargs = {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
            kwargs.update(self.compile_kwargs)
            model.compile(**kwargs)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Trains a child, its metric and loss variables created before the first trace.

        KerasTuner builds the child under its `distribution_strategy` but calls this outside
        it: the training variables created here must belong to the child's strategy too.
        """
        with model.distribute_strategy.scope():
            if self.fit_model is not None:
                return self.fit_model(self.space.from_hp(hp), model, *args, **kwargs)
            x = args[0] if args else kwargs.get("x")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            build_training_state(model, x, y)
            return model.fit(*args, **kwargs)


class SaveBestEpochAtEnd(tuner_utils.SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint, written once when training ends.

    KerasTuner's `SaveBestEpoch` writes the weights file at every epoch that improves the
    objective (a tenth of a short trial's time on a table); this keeps the best weights in
    memory and writes them once, the same file at the end.
    """

    def on_train_begin(self, logs=None):
        self._best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if not self.objective.has_value(logs):
            self._best_weights = self.model.get_weights()
            return
        current = self.objective.get_value(logs)
        if self.objective.better_than(current, self.best_value):
            self.best_value = current
            self._best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self._best_weights is None:
            return
        current = self.model.get_weights()
        self.model.set_weights(self._best_weights)
        self._save_model()
        self.model.set_weights(current)


class KerasArchitectureTuner(TrialCallbacks, keras_tuner.Tuner):
    """KerasTuner `Tuner` training one child model per trial (KerasTuner's fit/checkpoint logic)."""

    def run_trial(self, trial, *args, **kwargs):
        """KerasTuner's `Tuner.run_trial` with `SaveBestEpochAtEnd` as the checkpoint writer."""
        checkpoint = SaveBestEpochAtEnd(objective=self.oracle.objective,
                                        filepath=self._get_checkpoint_fname(trial.trial_id))
        original_callbacks = kwargs.pop("callbacks", [])
        histories = []
        for execution in range(self.executions_per_trial):
            copied_kwargs = dict(kwargs)
            callbacks = self._deepcopy_callbacks(original_callbacks)
            self._configure_tensorboard_dir(callbacks, trial, execution)
            callbacks.append(tuner_utils.TunerCallback(self, trial))
            callbacks.append(checkpoint)  # the best epoch over all executions
            copied_kwargs["callbacks"] = callbacks
            histories.append(self._build_and_fit_model(trial, *args, **copied_kwargs))
        return histories

    def _populate_initial_space(self):
        # KerasTuner builds the hypermodel once here to discover conditional hyperparameters.
        # A search space declares every decision up front and has no conditions, so declaring
        # is enough; building would cost a whole child model (seconds) before the first trial.
        if self.hypermodel is None:
            return
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)


class FunctionTuner(TrialCallbacks, base_tuner.BaseTuner):
    """A KerasTuner tuner whose trial evaluates `evaluate(arch)` (no training)."""

    def __init__(self, oracle: ArchitectureOracle, evaluate: Callable[[Architecture], Any], **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.space = oracle.space
        self.evaluate = evaluate

    def run_trial(self, trial, *args, **kwargs):
        arch = self.space.from_hp_values(trial.hyperparameters.values)
        value = self.evaluate(arch)
        if isinstance(value, Mapping):
            return {k: float(v) for k, v in value.items()}
        return {self.oracle.objective.name: float(value)}

    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        return None


def _float(value):
    return None if value is None else float(value)


def _trial_record(space: SearchSpace, trial) -> dict:
    arch = space.from_hp_values(trial.hyperparameters.values)
    metrics = {name: _float(trial.metrics.get_best_value(name)) for name in trial.metrics.metrics}
    record = {
        "trial_id": trial.trial_id,
        "arch": str(arch),
        "architecture": arch.get_config(),
        "status": trial.status,
        "score": _float(trial.score),
        "metrics": metrics,
    }
    if trial.status == trial_module.TrialStatus.FAILED:
        record["error"] = error_summary(trial.message)
    return record


def error_summary(message: str | None, limit: int = 300) -> str:
    """The exception line of a failed trial's traceback (and the line after it), shortened."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in (message or "").splitlines()]
    lines = [line for line in lines if line]
    found = [i for i, line in enumerate(lines) if re.match(r"^[\w.]*(Error|Exception)\w*:", line)]
    if not found:
        return (lines[-1] if lines else "failed")[:limit]
    i = found[-1]
    text = lines[i]
    if i + 1 < len(lines) and not lines[i + 1].startswith(("Arguments received", "File ")):
        text += " " + lines[i + 1]
    return text[:limit]


class ArchitectureSearch:
    """Architecture search with a controller RNN, regularized evolution or random search.

    Args:
        space: The search space.
        build_model: `arch -> keras.Model` (training objective). Exclusive with `evaluate`.
        evaluate: `arch -> float | dict` (any objective). Exclusive with `build_model`.
        strategy: `"controller"`, `"evolution"`, `"random"`, `"predictor"`, `"pnas"` or `"tpe"`.
        objective: KerasTuner objective: a metric name (`"val_accuracy"`; direction inferred)
            or `keras_tuner.Objective(name, direction)`.
        max_trials: Total number of trials (distinct architectures) in the project.
        directory: Parent folder of the project (`runs/` is git-ignored).
        project_name: Project folder name.
        overwrite: Start afresh instead of resuming.
        seed: Seed of the strategy.
        max_time: Optional wall-clock limit in seconds for `search()` (no new trial starts
            after it; the running one finishes).
        strategy_kwargs: Strategy arguments, e.g. controller `learning_rate`, `temperature`,
            `entropy_weight`, `tanh_constant`, `units`; evolution `population_size`,
            `sample_size`.
        compile_kwargs: `model.compile` arguments for uncompiled models.
        tuner_kwargs: Extra `KerasTuner` tuner arguments (`executions_per_trial`, ...).
        callbacks: Objects with `on_trial_end(search, record)` (`SearchCallback`), called
            after every trial; kept in the list `self.callbacks`, which can grow later.
        initial_architectures: Architectures evaluated first, before the strategy's own
            proposals (e.g. a configuration known to do well; a resumed search skips those
            already evaluated).
        fit_model: Optional `(arch, model, *fit_args, **fit_kwargs) -> history` that trains a
            child instead of `model.fit(*fit_args, **fit_kwargs)` (see `ArchitectureHyperModel`).
        distribution_strategy: Optional `tf.distribute.Strategy` (training objective): every
            trial's model is built and trained under it (KerasTuner's `distribution_strategy`),
            and so is `build_best_model()`. In a chief/worker search each worker may have its
            own (e.g. a `MirroredStrategy` over that machine's GPUs).

    Example:

    >>> space = MicroCellSpace(num_nodes=2)
    >>> search = ArchitectureSearch(space,
    ...     build_model=lambda a: build_cell_model(space, a, (8, 8, 1), 10),
    ...     strategy="controller", max_trials=8, directory="runs", project_name="cells")
    >>> search.search(x, y, validation_data=(xv, yv), epochs=1)   # doctest: +SKIP
    """

    def __init__(
        self,
        space: SearchSpace,
        build_model: Callable[[Architecture], keras.Model] | None = None,
        evaluate: Callable[[Architecture], Any] | None = None,
        strategy: str = "controller",
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        directory: str = "runs",
        project_name: str = "nas",
        overwrite: bool = False,
        seed: int | None = None,
        max_time: float | None = None,
        strategy_kwargs: Mapping[str, Any] | None = None,
        compile_kwargs: Mapping[str, Any] | None = None,
        tuner_kwargs: Mapping[str, Any] | None = None,
        callbacks: list | None = None,
        initial_architectures: list | None = None,
        fit_model: Callable[..., Any] | None = None,
        distribution_strategy: Any = None,
    ):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"`space` must be a SearchSpace; received {type(space).__name__}.")
        if max_time is not None and max_time <= 0:
            raise ValueError(f"`max_time` must be > 0 seconds or None; received {max_time!r}.")
        self.space = space
        self.strategy = strategy
        self.max_time = max_time
        self.build_model = build_model
        self.fit_model = fit_model
        self.distribution_strategy = check_strategy(distribution_strategy)
        self.hypermodel = None
        self.oracle = ArchitectureOracle(
            space, strategy, objective=objective, max_trials=max_trials, seed=seed,
            strategy_kwargs=dict(strategy_kwargs or {}),
        )
        common = {"directory": directory, "project_name": project_name, "overwrite": overwrite, **dict(tuner_kwargs or {})}
        self.callbacks = _check_callbacks(callbacks)
        self.tuner = self._make_tuner(build_model, evaluate, compile_kwargs, common)
        self.tuner.architecture_search = self
        if initial_architectures:  # after the tuner, which reloads a resumed project's state
            self.oracle.strategy.suggest(initial_architectures)

    def _make_tuner(self, build_model, evaluate, compile_kwargs, tuner_kwargs: dict):
        """The KerasTuner tuner that runs the trials (subclasses run them their own way)."""
        if (build_model is None) == (evaluate is None):
            raise ValueError("Pass exactly one of `build_model` (train children) and `evaluate` (any objective).")
        if build_model is not None:
            self.hypermodel = ArchitectureHyperModel(self.space, build_model, compile_kwargs, self.fit_model)
            return KerasArchitectureTuner(self.oracle, hypermodel=self.hypermodel,
                                          distribution_strategy=self.distribution_strategy, **tuner_kwargs)
        if self.distribution_strategy is not None:
            raise ValueError("`distribution_strategy` is for searches that train (`build_model`); "
                             "this search uses `evaluate`, which trains nothing.")
        return FunctionTuner(self.oracle, evaluate, **tuner_kwargs)

    @property
    def project_dir(self) -> str:
        return self.tuner.project_dir

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> "ArchitectureSearch":
        """Runs (or resumes) the search; arguments go to `model.fit` (training objective).

        Returns:
            self.
        """
        if self.max_time is not None:
            self.oracle.deadline = time.time() + self.max_time
        try:
            self.tuner.search(*fit_args, **fit_kwargs)
        finally:
            self.oracle.deadline = None
        return self

    # -- results (chief or local process) ------------------------------------------------
    def _trials(self) -> list:
        order = list(self.oracle.start_order) + sorted(set(self.oracle.trials) - set(self.oracle.start_order))
        return [self.oracle.trials[t] for t in order]

    def results(self) -> list[dict]:
        """Every trial in start order: trial_id, arch (readable), architecture (JSON config),
        status, score and best metric values (and `error`, the last line of the error, for a
        failed trial)."""
        return [_trial_record(self.space, t) for t in self._trials()]

    def completed(self) -> list[dict]:
        """The completed trials (same records as `results()`)."""
        return [r for r in self.results() if r["status"] == trial_module.TrialStatus.COMPLETED]

    def best_trial(self) -> dict:
        """The record of the best completed trial."""
        best = self.oracle.get_best_trials(1)
        if not best or best[0].status != trial_module.TrialStatus.COMPLETED:
            raise RuntimeError("No completed trial yet: run `search()` first.")
        return _trial_record(self.space, best[0])

    def best_architecture(self) -> Architecture:
        """The best architecture found."""
        return Architecture.from_config(self.best_trial()["architecture"])

    def best_score(self) -> float:
        """The objective value of the best trial."""
        return float(self.best_trial()["score"])

    def best_model(self) -> keras.Model:
        """The best trial's trained model (training objective only; loaded from its checkpoint)."""
        if self.build_model is None:
            raise RuntimeError("`best_model()` needs `build_model`; this search used `evaluate`.")
        return self.tuner.get_best_models(1)[0]

    def build_best_model(self) -> keras.Model:
        """A fresh (untrained, compiled) model of the best architecture, for retraining."""
        if self.hypermodel is None:
            raise RuntimeError("`build_best_model()` needs `build_model`; this search used `evaluate`.")
        hp = keras_tuner.HyperParameters()
        hp.values = self.space.hp_values(self.best_architecture())
        with strategy_scope(self.distribution_strategy):
            return self.hypermodel.build(hp)

    def summary(self) -> dict:
        """A JSON-ready summary: strategy, trials, best arch and score, strategy statistics."""
        best = self.best_trial() if self.completed() else None
        return {
            "strategy": self.oracle.strategy.name,
            "space": self.space.name,
            "trials": len(self.oracle.trials),
            "completed": len(self.completed()),
            "best_arch": best["arch"] if best else None,
            "best_score": best["score"] if best else None,
            "stats": dict(self.oracle.strategy.stats),
        }
