"""Augmentation policy search: the architecture search machinery, searching policies instead.

Each trial trains a small child network briefly with a candidate policy in front of it and
scores it by validation accuracy, as AutoAugment (Cubuk et al. 2019) does with a controller RNN
rewarded by a child's accuracy. The policies are points of `policy_space`, so the trials run
through `tfmeta.nas.search.ArchitectureSearch`: KerasTuner trials (saved, resumable) proposed by
the controller RNN, regularised evolution or random search. Every child starts from the same
initial weights (the seed is reset before each is built), so the policy is what differs; the
first trial is the policy that changes nothing, the baseline a found policy has to beat.

A short child training is a noisy reward: with `reward_seeds=k` each policy trains `k`
children (KerasTuner's `executions_per_trial`), from `k` different initial weights and policy
draws, and is scored by the mean of their best validation accuracies.

Example:

>>> search = PolicySearch(lambda policy: small_convnet(policy, (8, 8, 1), 10), strategy="evolution",
...                       max_trials=12, directory="runs", project_name="policy")
>>> search.fit(x, y, validation_data=(xv, yv), epochs=5)
>>> policy = search.best_policy()           # an AugmentationPolicy layer
>>> big = keras.Sequential([keras.Input((8, 8, 1)), policy, ...])
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras

from tfmeta.augmentation_search.policy import AugmentationPolicy
from tfmeta.augmentation_search.space import no_augmentation, policy_from_architecture, policy_space
from tfmeta.nas.space import Architecture, SearchSpace


def small_convnet(policy: keras.layers.Layer | None, input_shape: Sequence[int], classes: int,
                  filters: int = 16, learning_rate: float = 3e-3) -> keras.Model:
    """A compiled two-convolution child network with `policy` (if any) as its first layer."""
    layers = [keras.Input(tuple(input_shape))] + ([policy] if policy is not None else [])
    layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
               keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu"), keras.layers.Flatten(),
               keras.layers.Dense(classes, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return model


class PolicySearch:
    """Searches an augmentation policy by the validation accuracy of short child trainings.

    Args:
        build_child: `policy layer -> compiled keras.Model` with the policy as its first layer
            (e.g. `lambda p: small_convnet(p, (8, 8, 1), 10)`).
        space: A `policy_space(...)`; None: two sub-policies of two operations over all
            operations.
        strategy: `"controller"`, `"evolution"` or `"random"`.
        max_trials: Policies tried (the "no augmentation" baseline included).
        value_range: `(low, high)` of the images' pixel values.
        fill_value: Pixel value geometric operations bring in.
        seed: Seed of the strategy, of every child's initial weights and of the policies.
        reward_seeds: Children trained per policy (seeds `seed`, `seed + 1`, ...), their best
            validation accuracies averaged into the policy's score.
        directory, project_name, overwrite: Where the KerasTuner trials persist.
        **search_kwargs: Other `ArchitectureSearch` arguments (`strategy_kwargs`, `max_time`,
            `callbacks`).
    """

    def __init__(self, build_child: Callable[[AugmentationPolicy], keras.Model], space: SearchSpace | None = None,
                 strategy: str = "evolution", max_trials: int = 10, value_range: Sequence[float] = (0.0, 1.0),
                 fill_value: float = 0.0, seed: int = 0, directory: str = "runs",
                 project_name: str = "augmentation_policy", overwrite: bool = False, reward_seeds: int = 1,
                 **search_kwargs: Any):
        from tfmeta.nas.search import ArchitectureSearch

        if not callable(build_child):
            raise ValueError(f"`build_child` must be a function policy -> keras.Model; received {build_child!r}.")
        if isinstance(reward_seeds, bool) or not isinstance(reward_seeds, int) or reward_seeds < 1:
            raise ValueError(f"`reward_seeds` must be an integer >= 1; received {reward_seeds!r}.")
        self.reward_seeds = reward_seeds
        self._builds: dict[str, int] = {}  # children built per policy: the next one's seed offset
        if reward_seeds > 1:
            search_kwargs["tuner_kwargs"] = {**search_kwargs.get("tuner_kwargs", {}),
                                             "executions_per_trial": reward_seeds}
        self.space = space if space is not None else policy_space()
        self.build_child = build_child
        self.layer_kwargs = {"value_range": tuple(value_range), "fill_value": float(fill_value), "seed": int(seed)}
        self.seed = int(seed)
        self.search = ArchitectureSearch(
            self.space, build_model=self._build, strategy=strategy, objective="val_accuracy",
            max_trials=max_trials, directory=directory, project_name=project_name, overwrite=overwrite,
            seed=seed, initial_architectures=[no_augmentation(self.space)], **search_kwargs)

    def policy(self, arch: Architecture) -> AugmentationPolicy:
        """The policy layer of a point of the space."""
        return policy_from_architecture(arch, **self.layer_kwargs)

    def _build(self, arch: Architecture) -> keras.Model:
        # Every policy's k-th child starts alike (seed + k): the policy is the difference.
        count = self._builds.get(str(arch), 0)
        self._builds[str(arch)] = count + 1
        seed = self.seed + count % self.reward_seeds
        keras.utils.set_random_seed(seed)
        return self.build_child(policy_from_architecture(arch, **{**self.layer_kwargs, "seed": seed}))

    def fit(self, x, y, validation_data, epochs: int = 3, batch_size: int = 32, **fit_kwargs: Any) -> "PolicySearch":
        """Runs the trials: each child trains `epochs` epochs on `(x, y)`, scored on `validation_data`."""
        self.search.search(x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size,
                           verbose=fit_kwargs.pop("verbose", 0), **fit_kwargs)
        return self

    def best_policy(self) -> AugmentationPolicy:
        """The policy of the best trial (a fresh layer)."""
        return self.policy(self.search.best_architecture())

    def results(self) -> list[dict]:
        """Completed trials, best first: `policy` (readable), `config` (the layer's), `score`."""
        rows = []
        for record in self.search.completed():
            policy = self.policy(Architecture.from_config(record["architecture"]))
            rows.append({"trial": record["trial_id"], "policy": policy.describe(),
                         "config": policy.get_config()["sub_policies"], "score": float(record["score"])})
        return sorted(rows, key=lambda r: -r["score"])
