"""Optimisation-based meta-learning: MAML (second/first order), ANIL, Meta-SGD, MAML++, Reptile.

>>> maml = tfmeta.MAML(model, inner_lr=0.4, inner_steps=1, order=2)
>>> reptile = tfmeta.Reptile(model, inner_lr=0.02, inner_steps=5)
"""

from tfmeta.gradient.functional import KerasRunner, VectorizedRunner, make_runner
from tfmeta.gradient.maml import MAML
from tfmeta.gradient.reptile import Reptile

__all__ = ["MAML", "Reptile", "KerasRunner", "VectorizedRunner", "make_runner"]
