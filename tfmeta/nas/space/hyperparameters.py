"""`SpaceWithHyperparameters`: an architecture space plus training hyperparameters as decisions.

Learning rate, weight decay and batch size (or any KerasTuner hyperparameter with a finite set
of values) become decisions named `"hp/<name>"` after the architecture's own, so every
strategy (controller, evolution, random, TPE, predictor, PNAS) samples them alongside the
architecture, and a trial's fit uses them (`tfmeta.nas.hp_training.HyperparameterTrainer`).

Extend the defaults with KerasTuner's own `HyperParameters`: `Choice`, `Boolean`, `Fixed`,
and `Int`/`Float` with a `step` (log sampling: a multiplicative step) are accepted.

Example:

>>> import keras_tuner
>>> from tfmeta.nas.space import MacroSpace
>>> hp = keras_tuner.HyperParameters()
>>> _ = hp.Choice("label_smoothing", [0.0, 0.1])
>>> space = SpaceWithHyperparameters(MacroSpace(num_layers=2), hp)
>>> space.names[2:]
('hp/learning_rate', 'hp/weight_decay', 'hp/batch_size', 'hp/label_smoothing')
>>> arch, values = space.split(space.decode([1, 2, 0, 0, 1, 1]))
>>> str(arch), values["batch_size"], values["label_smoothing"]
('12', 64, 0.1)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tfmeta.nas.space.architecture import Architecture, Decision
from tfmeta.nas.space.search_space import SearchSpace

#: The training hyperparameters searched by default, and their candidate values.
DEFAULT_HYPERPARAMETERS: dict[str, tuple] = {
    "learning_rate": (1e-3, 3e-3, 1e-2),
    "weight_decay": (0.0, 1e-4, 1e-3),
    "batch_size": (32, 64, 128),
}
PREFIX = "hp/"


def _values(hp) -> tuple:
    """The finite candidate values of one KerasTuner hyperparameter."""
    kind = type(hp).__name__
    if kind == "Fixed":
        return (hp.value,)
    if kind in ("Int", "Float") and hp.step is None:
        raise ValueError(f"Hyperparameter {hp.name!r} must have a `step` (a finite set of values); received "
                         f"{kind}({hp.min_value}, {hp.max_value}) without one.")
    values = tuple(hp.values)
    if not values:
        raise ValueError(f"Hyperparameter {hp.name!r} has no values.")
    return tuple(v.item() if hasattr(v, "item") else v for v in values)


class SpaceWithHyperparameters(SearchSpace):
    """A space's decisions followed by one decision per training hyperparameter.

    Args:
        space: The architecture space.
        hyperparameters: A `keras_tuner.HyperParameters` or `{name: values}`, added to (and
            overriding) `DEFAULT_HYPERPARAMETERS` unless `defaults=False`.
        defaults: Include learning rate, weight decay and batch size.

    Example:

    >>> from tfmeta.nas.space import MacroSpace
    >>> SpaceWithHyperparameters(MacroSpace(), {"batch_size": (16, 32)}).size  # 6561 * 3 * 3 * 2
    118098
    """

    def __init__(self, space: SearchSpace, hyperparameters: Any = None, defaults: bool = True):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"`space` must be a SearchSpace; received {type(space).__name__}.")
        extra = dict(DEFAULT_HYPERPARAMETERS) if defaults else {}
        if hyperparameters is None:
            pass
        elif isinstance(hyperparameters, Mapping):
            extra.update({k: tuple(v) for k, v in hyperparameters.items()})
        elif hasattr(hyperparameters, "space"):  # keras_tuner.HyperParameters
            extra.update({hp.name: _values(hp) for hp in hyperparameters.space})
        else:
            raise ValueError("`hyperparameters` must be a keras_tuner.HyperParameters or a {name: values} "
                             f"mapping; received {type(hyperparameters).__name__}.")
        if not extra:
            raise ValueError("`hyperparameters` is empty and `defaults=False`: there is nothing to add.")
        self.base = space
        self.hyperparameters = extra
        super().__init__([*space.decisions, *(Decision(PREFIX + k, tuple(v)) for k, v in extra.items())],
                         name=f"{space.name}+hp", kind="generic")

    def controller_attention(self) -> dict[int, int] | None:
        """The base space's (its decisions come first)."""
        return self.base.controller_attention()

    def split(self, arch: Architecture) -> tuple[Architecture, dict[str, Any]]:
        """`(architecture of the base space, {hyperparameter: value})`."""
        indices = self.encode(arch)
        n = len(self.base)
        values = {d.name[len(PREFIX):]: d.choices[i] for d, i in zip(self.decisions[n:], indices[n:])}
        return self.base.decode(indices[:n]), values

    def join(self, arch: Architecture, values: Mapping[str, Any]) -> Architecture:
        """The architecture of the base space with these hyperparameter values."""
        indices = self.base.encode(arch)
        missing = [k for k in self.hyperparameters if k not in values]
        if missing:
            raise ValueError(f"`values` is missing hyperparameters {missing}.")
        rest = [d.index(values[d.name[len(PREFIX):]]) for d in self.decisions[len(self.base):]]
        return self.decode([*indices, *rest])

    @property
    def hyperparameter_positions(self) -> Sequence[int]:
        """Positions of the hyperparameter decisions (after the architecture's)."""
        return range(len(self.base), len(self.decisions))
