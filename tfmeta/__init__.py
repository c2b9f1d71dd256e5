"""tfmeta: meta-learning, neural architecture search and AutoML for Keras 3 / TensorFlow.

Learners are imported lazily, so `import tfmeta` stays fast:

>>> import tfmeta
>>> siamese = tfmeta.SiameseNetwork(tfmeta.backbones.conv4((28, 28, 1)))

Importing tfmeta before TensorFlow sets two environment defaults, each only when the variable
is not already set, so scripts need no environment preamble of their own:

- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow's oneDNN CPU kernels. TensorFlow leaves them off on
  CPUs without AVX-512, where they train a conv4 markedly faster and are the only CPU kernels
  that differentiate the grouped convolutions of MAML's vectorised path (docs/performance.md).
  Set `TF_ENABLE_ONEDNN_OPTS=0` to keep TensorFlow's choice. It selects CPU kernels only:
  ops placed on a GPU or TPU, and device placement itself, are unchanged (tfmeta pins no op
  to a device; TensorFlow and the `tf.distribute` strategy place them).
- `TF_CPP_MIN_LOG_LEVEL=2`: TensorFlow's C++ start-up notices are hidden (warnings and errors
  from Python still show). Set it to `0` to see them.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # CPU kernels only; GPU/TPU ops unaffected
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfmeta.version import __version__

_LAZY = {
    "SiameseNetwork": "tfmeta.metric.siamese",
    "PrototypicalNetwork": "tfmeta.metric.protonet",
    "MatchingNetwork": "tfmeta.metric.matching",
    "RelationNetwork": "tfmeta.metric.relation",
    "MAML": "tfmeta.gradient.maml",
    "Reptile": "tfmeta.gradient.reptile",
    "AutoModel": "tfmeta.automodel",
    "LearnedOptimizer": "tfmeta.learned_optimizer",
    "ReweightedModel": "tfmeta.reweighting",
}
_SUBMODULES = {
    "data", "backbones", "test_time_augmentation", "callbacks", "training_state", "export",
    "fewshot", "metric", "gradient", "nas", "serving", "cli", "automodel", "quickstart",
    "learned_optimizer", "reweighting", "augmentation_search",
    # deprecated homes, kept working for now: tfmeta.fewshot.{ensemble, evaluation, oneshot}
    "ensemble", "evaluation", "oneshot",
}

__all__ = ["__version__", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"tfmeta.{name}")
    raise AttributeError(f"module 'tfmeta' has no attribute {name!r}")
