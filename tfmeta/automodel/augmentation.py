"""AutoModel's augmentation option for images: a given or searched `AugmentationPolicy`.

`AutoModel(augmentation_policy=...)` takes an `AugmentationPolicy` layer (or its config), or
`"search"`: before the architecture search, `tfmeta.augmentation_search.PolicySearch` scores
`POLICY_TRIALS` policies by a small child network's validation accuracy on the same split (the
children train `epochs` epochs: too short a training ranks augmentation below none, see
docs/results.md). The policy then sits in front of every trial's network and of the refit
(after the normalisation, so its value range and fill value are those of the normalised
images) and is written to `tfmeta.json` as `augmentation_policy`. It augments only while
training: predictions and the export see the images unchanged.

Both image inputs take it: image arrays (`resolve`: after `Preprocessing`'s normalisation) and
streamed image folders (`resolve_raw`: after the model's in-graph resize and scaling to [0, 1];
a `"search"` reads up to `FOLDER_SEARCH_IMAGES` images of each split, at the smallest searched
image size, into memory for the children). Tables and texts with a policy are an error.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import keras

#: Policies a `"search"` tries (the "no augmentation" baseline included).
POLICY_TRIALS = 8


def check(value, task: str = "classification") -> None:
    """Raises unless `value` is None, "search", an AugmentationPolicy or its config, and (not
    None) the AutoModel's `task` is classification or regression."""
    from tfmeta.augmentation_search import AugmentationPolicy

    if value is not None and task not in ("classification", "regression"):
        raise ValueError("`augmentation_policy` is for task='classification' or 'regression'; received "
                         f"task={task!r} (its learners train on episodes or pairs). Pass augmentation_policy=None.")
    if value is None or value == "search" or isinstance(value, AugmentationPolicy):
        return
    if isinstance(value, dict) and "sub_policies" in value:
        AugmentationPolicy.from_config(value)
        return
    raise ValueError("`augmentation_policy` must be None, 'search', a tfmeta.augmentation_search.AugmentationPolicy "
                     f"or its config; received {value!r}.")


def _searched_policy(am, x, y, xv, yv, input_shape, ranges: dict):
    """The best of `POLICY_TRIALS` policies, scored by a small child's validation accuracy."""
    from tfmeta.augmentation_search import PolicySearch, small_convnet

    if am.task != "classification":
        raise ValueError("`augmentation_policy='search'` scores policies by accuracy: it is for "
                         f"task='classification'; received task={am.task!r}.")
    start = time.time()
    classes = len(am.classes_)
    search = PolicySearch(lambda policy: small_convnet(policy, input_shape, classes),
                          strategy=am.strategy, max_trials=POLICY_TRIALS, seed=am.seed or 0,
                          directory=am.directory, project_name=f"{am.project_name}_augmentation",
                          overwrite=am.overwrite, **ranges)
    search.fit(x, y, validation_data=(xv, yv), epochs=am.epochs, batch_size=am.batch_size)
    policy = search.best_policy()
    am._log(f"[augmentation] {policy.describe()}  score={search.results()[0]['score']:.4f}  "
            f"elapsed={time.time() - start:.0f}s")
    return policy


def _policy_config(am, policy, ranges: dict) -> dict:
    """`am.augmentation_policy_`: the sub-policies at the value range the model's layer sees."""
    config = policy.get_config()
    am.augmentation_policy_ = {"sub_policies": config["sub_policies"], "seed": config["seed"], **ranges}
    return am.augmentation_policy_


def _given_policy(setting):
    from tfmeta.augmentation_search import AugmentationPolicy

    return setting if isinstance(setting, AugmentationPolicy) else AugmentationPolicy.from_config(setting)


def resolve(am, x, y, xv, yv) -> dict | None:
    """The policy config the children train with (searched when asked), set as
    `am.augmentation_policy_`; None without a policy."""
    setting = getattr(am, "augmentation_policy", None)
    am.augmentation_policy_ = None
    if setting is None:
        return None
    if am.task_kind_ != "image":
        raise ValueError("`augmentation_policy` applies to images: expected image arrays (N, H, W[, C]) or an "
                         f"image folder; received a table of shape {(None, *am.input_shape_)}.")
    pre = am.preprocessing_
    sample = pre.transform(x[:2000])
    ranges = {"value_range": [float(sample.min()), float(sample.max())], "fill_value": float(sample.min())}
    if setting == "search":
        policy = _searched_policy(am, sample if len(x) <= 2000 else pre.transform(x), y, pre.transform(xv), yv,
                                  pre.model_input_shape, ranges)
    else:
        policy = _given_policy(setting)
    return _policy_config(am, policy, ranges)  # at the value range of the normalised images


#: Images of each split a `"search"` on an image folder reads into memory at most.
FOLDER_SEARCH_IMAGES = 2000


def check_input(am, kind: str) -> None:
    """Raises when `am` has a policy and its raw data of `kind` ("table", "text") is no image."""
    if getattr(am, "augmentation_policy", None) is not None and kind != "image_folder":
        raise ValueError("`augmentation_policy` applies to images: expected image arrays (N, H, W[, C]) or an "
                         f"image folder; received {kind} data. Pass augmentation_policy=None.")


def resolve_raw(am, task) -> dict | None:
    """`resolve` for raw data: an image folder's policy (the model's layer sees images scaled to
    [0, 1]). The caller has run `check_input` before reading the data (tables and texts with a
    policy are an error there)."""
    setting = getattr(am, "augmentation_policy", None)
    am.augmentation_policy_ = None
    if setting is None:
        return None
    ranges = {"value_range": [0.0, 1.0], "fill_value": 0.0}
    if setting == "search":
        side = min(task.search_image_sides())  # the children see the smallest searched image size
        x, y = _folder_sample(task, "search", side, am.seed or 0)
        xv, yv = _folder_sample(task, "validation", side, am.seed or 0)
        policy = _searched_policy(am, x, y, xv, yv, (side, side, task.folder.channels), ranges)
    else:
        policy = _given_policy(setting)
    return _policy_config(am, policy, ranges)


def _folder_sample(task, part: str, side: int, seed: int):
    """Up to `FOLDER_SEARCH_IMAGES` seeded-random images of `part`, `side` x `side`, in [0, 1]."""
    import numpy as np
    import tensorflow as tf

    images, labels, rows = [], [], 0
    for batch, label in task.dataset(part, 256, shuffle=True):
        images.append(tf.image.resize(batch, (side, side)).numpy() / 255.0)
        labels.append(label.numpy())
        rows += len(label)
        if rows >= FOLDER_SEARCH_IMAGES:
            break
    return np.concatenate(images)[:FOLDER_SEARCH_IMAGES], np.concatenate(labels)[:FOLDER_SEARCH_IMAGES]


def with_policy(builder: Callable[[Sequence[int]], keras.Model], config: dict | None):
    """`builder` with a fresh policy layer of `config` in front (or `builder` itself without one)."""
    if config is None:
        return builder
    from tfmeta.augmentation_search import AugmentationPolicy

    def build(shape):
        inputs = keras.Input(tuple(shape))
        return keras.Model(inputs, builder(shape)(AugmentationPolicy.from_config(config)(inputs)))

    return build

