"""Deprecated: moved to `tfmeta.automodel.few_shot`. Import from there; this alias will be removed."""

from tfmeta._deprecation import moved_module

__getattr__ = moved_module(__name__, "tfmeta.automodel.few_shot")
