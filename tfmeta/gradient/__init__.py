"""Optimisation-based meta-learning: MAML (second/first order), ANIL, Meta-SGD, MAML++, Reptile.

- `inner_loop`: `InnerLoop`, the one inner loop (adapted weights, inner learning rates,
  per-step BatchNorm, zero/prototype heads) as a Keras layer that owns its variables.
- `functional`: the runners that apply the model with per-task weights.
- `learner`: `GradientLearner`, what MAML and Reptile share (adaptation, the few-shot
  protocol, test-time views, evaluation, export).
- `maml`: `MAML`; `reptile`: `Reptile`.

>>> maml = tfmeta.MAML(model, inner_lr=0.4, inner_steps=1, order=2)
>>> reptile = tfmeta.Reptile(model, inner_lr=0.02, inner_steps=5)
"""

from tfmeta.gradient.functional import KerasRunner, VectorizedRunner, make_runner
from tfmeta.gradient.inner_loop import InnerLoop
from tfmeta.gradient.learner import GradientLearner
from tfmeta.gradient.maml import MAML
from tfmeta.gradient.reptile import Reptile

__all__ = [
    "MAML", "Reptile", "GradientLearner", "InnerLoop", "KerasRunner", "VectorizedRunner", "make_runner",
]
