"""The coordinate-wise LSTM update rule of Andrychowicz et al. 2016.

"Learning to learn by gradient descent by gradient descent" replaces a hand-written update
rule by a small recurrent network that reads one coordinate's gradient and writes that
coordinate's update. The same two-layer LSTM (20 units per layer) is applied to every
coordinate of every parameter: its weights are shared, its hidden and cell states are kept per
coordinate, so the rule works for a parameter vector of any size and is invariant to the order
of the coordinates. The LSTM's output goes through a linear layer and is scaled by 0.1.

Gradients span many orders of magnitude, so each is first mapped to two numbers (the paper's
Appendix A, with p = 10):

    (log|g| / p, sign(g))   if |g| >= exp(-p)
    (-1, exp(p) * g)        otherwise

Example:

>>> import tensorflow as tf
>>> rule = CoordinatewiseLSTM()
>>> gradient = tf.constant([0.5, -2e-6, 3.0])
>>> states = rule.initial_states(3)
>>> update, states = rule(gradient, states)
>>> update.shape, [s.shape for s in states]
(TensorShape([3]), [TensorShape([3, 20]), TensorShape([3, 20]), TensorShape([3, 20]), TensorShape([3, 20])])
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def preprocess_gradients(gradients: tf.Tensor, p: float = 10.0) -> tf.Tensor:
    """Maps gradients `[n]` to `[n, 2]` features: log-magnitude and sign (Appendix A).

    Args:
        gradients: A 1-D float tensor of gradient coordinates.
        p: The magnitude threshold exponent: gradients smaller than `exp(-p)` are encoded
            linearly, larger ones by their log-magnitude divided by `p` and their sign.

    Returns:
        A `[n, 2]` float tensor.
    """
    gradients = tf.convert_to_tensor(gradients)
    magnitude = tf.abs(gradients)
    large = magnitude >= math.exp(-p)
    # `maximum` keeps log() finite on the branch that `where` discards (a NaN there would still
    # poison the gradient through `where`).
    log_part = tf.math.log(tf.maximum(magnitude, math.exp(-p))) / p
    first = tf.where(large, log_part, -tf.ones_like(gradients))
    second = tf.where(large, tf.sign(gradients), math.exp(p) * gradients)
    return tf.stack([first, second], axis=-1)


@keras.saving.register_keras_serializable(package="tfmeta")
class CoordinatewiseLSTM(keras.layers.Layer):
    """An update rule: preprocessed gradients -> stacked LSTM cells -> linear -> scaled update.

    Args:
        hidden_units: Units of each LSTM layer (the paper: 20).
        num_layers: Stacked LSTM layers (the paper: 2).
        preprocess_p: The `p` of `preprocess_gradients` (the paper: 10).
        output_scale: Factor on the linear output (the paper: 0.1).

    Call: `rule(gradients [n], states) -> (updates [n], new_states)`, with `states` a tuple of
    `2 * num_layers` tensors `[n, hidden_units]` (h and c of each layer), as made by
    `initial_states(n)`. The update is added to the parameters.
    """

    def __init__(self, hidden_units: int = 20, num_layers: int = 2, preprocess_p: float = 10.0,
                 output_scale: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("hidden_units", hidden_units), ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
        if preprocess_p <= 0:
            raise ValueError(f"`preprocess_p` must be > 0; received {preprocess_p!r}.")
        self.hidden_units, self.num_layers = hidden_units, num_layers
        self.preprocess_p, self.output_scale = float(preprocess_p), float(output_scale)
        self.cells = [keras.layers.LSTMCell(hidden_units, name=f"lstm_{i}") for i in range(num_layers)]
        self.output_layer = keras.layers.Dense(1, name="output")
        self.build((None,))

    def build(self, input_shape=None):
        if self.built:
            return
        size = 2
        for cell in self.cells:
            cell.build((None, size))
            size = self.hidden_units
        self.output_layer.build((None, self.hidden_units))
        self.built = True

    def initial_states(self, size: int) -> tuple[tf.Tensor, ...]:
        """Zero states for `size` coordinates: `2 * num_layers` tensors `[size, hidden_units]`."""
        return tuple(tf.zeros([size, self.hidden_units]) for _ in range(2 * self.num_layers))

    def call(self, gradients, states):
        x = preprocess_gradients(tf.reshape(gradients, [-1]), self.preprocess_p)
        new_states = []
        for i, cell in enumerate(self.cells):
            x, (h, c) = cell(x, [states[2 * i], states[2 * i + 1]])
            new_states += [h, c]
        updates = self.output_scale * tf.squeeze(self.output_layer(x), axis=-1)
        return updates, tuple(new_states)

    def get_config(self) -> dict:
        return {**super().get_config(), "hidden_units": self.hidden_units, "num_layers": self.num_layers,
                "preprocess_p": self.preprocess_p, "output_scale": self.output_scale}
