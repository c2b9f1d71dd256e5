"""KerasTuner oracles for architecture search: controller RNN, regularized evolution, random.

Each oracle wraps a `tfmeta.nas.strategies.Strategy`. An architecture travels in a KerasTuner
trial as one integer hyperparameter per decision (`space.hp_values(arch)`, names such as
`"normal/node0/op0"` or `"layer3"`), so trials are ordinary KerasTuner trials: saved under
`directory/project_name/trial_*/trial.json`, sent over gRPC in distributed mode, shown by
`tuner.results_summary()`.

Persistence and resuming. `get_state()` extends KerasTuner's oracle state with the space
config and the strategy state (history, pending proposals, RNG state, evolution population;
for the controller its weights and Adam slots as base64 `.npz`, the baseline and the update
count). `oracle.json` is written atomically after every trial. Reloading (`overwrite=False`)
restores the strategy; finished trials are never run again, and a trial whose `trial.json`
says COMPLETED but whose reward had not reached `oracle.json` (killed in between) is replayed
into the strategy instead of being retried. `trial.json` files are written atomically; a torn
one (a kill mid-write by KerasTuner's own writer) costs only its trial, which is run again
with the architecture it was evaluating (`tfmeta.nas.trial_files`).

Distributed search uses KerasTuner's own chief/worker mode unchanged: set
`KERASTUNER_TUNER_ID` ("chief" or "tuner0", "tuner1"...), `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT`; the chief's oracle proposes every trial and learns from every
worker's result.

Example:

>>> from tfmeta.nas.space import MacroSpace
>>> oracle = ControllerOracle(MacroSpace(), objective="accuracy", max_trials=20, seed=0)
>>> oracle.strategy.name
'controller'
"""

from __future__ import annotations

import json
import numbers
import os
import time
from typing import Any

import keras_tuner
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine.oracle import synchronized

from tfmeta.nas import trial_files
from tfmeta.nas.space import Architecture, SearchSpace, space_from_config
from tfmeta.nas.strategies import STRATEGY_NAMES, Strategy, make_strategy


