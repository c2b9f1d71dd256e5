"""AutoModel's augmentation option for images: a given or searched `AugmentationPolicy`.

`AutoModel(augmentation_policy=...)` takes an `AugmentationPolicy` layer (or its config), or
`"search"`: before the architecture search, `tfmeta.augmentation_search.PolicySearch` scores
`POLICY_TRIALS` policies by a small child network's validation accuracy on the same split. The
policy then sits in front of every trial's network and of the refit (after the normalisation,
so its value range and fill value are those of the normalised images) and is written to
`tfmeta.json` as `augmentation_policy`. It augments only while training: predictions and the
export see the images unchanged.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import keras

#: Policies a `"search"` tries (the "no augmentation" baseline included).
POLICY_TRIALS = 8


def check(value) -> None:
    """Raises unless `value` is None, "search", an AugmentationPolicy or its config."""
    from tfmeta.augmentation_search import AugmentationPolicy

    if value is None or value == "search" or isinstance(value, AugmentationPolicy):
        return
    if isinstance(value, dict) and "sub_policies" in value:
        AugmentationPolicy.from_config(value)
        return
    raise ValueError("`augmentation_policy` must be None, 'search', a tfmeta.augmentation_search.AugmentationPolicy "
                     f"or its config; received {value!r}.")


def resolve(am, x, y, xv, yv) -> dict | None:
    """The policy config the children train with (searched when asked), set as
    `am.augmentation_policy_`; None without a policy."""
    from tfmeta.augmentation_search import AugmentationPolicy, PolicySearch, small_convnet

    setting = getattr(am, "augmentation_policy", None)
    am.augmentation_policy_ = None
    if setting is None:
        return None
    if am.task_kind_ != "image":
        raise ValueError(f"`augmentation_policy` applies to images; `x` is a table of shape {(None, *am.input_shape_)}.")
    pre = am.preprocessing_
    sample = pre.transform(x[:2000])
    ranges = {"value_range": [float(sample.min()), float(sample.max())], "fill_value": float(sample.min())}
    if setting == "search":
        start = time.time()
        classes = len(am.classes_) if am.task == "classification" else None
        if classes is None:
            raise ValueError("`augmentation_policy='search'` scores policies by accuracy: it is for task='classification'.")
        search = PolicySearch(lambda policy: small_convnet(policy, pre.model_input_shape, classes),
                              strategy=am.strategy, max_trials=POLICY_TRIALS, seed=am.seed or 0,
                              directory=am.directory, project_name=f"{am.project_name}_augmentation",
                              overwrite=am.overwrite, **ranges)
        search.fit(sample if len(x) <= 2000 else pre.transform(x), y, validation_data=(pre.transform(xv), yv),
                   epochs=am.epochs, batch_size=am.batch_size)
        policy = search.best_policy()
        am._log(f"[augmentation] {policy.describe()}  score={search.results()[0]['score']:.4f}  "
                f"elapsed={time.time() - start:.0f}s")
    elif isinstance(setting, AugmentationPolicy):
        policy = setting
    else:
        policy = AugmentationPolicy.from_config(setting)
    config = policy.get_config()  # the sub-policies, at the value range of the normalised images
    am.augmentation_policy_ = {"sub_policies": config["sub_policies"], "seed": config["seed"], **ranges}
    return am.augmentation_policy_


def with_policy(builder: Callable[[Sequence[int]], keras.Model], config: dict | None):
    """`builder` with a fresh policy layer of `config` in front (or `builder` itself without one)."""
    if config is None:
        return builder
    from tfmeta.augmentation_search import AugmentationPolicy

    def build(shape):
        inputs = keras.Input(tuple(shape))
        return keras.Model(inputs, builder(shape)(AugmentationPolicy.from_config(config)(inputs)))

    return build

