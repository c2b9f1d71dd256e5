"""Old spellings of moved public names, kept working with a `DeprecationWarning`.

A module that moved keeps a one-line stub at its old path:

>>> # tfmeta/ensemble.py
>>> from tfmeta._deprecation import moved_module
>>> __getattr__ = moved_module(__name__, "tfmeta.fewshot.ensemble")
"""

from __future__ import annotations

import importlib
import warnings
from typing import Callable, Mapping


def warn_moved(old: str, new: str) -> None:
    """Warns that `old` is a deprecated spelling of `new`."""
    warnings.warn(
        f"`{old}` moved to `{new}`; the old name is deprecated and will be removed.",
        DeprecationWarning,
        stacklevel=3,
    )


def moved_module(old_module: str, new_module: str) -> Callable[[str], object]:
    """A module `__getattr__` that forwards every name of `old_module` to `new_module`."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        target = importlib.import_module(new_module)
        if not hasattr(target, name):
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warn_moved(f"{old_module}.{name}", f"{new_module}.{name}")
        return getattr(target, name)

    return __getattr__


def moved_names(old_module: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for single names that moved: `{name: "new.module"}`."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warn_moved(f"{old_module}.{name}", f"{names[name]}.{name}")
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
