"""tfmeta: meta-learning, neural architecture search and AutoML for Keras 3 / TensorFlow.

Learners are imported lazily, so `import tfmeta` stays fast:

>>> import tfmeta
>>> siamese = tfmeta.SiameseNetwork(tfmeta.backbones.conv4((28, 28, 1)))

Importing tfmeta before TensorFlow turns on TensorFlow's oneDNN CPU kernels
(`TF_ENABLE_ONEDNN_OPTS=1`) unless the variable is already set: TensorFlow leaves them off on
CPUs without AVX-512, where they train a conv4 2.5x faster and are the only CPU kernels that
differentiate the grouped convolutions of MAML's fast path (see the README). Set
`TF_ENABLE_ONEDNN_OPTS=0` to keep TensorFlow's choice.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from tfmeta.version import __version__

_LAZY = {
    "SiameseNetwork": "tfmeta.metric.siamese",
    "PrototypicalNetwork": "tfmeta.metric.protonet",
    "MatchingNetwork": "tfmeta.metric.matching",
    "RelationNetwork": "tfmeta.metric.relation",
    "MAML": "tfmeta.gradient.maml",
    "Reptile": "tfmeta.gradient.reptile",
    "AutoModel": "tfmeta.automodel",
}
_SUBMODULES = {"data", "backbones", "callbacks", "ensemble", "export", "evaluation", "fewshot", "metric", "gradient", "nas", "serving", "cli", "automodel"}

__all__ = ["__version__", *_LAZY, *sorted(_SUBMODULES)]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"tfmeta.{name}")
    raise AttributeError(f"module 'tfmeta' has no attribute {name!r}")
