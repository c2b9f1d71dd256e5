"""`AutoModel`: a scikit-learn style front door that searches, trains and exports.

The estimator holds the parameters, checks them and the data, and dispatches the work to one
module per task family: `supervised` (classification and regression: the architecture
search, the refit, export), `few_shot` (the learner candidates and their ensemble) and
`similarity` (a Siamese model on pairs).

Example:

>>> am = tfmeta.AutoModel(task="classification", max_trials=3, epochs=10, seed=0,
...                       directory="runs", project_name="digits")
>>> am.fit(x_train, y_train)                 # numpy, tf.data (x, y) batches, or an image folder
>>> am.fit("train.csv", y="price")          # a table, raw (or a DataFrame, or a list of texts)
>>> print(am.summary())                      # what it read: the inferred column types
>>> am.score(x_test, y_test)
>>> am.leaderboard()[0]                      # best trial first
>>> am.export("saved_models/digits")        # -> saved_models/digits/<next version>/
"""

from __future__ import annotations

import numbers
import time

import keras
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from tfmeta.automodel import augmentation, few_shot, fingerprint, raw_data, similarity, supervised, warm_start
from tfmeta.automodel import inputs as inputs_lib
from tfmeta.automodel.preprocessing import Preprocessing
from tfmeta.nas.distribution import check_strategy

TASKS = ("classification", "regression", "few_shot", "similarity")
STRATEGIES = ("controller", "evolution", "random", "predictor", "pnas", "tpe")
TRAIN_PATHS = ("trial", "uniform")
_FAMILIES = {"classification": supervised, "regression": supervised, "few_shot": few_shot,
             "similarity": similarity}


