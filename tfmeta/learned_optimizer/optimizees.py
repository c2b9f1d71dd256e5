"""Families of optimizees: the training problems a learned optimizer is meta-trained on.

A family draws problems (`sample(seed)`); a problem is an `Optimizee`: its initial parameter
vector `theta0` and `step_data(steps, rng)`, the data of each of the next `steps` steps (the
same matrix for a quadratic, a fresh minibatch for an MLP). The family's `loss(theta, data)`
is a pure TensorFlow function of a flat parameter vector and one step's data, so meta-training
and the baselines differentiate and compile it the same way for every problem of the family.

The two families of Andrychowicz et al. 2016:

- `QuadraticFamily`: f(theta) = ||W theta - y||^2 with W, y (and theta0) i.i.d. Gaussian.
- `DigitsMLPFamily`: a one-hidden-layer MLP (20 sigmoid units in the paper) trained by softmax
  cross-entropy on minibatches of 128; scikit-learn's digits stand in for MNIST. Another
  activation (`activation="relu"`) or width (`hidden_units=40`) makes a held-out family.

Example:

>>> import numpy as np
>>> family = QuadraticFamily(dimension=10)
>>> problem = family.sample(seed=0)
>>> data = problem.step_data(steps=1, rng=np.random.default_rng(0))
>>> float(family.loss(problem.theta0, {k: v[0] for k, v in data.items()})) > 0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf


@dataclass
class Optimizee:
    """One problem: initial parameters, a source of per-step data, the data to score it on.

    `eval_data` is one step's data for the loss reported in curves: the problem itself for a
    quadratic, the whole split (not a minibatch) for an MLP.
    """

    theta0: np.ndarray
    step_data: Callable[[int, np.random.Generator], dict]
    eval_data: dict


class QuadraticFamily:
    """Random quadratics f(theta) = ||W theta - y||^2, W `[d, d]`, y `[d]`, all N(0, 1).

    Args:
        dimension: The size of theta, W's side and y (the paper: 10).
    """

    name = "quadratic"

    def __init__(self, dimension: int = 10):
        if not isinstance(dimension, int) or dimension < 1:
            raise ValueError(f"`dimension` must be a positive int; received {dimension!r}.")
        self.dimension = dimension

    @property
    def size(self) -> int:
        return self.dimension

    def sample(self, seed: int) -> Optimizee:
        rng = np.random.default_rng([seed, self.dimension])
        w = rng.standard_normal((self.dimension, self.dimension)).astype(np.float32)
        y = rng.standard_normal(self.dimension).astype(np.float32)
        theta0 = rng.standard_normal(self.dimension).astype(np.float32)

        def step_data(steps: int, rng: np.random.Generator) -> dict:
            return {"w": np.broadcast_to(w, (steps, *w.shape)), "y": np.broadcast_to(y, (steps, *y.shape))}

        return Optimizee(theta0, step_data, {"w": w, "y": y})

    def loss(self, theta: tf.Tensor, data: dict) -> tf.Tensor:
        residual = tf.linalg.matvec(data["w"], theta) - data["y"]
        return tf.reduce_sum(tf.square(residual))


class DigitsMLPFamily:
    """One-hidden-layer MLPs on scikit-learn's digits (pixels in [0, 1]), cross-entropy loss.

    Each problem is a fresh random initialisation (Glorot-normal weights, zero biases); each
    step sees a random minibatch of the training split.

    Args:
        hidden_units: Width of the hidden layer (the paper: 20).
        activation: "sigmoid" (the paper), "relu" or "tanh".
        batch_size: Examples per step (the paper: 128).
        split: "train" or "test" images of `tfmeta.data.digits.load_digits_splits(seed=0)`.
    """

    ACTIVATIONS = {"sigmoid": tf.sigmoid, "relu": tf.nn.relu, "tanh": tf.tanh}

    def __init__(self, hidden_units: int = 20, activation: str = "sigmoid", batch_size: int = 128,
                 split: str = "train"):
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {sorted(self.ACTIVATIONS)}; received {activation!r}.")
        if not isinstance(hidden_units, int) or hidden_units < 1:
            raise ValueError(f"`hidden_units` must be a positive int; received {hidden_units!r}.")
        if split not in ("train", "test"):
            raise ValueError(f"`split` must be 'train' or 'test'; received {split!r}.")
        from tfmeta.data.digits import load_digits_splits

        x, y = load_digits_splits(seed=0, scaled=True)[split]
        self.x, self.y = x.reshape(len(x), -1), y.astype(np.int32)
        self.hidden_units, self.activation, self.batch_size = hidden_units, activation, batch_size
        self.name = f"digits_mlp_{activation}_{hidden_units}"
        inputs, classes = self.x.shape[1], 10
        self.shapes = [(inputs, hidden_units), (hidden_units,), (hidden_units, classes), (classes,)]

    @property
    def size(self) -> int:
        return int(sum(np.prod(s) for s in self.shapes))

    def sample(self, seed: int) -> Optimizee:
        rng = np.random.default_rng([seed, self.hidden_units, 1])
        parts = []
        for shape in self.shapes:
            if len(shape) == 2:
                parts.append(rng.standard_normal(shape) * np.sqrt(2.0 / sum(shape)))
            else:
                parts.append(np.zeros(shape))
        theta0 = np.concatenate([p.ravel() for p in parts]).astype(np.float32)

        def step_data(steps: int, rng: np.random.Generator) -> dict:
            index = rng.integers(0, len(self.x), size=(steps, self.batch_size))
            return {"x": self.x[index], "y": self.y[index]}

        return Optimizee(theta0, step_data, {"x": self.x, "y": self.y})

    def unpack(self, theta: tf.Tensor) -> list[tf.Tensor]:
        """The flat vector as the MLP's kernel, bias, kernel, bias."""
        sizes = [int(np.prod(s)) for s in self.shapes]
        return [tf.reshape(p, s) for p, s in zip(tf.split(theta, sizes), self.shapes)]

    def logits(self, theta: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        w1, b1, w2, b2 = self.unpack(theta)
        return self.ACTIVATIONS[self.activation](x @ w1 + b1) @ w2 + b2

    def loss(self, theta: tf.Tensor, data: dict) -> tf.Tensor:
        logits = self.logits(theta, data["x"])
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(data["y"], logits))

