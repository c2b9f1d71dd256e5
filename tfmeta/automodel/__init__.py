"""The AutoModel facade: scikit-learn style search, training and export."""

from tfmeta.automodel.core import AutoModel

__all__ = ["AutoModel"]
