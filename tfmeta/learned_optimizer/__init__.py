"""Learned optimizers: an update rule that is itself a network, trained on a family of problems.

Andrychowicz et al. 2016, "Learning to learn by gradient descent by gradient descent":

- `update_rule.py`: `CoordinatewiseLSTM`, the shared two-layer LSTM applied to each coordinate's
  preprocessed gradient (`preprocess_gradients`);
- `optimizees.py`: the problem families, `QuadraticFamily` and `DigitsMLPFamily`;
- `meta_training.py`: `meta_train`, truncated back-propagation through unrolled optimisation,
  with a progress bar and checkpoints;
- `optimizer.py`: `LearnedOptimizer`, the rule as a `keras.optimizers.Optimizer`;
- `evaluation.py`: loss curves of any Keras optimizer on a problem, learning-rate grids.

Example:

>>> import tfmeta
>>> from tfmeta.learned_optimizer import LearnedOptimizer, QuadraticFamily, meta_train
>>> optimizer = LearnedOptimizer()
>>> history = meta_train(optimizer.rule, QuadraticFamily(), steps=5, unroll=4, horizon=20, verbose=0)
"""

from tfmeta.learned_optimizer.evaluation import best_learning_rate, mean_curve, optimization_curve
from tfmeta.learned_optimizer.meta_training import meta_train, unrolled_losses
from tfmeta.learned_optimizer.optimizees import DigitsMLPFamily, Optimizee, QuadraticFamily
from tfmeta.learned_optimizer.optimizer import LearnedOptimizer
from tfmeta.learned_optimizer.update_rule import CoordinatewiseLSTM, preprocess_gradients

__all__ = [
    "CoordinatewiseLSTM", "DigitsMLPFamily", "LearnedOptimizer", "Optimizee", "QuadraticFamily",
    "best_learning_rate", "mean_curve", "meta_train", "optimization_curve", "preprocess_gradients",
    "unrolled_losses",
]
