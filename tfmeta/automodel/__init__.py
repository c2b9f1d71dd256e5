"""The AutoModel facade: scikit-learn style search, training and export.

Modules: `estimator` (`AutoModel`: parameters, checks, dispatch), one module per task family
(`supervised`: classification and regression; `few_shot`: the learner candidates and their
ensemble; `similarity`), `inputs` (reading and checking data), `preprocessing` (the in-graph
preprocessing), `progress` (the per-trial progress lines).
"""

from tfmeta.automodel.estimator import AutoModel

__all__ = ["AutoModel"]