class AutoModel(BaseEstimator):
    """Chooses, trains and exports a model for the user's data.

    Args:
        task: `"classification"`, `"regression"` (images `(N, H, W[, C])` or tables
            `(N, F)`), `"few_shot"` (fit on base classes, predict new classes from a support
            set) or `"similarity"` (a Siamese model; `predict` on pairs).
        max_trials: Architectures (or few-shot learners) tried.
        epochs: Training epochs per trial (classification/regression), with early stopping
            on the validation split; for few-shot/similarity, epochs of `steps_per_epoch`.
        max_time: Wall-clock budget in seconds for the search, or None. No trial starts after
            it; the best trial so far is kept.
        strategy: NAS strategy: `"controller"` (REINFORCE RNN), `"evolution"`, `"random"`,
            `"predictor"` (surrogate-guided), `"pnas"` (progressive) or `"tpe"`.
        seed: Seed that makes a run repeatable.
        directory: Where searches persist their trials (KerasTuner layout).
        project_name: Sub-folder of `directory` for this search.
        overwrite: Start the search afresh instead of resuming it. With `overwrite=False`
            the project resumes only on the data it was searched on: it records what that
            was (task, input kind and shape or columns and their types, rows, classes, a
            hash of sampled rows) in `directory/project_name/tfmeta_fingerprint.json`, and
            `fit` on other data raises a `ValueError` saying what differs (pass
            `overwrite=True` or another `project_name`) rather than reuse the old search.
        batch_size: Training batch size.
        patience: Early-stopping patience in epochs.
        steps_per_epoch: Episodes (or pair batches) per epoch for few-shot/similarity.
        learners: Few-shot candidates, a subset of `("protonet", "maml", "siamese")`.
        ways: Ways of the few-shot validation episodes (and training episodes).
        shots: Shots of the few-shot validation episodes.
        refit: Classification/regression: after the search, retrain the best architecture on
            all the training data (the validation split included) for `refit_epochs` epochs.
            Skipped when `validation_data` is given or `max_time` is spent (except after a
            weight-sharing search, which trains no model per trial).
        ensemble: Classification/regression with a refit: predict with the average of the
            refit model and the best trial's own trained model (the same architecture from
            another initialisation, trained on the search split; not after a weight-sharing
            search). Two members cut the spread that the refit's initialisation alone leaves.
            Few-shot: also score a soft-voting `FewShotEnsemble` of the two best learners on
            the validation episodes, and keep it when it beats the best learner alone.
        verbose: 0 silent, 1 one progress line per trial.
        space: The architectures searched: a `tfmeta.nas.MicroCellSpace` for images or a
            `tfmeta.nas.DenseSpace` for tables. None: a 3-node cell space with the ENAS
            operations, or three dense layers of 0-256 units.
        filters: Image tasks: channels of the first stage of the searched cell networks.
        learning_rate: Adam learning rate of the trials (and of the shared supernet) and of
            the refit.
        weight_sharing: Image classification: ENAS. The children share one supernet's weights
            (`tfmeta.nas.enas.WeightSharingSearch`), each trained for `child_steps` batches and
            scored with the shared weights; the architecture `derive()` picks is then trained
            from scratch on all the training data (the refit, always run).
        child_steps: With `weight_sharing`: shared-weight training batches per child.
        train_paths: With `weight_sharing`: `"trial"` (the batches train the trial's own
            child) or `"uniform"` (a uniformly random child per batch).
        refit_cells: Image tasks: the refit stacks the best cell this many times per stage
            (NASNet's "search small, stack deep"; the children have one). None: the searched depth.
        refit_filters: Image tasks: first-stage channels of the refit model (None: `filters`).
        refit_epochs: Epochs of the refit. None: `epochs`, or the best trial's best epoch
            count if larger (tables, text and image folders: the best trial's best epoch count).
        search_sample: Classification/regression on arrays: search on this fraction (a float in
            (0, 1]) or this number (an int) of the search split, drawn stratified and seeded;
            the refit still trains on all the data. With `refit_cells`/`refit_filters`, this
            is NASNet's "search small, stack deep". None: the whole search split.
        column_types: Tables: `{column: kind}` overriding the inferred kinds (`"numeric"`,
            `"categorical"`, `"datetime"`, `"text"`, `"ignore"`); see `summary()`.
        warm_start_store: Classification/regression: a folder of past projects' meta-features
            and best configurations (`tfmeta.automodel.warm_start`; True: `~/.tfmeta/warm_start`).
            The search first tries the best configurations of the nearest past data sets
            (leaderboard `origin` "warm start"), then records this project's. None: off.
        augmentation_policy: Images (arrays or a folder): a
            `tfmeta.augmentation_search.AugmentationPolicy` (or its config) in front of every
            trial's network and the refit, in training only, or `"search"` to search one first
            (`tfmeta.automodel.augmentation`). None: no augmentation. Tables and texts: an error.
        distribution_strategy: Optional `tf.distribute.Strategy` (e.g. `MirroredStrategy()`
            over a machine's GPUs): every trial, the refit and the few-shot candidates are
            built and trained under it (KerasTuner's `distribution_strategy`). For a search
            over several processes or machines (KerasTuner's chief/worker mode), see
            `tfmeta.automodel.distributed` and docs/scale-out.md.

    A refit model built afresh (deeper or wider cells, or after a weight-sharing search)
    trains with a cosine-decayed learning rate and dropout 0.1 before its classifier; at the
    searched size the refit reuses the best trial's model, reset to its initial state.

    Fitted attributes: `model_` (Keras model taking raw inputs; for few-shot, a learner or a
    `FewShotEnsemble`), `members_` (the models whose outputs `model_` averages, or
    `[model_]`), `classes_`, `task_kind_`, `preprocessing_`, `best_architecture_`,
    `best_learner_`, `best_score_`, `trials_`, `n_features_in_`, `input_shape_`, `fit_time_`;
    classification/regression also `refit_epochs_` (None without a refit), `search_`
    (the search summary), `search_time_` and `refit_time_` (seconds), `search_examples_` (the
    examples the trials trained on; fewer with `search_sample`). On raw data (tables,
    text, image folders) `preprocessing_`, `input_shape_` and `n_features_in_` are replaced by
    `raw_task_` (what was read: for a table its column specs, `raw_task_.specs`) and
    `best_choices_` (the best trial's encodings, widths and training settings); the
    leaderboard also lists failed trials (`status`, `error`). `data_kind_` says which.
    Classification/regression also set `search_role_`: `"local"`, or in KerasTuner's
    chief/worker mode `"chief"` (refits and holds the model) or `"worker"` (its `fit` ends after
    its trials, with `worker_trials_` and no model).
    """

    def __init__(
        self,
        task: str = "classification",
        max_trials: int = 10,
        epochs: int = 10,
        max_time: float | None = None,
        strategy: str = "controller",
        seed: int | None = None,
        directory: str = "runs",
        project_name: str = "automodel",
        overwrite: bool = False,
        batch_size: int = 32,
        patience: int = 3,
        steps_per_epoch: int = 100,
        learners: tuple[str, ...] = ("protonet", "maml", "siamese"),
        ways: int = 5,
        shots: int = 1,
        refit: bool = True,
        ensemble: bool = True,
        verbose: int = 1,
        space=None,
        filters: int = 32,
        learning_rate: float = 1e-3,
        weight_sharing: bool = False,
        child_steps: int = 20,
        train_paths: str = "trial",
        refit_cells: int | None = None,
        refit_filters: int | None = None,
        refit_epochs: int | None = None,
        column_types: dict | None = None,
        search_sample: float | int | None = None,
        warm_start_store=None,
        augmentation_policy=None,
        distribution_strategy=None,
    ):
        self.task = task
        self.max_trials = max_trials
        self.epochs = epochs
        self.max_time = max_time
        self.strategy = strategy
        self.seed = seed
        self.directory = directory
        self.project_name = project_name
        self.overwrite = overwrite
        self.batch_size = batch_size
        self.patience = patience
        self.steps_per_epoch = steps_per_epoch
        self.learners = learners
        self.ways = ways
        self.shots = shots
        self.refit = refit
        self.ensemble = ensemble
        self.verbose = verbose
        self.space = space
        self.filters = filters
        self.learning_rate = learning_rate
        self.weight_sharing = weight_sharing
        self.child_steps = child_steps
        self.train_paths = train_paths
        self.refit_cells = refit_cells
        self.refit_filters = refit_filters
        self.refit_epochs = refit_epochs
        self.column_types = column_types
        self.search_sample = search_sample
        self.warm_start_store = warm_start_store
        self.augmentation_policy = augmentation_policy
        self.distribution_strategy = distribution_strategy

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}; received {self.task!r}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"`strategy` must be one of {STRATEGIES}; received {self.strategy!r}.")
        if self.train_paths not in TRAIN_PATHS:
            raise ValueError(f"`train_paths` must be one of {TRAIN_PATHS}; received {self.train_paths!r}.")
        positive = ("max_trials", "epochs", "batch_size", "steps_per_epoch", "ways", "shots", "filters", "child_steps")
        for name in positive + ("refit_cells", "refit_filters", "refit_epochs"):
            value = getattr(self, name)
            if value is None and name not in positive:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                optional = "" if name in positive else "None or "
                raise ValueError(f"`{name}` must be {optional}an integer >= 1; received {value!r}.")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"`max_time` must be None or a number of seconds > 0; received {self.max_time!r}.")
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, numbers.Real) \
                or not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be a number > 0; received {self.learning_rate!r}.")
        if self.weight_sharing and self.task != "classification":
            raise ValueError(f"`weight_sharing=True` is for task='classification'; received task={self.task!r}.")
        if self.weight_sharing and not self.refit:
            raise ValueError("`weight_sharing=True` trains no model per trial, so it needs `refit=True`; "
                             "received refit=False.")
        if self.task == "few_shot":
            few_shot.check_candidates(self.learners)
        supervised.check_search_sample(self.search_sample, self.task)
        augmentation.check(self.augmentation_policy, self.task)
        check_strategy(self.distribution_strategy)

    def _check_fitted(self) -> None:
        if getattr(self, "search_role_", None) == "worker":
            raise NotFittedError("This AutoModel ran trials as a KerasTuner worker: the chief process "
                                 "holds the fitted model (refit, predict and export there).")
        if not hasattr(self, "model_"):
            # scikit-learn's NotFittedError (a ValueError and an AttributeError), as its estimators raise.
            raise NotFittedError("This AutoModel is not fitted yet: call `fit` before using it.")

    def _check_x(self, x, name: str = "x") -> np.ndarray:
        x, _ = inputs_lib.to_arrays(x)
        return inputs_lib.check_features(x, name, self.input_shape_)

    def _log(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    @property
    def _family(self):
        if getattr(self, "data_kind_", "arrays") in inputs_lib.RAW_KINDS:
            return raw_data
        return _FAMILIES[self.task]

    def summary(self) -> str:
        """What `fit` read: the inferred column types of a table (to correct them with
        `column_types`), or the input kind and shape; and the best configuration."""
        self._check_fitted()
        task = getattr(self, "raw_task_", None)
        lines = [f"AutoModel(task={self.task!r}) on {getattr(self, 'data_kind_', 'arrays')}"]
        if task is not None and hasattr(task, "summary"):
            lines.append(task.summary())
        elif hasattr(self, "input_shape_"):
            lines.append(f"input shape {(None, *self.input_shape_)}")
        lines.append(f"best: {self.best_architecture_}  score={self.best_score_:.4f}")
        return "\n".join(lines)

    # --------------------------------------------------------------------- fit
    def fit(self, x, y=None, validation_split: float = 0.2, validation_data=None, image_size=None):
        """Searches and trains a model.

        Args:
            x: The data as the user has it (classification and regression): a pandas
                DataFrame, a dict of columns or the path of a CSV file (a table, raw: mixed
                types and missing values; a CSV is streamed); a list or array of strings
                (raw text); a folder of images with one sub-folder per class (streamed, any
                image size); or numeric arrays / a batched `tf.data.Dataset` of `(x, y)`.
                Few-shot and similarity tasks take numeric arrays.
            y: Labels/targets; for a table, the name of its target column instead (`fit(
                "train.csv", y="price")`); None for datasets and folders.
            validation_split: Fraction of the data held out to score trials (classification
                and regression: examples; few-shot: base classes).
            validation_data: Optional `(x_val, y_val)` instead of the split (classification
                and regression).
            image_size: `(height, width)` for image folders (default: the first image's size).

        Returns:
            self.
        """
        self._check_params()
        if not 0.0 < validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in (0, 1); received {validation_split!r}.")
        kind = inputs_lib.data_kind(x, self.task)
        if validation_data is not None and self.task not in ("classification", "regression"):
            raise ValueError("`validation_data` is for task='classification' or 'regression'; "
                             f"task={self.task!r} holds out `validation_split` of the classes.")
        keras.utils.set_random_seed(0 if self.seed is None else int(self.seed))
        for attribute in ("raw_task_", "input_shape_", "preprocessing_", "classes_", "search_role_"):  # a re-fit starts afresh
            self.__dict__.pop(attribute, None)
        self.data_kind_ = kind
        self._start = time.time()
        if kind in inputs_lib.RAW_KINDS:
            warm_start.prepare(self, x, y)  # the data set's meta-features, when warm-starting
            if self.search_sample is not None:
                raise ValueError(f"`search_sample` is for numeric arrays; received {kind} data (search_sample="
                                 f"{self.search_sample!r}).")
            with fingerprint.discarded_on_failure(self):
                raw_data.fit(self, x, y, validation_split, validation_data)
            self.task_kind_ = kind
            self.fit_time_ = time.time() - self._start
            return self
        x, y = inputs_lib.to_arrays(x, y, image_size=image_size)
        inputs_lib.check_features(x)
        y = inputs_lib.check_targets(x, y, self.task)
        warm_start.prepare(self, x, y)
        self.task_kind_ = inputs_lib.input_kind(x)
        self.n_features_in_ = int(np.prod(x.shape[1:]))
        self.input_shape_ = tuple(x.shape[1:])
        self.preprocessing_ = Preprocessing(x, self.task_kind_)
        if self.task != "regression":
            self.classes_ = np.unique(y)
            y = np.searchsorted(self.classes_, y).astype(np.int64)
        fingerprint.start_project(self, fingerprint.of_arrays(
            self.task, self.task_kind_, x, y, None if self.task == "regression" else self.classes_))
        with fingerprint.discarded_on_failure(self):
            self._family.fit(self, x, y, validation_split, validation_data)
        self.fit_time_ = time.time() - self._start
        return self

    # ----------------------------------------------------------------- predict
    def predict_proba(self, x, support=None) -> np.ndarray:
        """Class probabilities `[N, C]` (classification) or `[Q, N]` for a support set."""
        self._check_fitted()
        if self.task not in ("classification", "few_shot"):
            raise ValueError(f"`predict_proba` is for task='classification' or 'few_shot'; this AutoModel has task={self.task!r}.")
        return self._family.predict_proba(self, x, support)

    def predict(self, x, support=None) -> np.ndarray:
        """Class labels (classification), values (regression), class ids 0..N-1 of a support
        set (few_shot: pass `support=(support_x, support_y)`), or same-class probabilities of
        pairs `x=(x1, x2)` (similarity)."""
        self._check_fitted()
        return self._family.predict(self, x, support)

    def evaluate(self, x, y=None, episodes: int = 200) -> dict:
        """Test metrics: accuracy (classification), mse/mae/r2 (regression), episode accuracy with
        95% CI on new classes (few_shot), pair accuracy (similarity)."""
        self._check_fitted()
        if self._family is raw_data:
            return raw_data.evaluate(self, x, y, episodes=episodes)
        x, y = inputs_lib.to_arrays(x, y)
        inputs_lib.check_features(x, "x", self.input_shape_)
        y = inputs_lib.check_targets(x, y, self.task)
        return self._family.evaluate(self, x, y, episodes=episodes)

    def score(self, x, y=None) -> float:
        """Accuracy (classification, few_shot), R^2 (regression) or pair accuracy (similarity)."""
        metrics = self.evaluate(x, y)
        return metrics.get("accuracy", metrics.get("r2", metrics.get("pair_accuracy")))

    def leaderboard(self) -> list[dict]:
        """Every trial, best first: trial, architecture or learner, score, seconds."""
        self._check_fitted()
        return [dict(t) for t in self.trials_]

    # ------------------------------------------------------------------ export
    def export(self, path: str, version: int | None = None) -> str:
        """Writes `path/<next version>/` with `serving_default` taking raw inputs (and
        `few_shot` for few-shot tasks) plus `tfmeta.json`; returns the version directory."""
        self._check_fitted()
        meta = {
            "task": self.task,
            "learner": self.best_learner_,
            "architecture": self.best_architecture_,
            "input_spec": self.preprocessing_.get_config() if hasattr(self, "preprocessing_") else None,
            "class_names": self.classes_.tolist() if self.task == "classification" else None,
            "metrics": {"validation_score": self.best_score_},
            "leaderboard": self.trials_,
            "augmentation_policy": getattr(self, "augmentation_policy_", None),
        }
        return self._family.export(self, path, meta, version)
