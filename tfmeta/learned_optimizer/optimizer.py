"""`LearnedOptimizer`: a meta-trained update rule as a `keras.optimizers.Optimizer`.

The optimizer keeps, for every trainable variable, the LSTM states of each of its coordinates
(`build`), and at each step feeds the variable's flattened gradient through the shared update
rule and adds the result, times `learning_rate` (1 by default: the rule sets its own step
size), to the variable (`update_step`). So a rule meta-trained on small problems trains any
Keras model through `compile()`/`fit()`.

Save and load: the rule's weights are part of `get_config()`, so `keras.saving` of a compiled
model, `keras.optimizers.serialize`/`deserialize` and `save(path)`/`LearnedOptimizer.load(path)`
(one JSON file) all restore the same rule and so the same updates.

Example:

>>> import numpy as np, keras
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
>>> model.compile(optimizer=LearnedOptimizer(), loss="mse")
>>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=1, verbose=0)
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfmeta.learned_optimizer.update_rule import CoordinatewiseLSTM


@keras.saving.register_keras_serializable(package="tfmeta")
class LearnedOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer whose update rule is a coordinate-wise LSTM (Andrychowicz et al. 2016).

    Args:
        rule: The `CoordinatewiseLSTM` update rule (a new, untrained one by default); meta-train
            it with `tfmeta.learned_optimizer.meta_train`.
        learning_rate: Multiplier on the rule's updates (1: the updates as meta-trained).
        rule_config: The rule's config, instead of `rule` (used when deserialising).
        rule_weights: The rule's weights as nested lists, with `rule_config`.
        **kwargs: The usual `keras.optimizers.Optimizer` arguments (`clipnorm`, `name`, ...).
    """

    def __init__(self, rule: CoordinatewiseLSTM | None = None, learning_rate: float = 1.0,
                 rule_config: dict | None = None, rule_weights: list | None = None,
                 name: str = "learned_optimizer", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if rule is not None and not isinstance(rule, CoordinatewiseLSTM):
            raise TypeError(f"`rule` must be a CoordinatewiseLSTM; received {type(rule).__name__}.")
        if rule is None:
            rule = CoordinatewiseLSTM(**(rule_config or {}))
            if rule_weights is not None:
                rule.set_weights([np.asarray(w, dtype=np.float32) for w in rule_weights])
        # Kept out of the optimizer's tracked variables: the rule is fixed while it optimises.
        self._rule = [rule]

    @property
    def rule(self) -> CoordinatewiseLSTM:
        return self._rule[0]

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._states = []
        for variable in variables:
            size = int(np.prod(variable.shape))
            name = variable.path.replace("/", "_") if hasattr(variable, "path") else variable.name
            self._states.append([
                self.add_variable((size, self.rule.hidden_units), name=f"{name}_lstm_state_{i}")
                for i in range(2 * self.rule.num_layers)])

    def update_step(self, gradient, variable, learning_rate):
        states = self._states[self._get_variable_index(variable)]
        gradient = tf.cast(tf.reshape(gradient, [-1]), tf.float32)
        update, new_states = self.rule(gradient, tuple(s.value for s in states))
        for state, new in zip(states, new_states):
            self.assign(state, new)
        update = tf.cast(tf.reshape(update * tf.cast(learning_rate, tf.float32), variable.shape), variable.dtype)
        self.assign_add(variable, update)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rule_config=self.rule.get_config(),
                      rule_weights=[w.tolist() for w in self.rule.get_weights()])
        return config

    def save(self, path: str | Path) -> str:
        """Writes the optimizer (config and rule weights) to one JSON file; returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(keras.optimizers.serialize(self)))
        return str(path)

    @classmethod
    def load(cls, path: str | Path) -> "LearnedOptimizer":
        """The optimizer written by `save(path)`."""
        optimizer = keras.optimizers.deserialize(json.loads(Path(path).read_text()))
        if not isinstance(optimizer, cls):
            raise ValueError(f"`path` must hold a {cls.__name__}; {path} holds a {type(optimizer).__name__}.")
        return optimizer
