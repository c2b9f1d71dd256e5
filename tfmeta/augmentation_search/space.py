"""The augmentation policy search space: one decision per operation, probability and magnitude.

A policy of `sub_policies` sub-policies of `steps` operations each is a point of an ordinary
`tfmeta.nas.space.SearchSpace` (decisions `sub0/op0/operation`, `sub0/op0/probability`,
`sub0/op0/magnitude`, ...), so the architecture search strategies (controller RNN, evolution,
random; `tfmeta.nas.strategies`) and their KerasTuner oracles search policies unchanged.

Example:

>>> space = policy_space(operations=("flip", "rotate"), sub_policies=1, steps=1)
>>> arch = space.sample(np.random.default_rng(0))
>>> policy_from_architecture(arch).sub_policies    # doctest: +SKIP
[[('rotate', 0.6, 6)]]
"""

from __future__ import annotations

from typing import Sequence

from tfmeta.augmentation_search.policy import MAX_LEVEL, OPERATIONS, AugmentationPolicy
from tfmeta.nas.space import Architecture, Decision, SearchSpace

PROBABILITIES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
MAGNITUDES = (2, 4, 6, 8, 10)


def policy_space(operations: Sequence[str] = OPERATIONS, sub_policies: int = 2, steps: int = 2,
                 probabilities: Sequence[float] = PROBABILITIES, magnitudes: Sequence[int] = MAGNITUDES,
                 name: str = "augmentation_policy") -> SearchSpace:
    """The space of policies with `sub_policies` sub-policies of `steps` operations.

    `probabilities` must include 0.0 (an operation switched off, and the "no augmentation"
    policy that `no_augmentation` returns); magnitudes are levels in 1..10."""
    unknown = [op for op in operations if op not in OPERATIONS]
    if not operations or unknown:
        raise ValueError(f"`operations` must be a non-empty subset of {OPERATIONS}; received {tuple(operations)!r}.")
    if 0.0 not in probabilities or any(not 0.0 <= p <= 1.0 for p in probabilities):
        raise ValueError(f"`probabilities` must lie in [0, 1] and include 0.0; received {tuple(probabilities)!r}.")
    if not magnitudes or any(not 1 <= int(m) <= MAX_LEVEL for m in magnitudes):
        raise ValueError(f"`magnitudes` must be levels in [1, {MAX_LEVEL}]; received {tuple(magnitudes)!r}.")
    for label, value in (("sub_policies", sub_policies), ("steps", steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{label}` must be an integer >= 1; received {value!r}.")
    decisions = []
    for s in range(sub_policies):
        for o in range(steps):
            prefix = f"sub{s}/op{o}"
            decisions += [Decision(f"{prefix}/operation", tuple(operations)),
                          Decision(f"{prefix}/probability", tuple(float(p) for p in probabilities)),
                          Decision(f"{prefix}/magnitude", tuple(int(m) for m in magnitudes))]
    return SearchSpace(decisions, name=name, kind="generic")


def _shape(space: SearchSpace) -> tuple[int, int]:
    names = [n for n in space.names if n.endswith("/operation")]
    sub_policies = len({n.split("/")[0] for n in names})
    return sub_policies, len(names) // sub_policies


def policy_from_architecture(arch: Architecture, **layer_kwargs) -> AugmentationPolicy:
    """The `AugmentationPolicy` layer of a point of `policy_space` (`layer_kwargs`:
    `value_range`, `fill_value`, `seed`)."""
    values = arch.as_dict()
    subs = sorted({n.split("/")[0] for n in values if n.endswith("/operation")}, key=lambda s: int(s[3:]))
    sub_policies = []
    for sub in subs:
        steps = sorted({n.split("/")[1] for n in values if n.startswith(sub + "/")}, key=lambda o: int(o[2:]))
        sub_policies.append([(values[f"{sub}/{op}/operation"], values[f"{sub}/{op}/probability"],
                              values[f"{sub}/{op}/magnitude"]) for op in steps])
    return AugmentationPolicy(sub_policies, **layer_kwargs)


def no_augmentation(space: SearchSpace) -> Architecture:
    """The policy of `space` that changes nothing (every probability 0)."""
    return space.from_dict({d.name: 0.0 if d.name.endswith("/probability") else d.choices[0] for d in space.decisions})
