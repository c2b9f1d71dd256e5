"""An AutoAugment-style augmentation policy as one serialisable Keras layer.

AutoAugment (Cubuk et al. 2019) describes augmentation as a *policy*: a few sub-policies, each
a short sequence of operations with a probability and a magnitude. Every training image gets
one sub-policy drawn at random, and each of its operations is applied with its probability.
Here the operations are Keras's image preprocessing layers (`RandomFlip`, `RandomRotation`,
`RandomTranslation`, `RandomZoom`, `RandomShear`, `RandomContrast`, `RandomBrightness`),
each at a strength set by its magnitude level (1..10).

`AugmentationPolicy` is a Keras layer: put it in front of a model and it augments while
training and passes images through at inference (so exported models carry no augmentation);
`get_config()` is the policy, JSON as written to `tfmeta.json`. Its randomness is stateless
(`augment(images, seed)`: Keras layers through `tfmeta.data.augment.SeededLayer`), so the
same seed gives the same images, and the episode samplers can take it as `augment=policy.augment`.

Example:

>>> policy = AugmentationPolicy([[("flip", 0.5, 1), ("rotate", 0.3, 4)], [("zoom", 0.8, 3)]])
>>> model = keras.Sequential([keras.Input((8, 8, 1)), policy, keras.layers.Flatten(),
...                           keras.layers.Dense(10)])
>>> AugmentationPolicy.from_config(policy.get_config()).sub_policies == policy.sub_policies
True
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf

from tfmeta.data.augment import SeededLayer, _as_batch_of_images

MAX_LEVEL = 10


def _operations(value_range, fill_value) -> dict[str, Callable[[float], keras.layers.Layer]]:
    """`{name: strength in (0, 1] -> a Keras preprocessing layer}` (AutoAugment's ranges)."""
    geometry = {"fill_mode": "constant", "fill_value": float(fill_value)}
    return {
        "flip": lambda m: keras.layers.RandomFlip("horizontal"),
        "flip_vertical": lambda m: keras.layers.RandomFlip("vertical"),
        "rotate": lambda m: keras.layers.RandomRotation(m * 30.0 / 360.0, **geometry),
        "translate": lambda m: keras.layers.RandomTranslation(0.3 * m, 0.3 * m, **geometry),
        "zoom": lambda m: keras.layers.RandomZoom(0.3 * m, **geometry),
        "shear": lambda m: keras.layers.RandomShear(0.3 * m, 0.3 * m, **geometry),
        "contrast": lambda m: keras.layers.RandomContrast(0.9 * m, value_range=tuple(value_range)),
        "brightness": lambda m: keras.layers.RandomBrightness(0.5 * m, value_range=tuple(value_range)),
    }


#: The operation names a policy can use.
OPERATIONS = tuple(_operations((0, 1), 0.0))


def _check_sub_policies(sub_policies) -> list[list[tuple[str, float, int]]]:
    if not isinstance(sub_policies, (list, tuple)) or not sub_policies:
        raise ValueError(f"`sub_policies` must be a non-empty list of sub-policies; received {sub_policies!r}.")
    checked = []
    for sub in sub_policies:
        if not isinstance(sub, (list, tuple)) or not sub:
            raise ValueError(f"Each sub-policy must be a non-empty list of (operation, probability, "
                             f"magnitude); received {sub!r}.")
        steps = []
        for step in sub:
            if not isinstance(step, (list, tuple)) or len(step) != 3:
                raise ValueError(f"A policy step must be (operation, probability, magnitude); received {step!r}.")
            name, probability, level = step
            if name not in OPERATIONS:
                raise ValueError(f"Unknown operation {name!r}: expected one of {OPERATIONS}.")
            if not 0.0 <= float(probability) <= 1.0:
                raise ValueError(f"`probability` of {name!r} must be in [0, 1]; received {probability!r}.")
            if not 1 <= int(level) <= MAX_LEVEL:
                raise ValueError(f"`magnitude` of {name!r} must be a level in [1, {MAX_LEVEL}]; received {level!r}.")
            steps.append((str(name), float(probability), int(level)))
        checked.append(steps)
    return checked


@keras.saving.register_keras_serializable(package="tfmeta")
class AugmentationPolicy(keras.layers.Layer):
    """Augments training images with an AutoAugment-style policy; identity at inference.

    Args:
        sub_policies: A list of sub-policies, each a list of `(operation, probability,
            magnitude)`: an operation of `OPERATIONS`, the probability of applying it to an
            image, and a magnitude level in `1..10`.
        value_range: `(low, high)` of the pixel values (for contrast and brightness).
        fill_value: The value of pixels a geometric operation brings in from outside.
        seed: Seed of the training-time draws.
    """

    def __init__(self, sub_policies: Sequence, value_range: Sequence[float] = (0.0, 1.0),
                 fill_value: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.sub_policies = _check_sub_policies(sub_policies)
        if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
            raise ValueError(f"`value_range` must be (low, high) with low < high; received {value_range!r}.")
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.fill_value = float(fill_value)
        self.seed = seed
        makers = _operations(self.value_range, self.fill_value)
        self._steps = [[(SeededLayer(makers[name](level / MAX_LEVEL)), probability) for name, probability, level in sub]
                       for sub in self.sub_policies]
        self.seed_generator = keras.random.SeedGenerator(seed)

    def augment(self, images, seed) -> tf.Tensor:
        """The policy applied to `[B, H, W, C]` (or `[B, H, W]`) images with a stateless seed `[2]`."""
        images, squeeze = _as_batch_of_images(images, "AugmentationPolicy")
        dtype, images = images.dtype, tf.cast(images, tf.float32)
        batch = tf.shape(images)[0]
        seed = tf.cast(seed, tf.int64)
        choose, *step_seeds = tf.unstack(tf.random.experimental.stateless_split(
            seed, 1 + 2 * sum(len(sub) for sub in self._steps)))
        chosen = tf.random.stateless_uniform([batch], choose, maxval=len(self._steps), dtype=tf.int32)
        out, k = images, 0
        for index, sub in enumerate(self._steps):
            current = images
            for layer, probability in sub:
                if probability > 0.0:
                    applied = layer(current, step_seeds[k])
                    keep = tf.random.stateless_uniform([batch], step_seeds[k + 1]) < probability
                    current = tf.where(keep[:, None, None, None], tf.cast(applied, tf.float32), current)
                k += 2
            out = tf.where((chosen == index)[:, None, None, None], current, out)
        out = tf.cast(out, dtype)
        return out[..., 0] if squeeze else out

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.augment(inputs, self.seed_generator.next())

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "sub_policies": [[list(step) for step in sub] for sub in self.sub_policies],
                "value_range": list(self.value_range), "fill_value": self.fill_value, "seed": self.seed}

    def describe(self) -> str:
        """The policy in one line, e.g. `flip(p=0.5, m=1) rotate(p=0.3, m=4) | zoom(p=0.8, m=3)`."""
        return " | ".join(" ".join(f"{n}(p={p:g}, m={m})" for n, p, m in sub if p > 0) or "none"
                          for sub in self.sub_policies)