class ArchitectureOracle(keras_tuner.Oracle):
    """A KerasTuner `Oracle` driven by a search `Strategy`.

    Args:
        space: The search space.
        strategy: A `Strategy` instance or a name (`"controller"`, `"evolution"`, `"random"`).
        objective: KerasTuner objective (e.g. `"val_accuracy"` or `keras_tuner.Objective`);
            the reward is the objective value, negated when its direction is `"min"`.
        max_trials: Number of trials (distinct architectures).
        seed: Seed of the strategy.
        strategy_kwargs: Strategy arguments when `strategy` is a name.
        **kwargs: `keras_tuner.Oracle` arguments (`max_retries_per_trial`, ...).
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: Strategy | str = "controller",
        objective: Any = "val_accuracy",
        max_trials: int = 10,
        seed: int | None = None,
        strategy_kwargs: dict | None = None,
        **kwargs: Any,
    ):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"`space` must be a SearchSpace; received {type(space).__name__}.")
        if isinstance(max_trials, bool) or not isinstance(max_trials, numbers.Integral) or max_trials < 1:
            raise ValueError(f"`max_trials` must be a positive int; received {max_trials!r}.")
        max_trials = int(max_trials)
        hp = keras_tuner.HyperParameters()
        space.declare(hp)
        seed = 0 if seed is None else int(seed)
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hp,
            tune_new_entries=False,
            allow_new_entries=True,
            seed=seed,
            **kwargs,
        )
        self.space = space
        if isinstance(strategy, str):
            strategy = make_strategy(strategy, space, seed=seed, **(strategy_kwargs or {}))
        if not isinstance(strategy, Strategy):
            raise ValueError(f"`strategy` must be a Strategy or a name; received {type(strategy).__name__}.")
        self.strategy = strategy
        self.deadline: float | None = None  # wall-clock stop (set by ArchitectureSearch(max_time))

    # -- proposing and scoring -----------------------------------------------------------
    def populate_space(self, trial_id: str) -> dict:
        if self.deadline is not None and time.time() > self.deadline:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        arch = self.strategy.propose()
        if arch is None:  # the space is exhausted
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": self.space.hp_values(arch)}

    def trial_architecture(self, trial) -> Architecture:
        """The architecture a trial evaluates."""
        return self.space.from_hp_values(trial.hyperparameters.values)

    def _reward(self, score: float) -> float:
        direction = getattr(self.objective, "direction", "max")
        return float(score) if direction == "max" else -float(score)

    def score_trial(self, trial) -> None:
        super().score_trial(trial)
        # Called from `end_trial` (under its lock) before the oracle state is saved.
        if trial.trial_id in self.strategy.observed_ids:
            return
        score = trial.score
        reward = None if score is None else self._reward(score)
        self.strategy.observe(self.trial_architecture(trial), reward, trial_id=trial.trial_id)

    @synchronized
    def end_trial(self, trial) -> None:
        super().end_trial(trial)
        stored = self.trials[trial.trial_id]
        if stored.status == trial_module.TrialStatus.FAILED and trial.trial_id not in self.strategy.observed_ids:
            # A failed architecture is never proposed again and gets no reward.
            self.strategy.observe(self.trial_architecture(stored), None, trial_id=trial.trial_id)
            self.save()

    # -- state ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = super().get_state()
        state["space"] = self.space.get_config()
        state["strategy"] = self.strategy.get_state()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if "space" in state and space_from_config(state["space"]).names != self.space.names:
            raise ValueError(
                "The project on disk was searched with a different space; use another "
                "`project_name` or `overwrite=True`."
            )
        self.strategy.set_state(state["strategy"])

    def save(self) -> None:
        """Writes `oracle.json` atomically (temporary file + rename)."""
        fname = self._get_oracle_fname()
        tmp = f"{fname}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.get_state(), f)
        os.replace(tmp, fname)

    def _save_trial(self, trial) -> None:
        # KerasTuner writes trial.json in place; a kill mid-write would tear it.
        trial_files.save_trial(os.path.join(self._get_trial_dir(trial.trial_id), trial_files.TRIAL_FILE), trial)

    def _reload_trials_and_state(self) -> list[str]:
        """KerasTuner's `Oracle.reload`, but a torn `trial.json` costs only that trial.

        Returns the ids of the torn trials; each gets a placeholder trial (its values are set by
        `_rerun_torn`) so that KerasTuner's state, which may name it, loads.
        """
        trials, torn = trial_files.load_trials(self._project_dir)
        self.trials.update(trials)
        for trial_id in torn:
            self.trials[trial_id] = trial_module.Trial(
                self.hyperparameters.copy(), trial_id=trial_id, status=trial_module.TrialStatus.RUNNING)
        try:
            # Skip KerasTuner's `Oracle.reload` (it parses every trial file itself): `Stateful.reload`.
            super(keras_tuner.Oracle, self).reload(self._get_oracle_fname())
        except KeyError as error:
            raise RuntimeError(
                f"Error reloading the oracle of the project at {self._project_dir}; pass `overwrite=True` or "
                "another `project_name` to start afresh."
            ) from error
        for trial in self.ongoing_trials.values():  # interrupted trials are retried
            self._retry_queue.append(trial.trial_id)
        self.ongoing_trials = {}
        return torn

    def _rerun_torn(self, torn: list[str]) -> None:
        """Queues every torn trial to run again, with the architecture it was evaluating.

        That architecture is the strategy's pending proposal no other queued trial holds; if it
        cannot be told (several torn trials), the strategy proposes one for each left.
        """
        queued = {tuple(self.space.encode(self.trial_architecture(self.trials[t])))
                  for t in self._retry_queue if t not in torn}
        unclaimed = sorted(p for p in self.strategy.pending if p not in queued)
        recoverable = len(unclaimed) == len(torn)
        for trial_id in sorted(torn):
            trial = self.trials[trial_id]
            if recoverable:
                values = self.space.hp_values(self.space.decode(unclaimed.pop(0)))
            else:
                values = self.populate_space(trial_id).get("values")
            if trial_id in self.end_order:
                self.end_order.remove(trial_id)
            if values is None:  # nothing left to propose: forget the trial
                del self.trials[trial_id]
                self._retry_queue = [t for t in self._retry_queue if t != trial_id]
                self.start_order = [t for t in self.start_order if t != trial_id]
                continue
            trial.hyperparameters.values = dict(values)
            if trial_id not in self._retry_queue:
                self._retry_queue.append(trial_id)
            if trial_id not in self.start_order:
                self.start_order.append(trial_id)
            self._save_trial(trial)

    def reload(self) -> None:
        torn = self._reload_trials_and_state()
        if torn:
            self._rerun_torn(torn)
        # Trials killed after writing trial.json (COMPLETED) but before oracle.json: replay
        # their results into the strategy instead of running them again.
        for trial_id in list(self._retry_queue):
            trial = self.trials[trial_id]
            if trial.status == trial_module.TrialStatus.COMPLETED and trial.score is not None:
                self._retry_queue.remove(trial_id)
                if trial_id not in self.strategy.observed_ids:
                    self.strategy.observe(self.trial_architecture(trial), self._reward(trial.score), trial_id=trial_id)
                if trial_id not in self.end_order:
                    self.end_order.append(trial_id)
        # Proposals that never became trials are forgotten.
        running = {tuple(self.space.encode(self.trial_architecture(self.trials[t]))) for t in self._retry_queue}
        self.strategy.pending = {p for p in self.strategy.pending if p in running}
        self.save()


class ControllerOracle(ArchitectureOracle):
    """Controller RNN (REINFORCE) oracle; `controller_kwargs` go to `ControllerRNN`.

    Example:

    >>> from tfmeta.nas.space import MacroSpace
    >>> ControllerOracle(MacroSpace(), objective="accuracy", max_trials=5, learning_rate=0.01)
    ... # doctest: +ELLIPSIS
    <...ControllerOracle object at ...>
    """

    def __init__(self, space: SearchSpace, objective: Any = "val_accuracy", max_trials: int = 10,
                 seed: int | None = None, update_on_duplicates: bool = True, oracle_kwargs: dict | None = None,
                 **controller_kwargs: Any):
        super().__init__(
            space,
            "controller",
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            strategy_kwargs={"update_on_duplicates": update_on_duplicates, **controller_kwargs},
            **(oracle_kwargs or {}),
        )


class EvolutionOracle(ArchitectureOracle):
    """Regularized evolution oracle (population, tournament, mutation, ageing)."""

    def __init__(self, space: SearchSpace, objective: Any = "val_accuracy", max_trials: int = 10,
                 seed: int | None = None, population_size: int = 20, sample_size: int = 5, **kwargs: Any):
        super().__init__(
            space,
            "evolution",
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            strategy_kwargs={"population_size": population_size, "sample_size": sample_size},
            **kwargs,
        )


class RandomArchitectureOracle(ArchitectureOracle):
    """Random search over architectures, without repetition."""

    def __init__(self, space: SearchSpace, objective: Any = "val_accuracy", max_trials: int = 10,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(space, "random", objective=objective, max_trials=max_trials, seed=seed, **kwargs)


class PredictorOracle(ArchitectureOracle):
    """Predictor-guided search oracle (`tfmeta.nas.guided.PredictorStrategy`)."""

    def __init__(self, space: SearchSpace, objective: Any = "val_accuracy", max_trials: int = 10,
                 seed: int | None = None, oracle_kwargs: dict | None = None, **strategy_kwargs: Any):
        super().__init__(space, "predictor", objective=objective, max_trials=max_trials, seed=seed,
                         strategy_kwargs=strategy_kwargs, **(oracle_kwargs or {}))


class PNASOracle(ArchitectureOracle):
    """Progressive search oracle (`tfmeta.nas.pnas.PNASStrategy`: levels, beam, predictor)."""

    def __init__(self, space: SearchSpace, objective: Any = "val_accuracy", max_trials: int = 10,
                 seed: int | None = None, oracle_kwargs: dict | None = None, **strategy_kwargs: Any):
        super().__init__(space, "pnas", objective=objective, max_trials=max_trials, seed=seed,
                         strategy_kwargs=strategy_kwargs, **(oracle_kwargs or {}))


class TPEOracle(ArchitectureOracle):
    """Tree-structured Parzen estimator oracle (`tfmeta.nas.tpe.TPEStrategy`)."""

    def __init__(self, space: SearchSpace, objective: Any = "val_accuracy", max_trials: int = 10,
                 seed: int | None = None, oracle_kwargs: dict | None = None, **strategy_kwargs: Any):
        super().__init__(space, "tpe", objective=objective, max_trials=max_trials, seed=seed,
                         strategy_kwargs=strategy_kwargs, **(oracle_kwargs or {}))


ORACLES = {"controller": ControllerOracle, "evolution": EvolutionOracle, "random": RandomArchitectureOracle,
           "predictor": PredictorOracle, "pnas": PNASOracle, "tpe": TPEOracle}


def make_oracle(strategy: str, space: SearchSpace, objective: Any, max_trials: int, seed: int | None = None,
                **strategy_kwargs: Any) -> ArchitectureOracle:
    """Creates the oracle of a strategy name with its strategy arguments."""
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"`strategy` must be one of {list(STRATEGY_NAMES)}; received {strategy!r}.")
    return ArchitectureOracle(space, strategy, objective=objective, max_trials=max_trials, seed=seed,
                              strategy_kwargs=strategy_kwargs)
