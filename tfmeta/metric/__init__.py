"""Metric-based meta-learners: Siamese, prototypical, matching and relation networks, and
`EpisodeDistiller` to distil trained learners into one."""

import importlib

_LAZY = {
    "SiameseNetwork": "tfmeta.metric.siamese",
    "PrototypicalNetwork": "tfmeta.metric.protonet",
    "MatchingNetwork": "tfmeta.metric.matching",
    "RelationNetwork": "tfmeta.metric.relation",
    "EpisodeDistiller": "tfmeta.metric.distillation",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfmeta.metric' has no attribute {name!r}")
