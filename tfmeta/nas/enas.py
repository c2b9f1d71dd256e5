"""ENAS weight-sharing search (Pham et al. 2018): every child of a cell search trains one supernet.

- `WeightSharingSearch`: an `ArchitectureSearch` whose trials train the shared network
  (`tfmeta.nas.supernet.SharedCellNetwork`): a trial sets its architecture, trains the
  supernet for `child_steps` batches and reports the child's validation accuracy with the
  shared weights as the reward. The strategy (controller RNN, evolution or random search:
  random search with weight sharing is Li & Talwalkar's baseline) is the same KerasTuner oracle
  as without sharing, so a killed search resumes: the shared weights and their optimizer state
  are checkpointed atomically in the project folder after every trial
  (`tfmeta.nas.checkpoint`). `derive()` re-scores the best and the latest children with the
  final shared weights (batch-norm statistics re-estimated for each) and picks the
  architecture to retrain from scratch (`build_best_model()`).
- `WeightSharingTuner`: the KerasTuner tuner running those trials.
- `UniformPathSampler`: a callback training a new uniformly random child at every batch.

Unlike ENAS's alternating epochs, a trial trains the supernet for `child_steps` batches and
then scores its child. With `train_paths="trial"` those batches train the trial's own child,
so the reward comes right after its own training; with `train_paths="uniform"` each batch
trains a uniformly random child (`UniformPathSampler`, single-path one-shot training) and the
trial's child is only scored. Before it is scored, the child's batch norm is re-estimated on
one fixed random sample of 512 training images.

Scaling out: the search is sequential by design (each trial trains the shared weights the next
trial starts from), so KerasTuner's chief/worker mode, which would train one independent
supernet per worker and share only the controller, is refused with an error. Checkpointing
the shared weights between trials does not lift this: two workers training copies of the same
weights at once would each overwrite the other's steps, or need a merge that is not ENAS
anymore. More devices or machines serve one search instead through `distribution_strategy`
(the supernet's batches split across replicas: `MirroredStrategy` over GPUs, or
`MultiWorkerMirroredStrategy` across machines, every machine running the same script).

Example:

>>> space = MicroCellSpace(num_nodes=3)
>>> search = WeightSharingSearch(space, input_shape=(8, 8, 1), num_classes=10, max_trials=100,
...                              child_steps=10, directory="runs", project_name="enas", seed=0)
>>> search.search(x, y, validation_data=(xv, yv))               # doctest: +SKIP
>>> arch, shared_accuracy = search.derive((xv, yv))              # doctest: +SKIP
>>> model = search.build_best_model(arch)                        # retrain from scratch  # doctest: +SKIP
"""

from __future__ import annotations

import numbers
import os
import zlib
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras_tuner.src.engine import base_tuner

from tfmeta._deprecation import moved_names
from tfmeta.nas import checkpoint, supernet
from tfmeta.nas.distribution import check_strategy, strategy_scope
from tfmeta.nas.cells import build_cell_model
from tfmeta.nas.oracles import ArchitectureOracle
from tfmeta.nas.search import ArchitectureSearch, TrialCallbacks
from tfmeta.nas.space import Architecture, MicroCellSpace
from tfmeta.training_state import build_training_state

CHECKPOINT = "shared_weights.npz"
TRAIN_PATHS = ("trial", "uniform")
CALIBRATION_IMAGES = 512  # training images whose statistics a child's batch norm uses when scored

# The supernet and its checkpoints lived here before the supernet was split from the search.
__getattr__ = moved_names(__name__, {
    "SharedCell": "tfmeta.nas.supernet",
    "SharedCellNetwork": "tfmeta.nas.supernet",
    "architecture_indices": "tfmeta.nas.supernet",
    "save_checkpoint": "tfmeta.nas.checkpoint",
    "load_checkpoint": "tfmeta.nas.checkpoint",
})


