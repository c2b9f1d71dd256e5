"""Deprecated: `AutoModel` moved to `tfmeta.automodel.estimator` (import it as `tfmeta.AutoModel`),
`num_reductions` to `tfmeta.automodel.supervised`. This alias will be removed."""

from tfmeta._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "AutoModel": "tfmeta.automodel.estimator",
    "TASKS": "tfmeta.automodel.estimator",
    "STRATEGIES": "tfmeta.automodel.estimator",
    "num_reductions": "tfmeta.automodel.supervised",
})