def check_validation_data(validation_data) -> None:
    """Raises ValueError unless `validation_data` is a pair `(x_val, y_val)`."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("`validation_data` must be a tuple (x_val, y_val) of arrays.")


class UniformPathSampler(keras.callbacks.Callback):
    """Trains a `SharedCellNetwork` on a new uniformly random child at every batch.

    Single-path one-shot training (Bender et al. 2018, Guo et al. 2020): the shared weights
    learn to serve every child of the space, not the last one trained.

    Args:
        space: The network's `MicroCellSpace`.
        rng: The source of the children.

    Example:

    >>> network.fit(data, steps_per_epoch=100,                        # doctest: +SKIP
    ...             callbacks=[UniformPathSampler(space, np.random.default_rng(0))])
    """

    def __init__(self, space: MicroCellSpace, rng: np.random.Generator):
        super().__init__()
        self.space = space
        self.rng = rng

    def on_train_batch_begin(self, batch, logs=None):
        self.model.set_architecture(self.space.sample(self.rng))


class WeightSharingTuner(TrialCallbacks, base_tuner.BaseTuner):
    """A KerasTuner tuner whose trials train and score children of one `SharedCellNetwork`."""

    def __init__(self, oracle: ArchitectureOracle, network: supernet.SharedCellNetwork, child_steps: int,
                 batch_size: int, seed: int, train_paths: str = "trial", **kwargs):
        super().__init__(oracle=oracle, hypermodel=None, **kwargs)
        self.space = oracle.space
        self.network = network
        self.child_steps = child_steps
        self.train_paths = train_paths
        self.batch_size = batch_size
        self.seed = seed
        self.checkpoint_path = os.path.join(self.project_dir, CHECKPOINT)
        self.calibration_images = None  # a fixed random sample of the training images
        self._training = None  # (x, the unshuffled tf.data.Dataset of (x, y)), built once per search

    def _settings(self) -> dict:
        """What the shared weights mean: a resumed search must train them the same way."""
        return {"train_paths": self.train_paths}

    def _calibration_sample(self, x):
        if self.calibration_images is None:
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(len(x), min(len(x), CALIBRATION_IMAGES), replace=False))
            self.calibration_images = np.asarray(x)[pick]
        return self.calibration_images

    def on_search_begin(self):
        super().on_search_begin()
        if os.path.exists(self.checkpoint_path):
            checkpoint.load_checkpoint(self.checkpoint_path, self.network, self._settings())

    def run_trial(self, trial, x, y, validation_data, **kwargs):
        arch = self.space.from_hp_values(trial.hyperparameters.values)
        self.network.set_architecture(arch)
        if self._training is None or self._training[0] is not x:
            self._training = (x, tf.data.Dataset.from_tensor_slices((x, y)))  # one copy of the data, not one per trial
            build_training_state(self.network, x, y)  # metrics and loss too: one trace of the train step, not two
        # Each trial sees its own shuffle of the training data (seeded by the trial id), so a
        # resumed search replays the same batches.
        trial_seed = (self.seed * 1_000_003 + zlib.crc32(trial.trial_id.encode())) % (2**31)
        data = self._training[1].shuffle(min(len(x), 10_000), seed=trial_seed).repeat().batch(self.batch_size)
        callbacks = []
        if self.train_paths == "uniform":
            callbacks.append(UniformPathSampler(self.space, np.random.default_rng(trial_seed)))
        self.network.fit(data, steps_per_epoch=self.child_steps, epochs=1, verbose=0, callbacks=callbacks)
        self.network.set_architecture(arch)  # the trial's child is the one scored
        self.network.calibrate_batch_norm(self._calibration_sample(x))
        x_val, y_val = validation_data
        metrics = self.network.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)
        checkpoint.save_checkpoint(self.checkpoint_path, self.network, self._settings())
        return {"val_accuracy": float(metrics["accuracy"]), "val_loss": float(metrics["loss"])}

    def save_model(self, trial_id, model, step=0):
        pass

    def load_model(self, trial):
        return None


class WeightSharingSearch(ArchitectureSearch):
    """ENAS: an architecture search whose children share one supernet's weights.

    Args:
        space: A `MicroCellSpace`.
        input_shape: Image shape `(H, W, C)`.
        num_classes: Output classes.
        strategy: `"controller"` (ENAS), `"evolution"` or `"random"` (random search with
            weight sharing).
        child_steps: Training batches of the shared network per trial (per child).
        train_paths: Which children those batches train. `"trial"`: the trial's own child, then
            it is scored (its reward comes right after its own training). `"uniform"`: a new
            uniformly random child per batch (single-path one-shot training, Bender et al.
            2018, Guo et al. 2020), and the trial's child is only scored, so every child is
            judged by weights trained for all of them.
        batch_size: Training batch size.
        filters: First-stage channels of the supernet.
        num_reductions: Reduction cells of the supernet.
        optimizer: Optimizer of the shared weights (default: Adam 3e-3).
        max_trials: Children in the project (a resumed search extends to this many).
        directory: Parent folder of the project.
        project_name: Project folder name.
        overwrite: Start afresh instead of resuming.
        seed: Seeds the strategy, the supernet's initial weights and the batches.
        max_time: Optional wall-clock limit of `search()`, seconds.
        strategy_kwargs: Strategy arguments (controller `learning_rate`, ...).
        tuner_kwargs: Extra KerasTuner tuner arguments.
        callbacks: Objects with `on_trial_end(search, record)`, as in `ArchitectureSearch`.
        distribution_strategy: Optional `tf.distribute.Strategy` the supernet is built and
            trained under (its batches split across the replicas).

    `search(x, y, validation_data=(x_val, y_val))` runs or resumes the search; the objective
    is the child's `val_accuracy` with the shared weights.
    """

    def __init__(self, space: MicroCellSpace, input_shape: Sequence[int], num_classes: int,
                 strategy: str = "controller", child_steps: int = 10, train_paths: str = "trial",
                 batch_size: int = 64, filters: int = 16,
                 num_reductions: int = 2, optimizer: keras.optimizers.Optimizer | None = None,
                 max_trials: int = 100, directory: str = "runs", project_name: str = "enas", overwrite: bool = False,
                 seed: int | None = None, max_time: float | None = None,
                 strategy_kwargs: Mapping[str, Any] | None = None, tuner_kwargs: Mapping[str, Any] | None = None,
                 callbacks: list | None = None, distribution_strategy: Any = None):
        if not isinstance(space, MicroCellSpace):
            raise ValueError(f"`space` must be a MicroCellSpace; received {type(space).__name__}.")
        for arg, value in (("child_steps", child_steps), ("batch_size", batch_size)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{arg}` must be a positive int; received {value!r}.")
        if train_paths not in TRAIN_PATHS:
            raise ValueError(f"`train_paths` must be one of {TRAIN_PATHS}; received {train_paths!r}.")
        tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
        if tuner_id:
            raise RuntimeError(
                "WeightSharingSearch runs in one process: its supernet lives in that process's "
                "memory, so KerasTuner's chief/worker mode would train one independent supernet "
                f"per worker (found KERASTUNER_TUNER_ID={tuner_id!r}). Unset KERASTUNER_TUNER_ID, "
                "or distribute an ArchitectureSearch (children trained from scratch) instead."
            )
        seed = 0 if seed is None else int(seed)
        self.train_paths = train_paths
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.filters = filters
        self.num_reductions = num_reductions
        self.child_steps = child_steps
        self.batch_size = batch_size
        self.seed = seed
        keras.utils.set_random_seed(seed)
        with strategy_scope(check_strategy(distribution_strategy)):
            self.network = supernet.SharedCellNetwork(space, self.input_shape, num_classes, filters=filters,
                                                      num_reductions=num_reductions)
            self.network.compile(optimizer=optimizer or keras.optimizers.Adam(3e-3),
                                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            build_training_state(self.network)  # the optimizer, which a resumed search's checkpoint restores
        super().__init__(space, strategy=strategy, objective="val_accuracy", max_trials=max_trials,
                         directory=directory, project_name=project_name, overwrite=overwrite, seed=seed,
                         max_time=max_time, strategy_kwargs=strategy_kwargs, tuner_kwargs=tuner_kwargs,
                         callbacks=callbacks, distribution_strategy=distribution_strategy)

    def _make_tuner(self, build_model, evaluate, compile_kwargs, tuner_kwargs: dict):
        return WeightSharingTuner(self.oracle, self.network, self.child_steps, self.batch_size, self.seed,
                                  train_paths=self.train_paths, **tuner_kwargs)

    def search(self, x, y, validation_data, **kwargs: Any) -> "WeightSharingSearch":
        """Runs (or resumes) the search on arrays `x`, `y` and `validation_data=(x_val, y_val)`.

        `verbose` goes to KerasTuner. Returns self.
        """
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"`x` and `y` must have the same length; received {len(x)} and {len(y)}.")
        check_validation_data(validation_data)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"`x` must hold images of shape {self.input_shape}; received {tuple(x.shape[1:])}.")
        x_val, y_val = (np.asarray(a) for a in validation_data)
        return super().search(x, y, validation_data=(x_val, y_val), **kwargs)

    def derive(self, validation_data: tuple, top_k: int = 5, calibration_data=None) -> tuple[Architecture, float]:
        """Picks the architecture to retrain: the best of the `top_k` best-rewarded and the
        `top_k` latest children, re-scored with the final shared weights.

        Args:
            validation_data: `(x_val, y_val)`.
            top_k: Candidates from each end.
            calibration_data: Images for each candidate's batch-norm statistics (default:
                the 512 training images the search used, or the first 512 validation images
                when this process has not searched).

        Returns:
            `(architecture, validation accuracy with the shared weights)`.

        With `train_paths="trial"` the final shared weights serve the latest children better
        than earlier ones (the shared weights drift towards the children trained last), so the
        pick tends to be one of the latest. With `train_paths="uniform"` every child is scored
        by weights trained for all of them.
        """
        records = self.completed()
        if not records:
            raise RuntimeError("No completed trial yet: run `search()` first.")
        best = sorted(records, key=lambda r: -r["score"])[:top_k]
        candidates = {r["arch"]: Architecture.from_config(r["architecture"]) for r in best + records[-top_k:]}
        archs = list(candidates.values())
        scores = self.score_children(archs, validation_data, calibration_data=calibration_data)
        best_index = int(np.argmax(scores))
        return archs[best_index], scores[best_index]

    def score_children(self, architectures: Sequence[Architecture], validation_data: tuple,
                       calibration_data=None) -> list[float]:
        """Validation accuracy of each architecture with the current shared weights.

        Each child's batch-norm statistics are re-estimated first (on `calibration_data`); the
        network's own statistics and current child are restored afterwards. This is the
        score `derive()` ranks by; comparing it with stand-alone training of the same
        architectures measures how well the supernet ranks them
        (`benchmarks/enas_rank_correlation.py`).

        Args:
            architectures: `Architecture`s of this search's space.
            validation_data: `(x_val, y_val)`.
            calibration_data: Images for each child's batch-norm statistics (default: the 512
                training images the search used, or the first 512 validation images when this
                process has not searched).

        Returns:
            One accuracy per architecture, in order.
        """
        check_validation_data(validation_data)
        x_val, y_val = validation_data
        calibration = calibration_data
        if calibration is None:
            calibration = self.tuner.calibration_images
        if calibration is None:
            calibration = x_val[:CALIBRATION_IMAGES]
        state = [keras.ops.convert_to_numpy(v) for v in self.network.non_trainable_weights]
        scores = []
        try:
            for arch in architectures:
                self.network.set_architecture(arch)
                self.network.calibrate_batch_norm(calibration)
                acc = self.network.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)["accuracy"]
                scores.append(float(acc))
        finally:
            for v, value in zip(self.network.non_trainable_weights, state):
                v.assign(value)
        return scores

    def build_best_model(self, arch: Architecture | None = None, **kwargs: Any) -> keras.Model:
        """A fresh (uncompiled) `build_cell_model` of `arch` (default: the best trial) to
        retrain from scratch; `kwargs` go to `build_cell_model` (e.g. `num_cells`, `filters`)."""
        arch = arch or self.best_architecture()
        options = {"filters": self.filters, "num_reductions": self.num_reductions, **kwargs}
        with strategy_scope(self.distribution_strategy):
            return build_cell_model(self.space, arch, self.input_shape, self.num_classes, **options)

    def best_model(self) -> keras.Model:
        raise RuntimeError("A weight-sharing search trains no model per trial: retrain `build_best_model()`.")
