"""Learned augmentation: AutoAugment-style policies over Keras's preprocessing layers, searched.

- `policy`: `AugmentationPolicy`, the serialisable Keras layer (identity at inference).
- `space`: `policy_space`, a `tfmeta.nas` search space of policies.
- `search`: `PolicySearch`, which scores policies by short child trainings, driven by the
  architecture search strategies.

Example:

>>> from tfmeta.augmentation_search import PolicySearch, small_convnet
>>> search = PolicySearch(lambda p: small_convnet(p, (8, 8, 1), 10), max_trials=8)
>>> search.fit(x, y, validation_data=(xv, yv)).best_policy().describe()   # doctest: +SKIP
"""

from tfmeta.augmentation_search.policy import OPERATIONS, AugmentationPolicy
from tfmeta.augmentation_search.search import PolicySearch, small_convnet
from tfmeta.augmentation_search.space import no_augmentation, policy_from_architecture, policy_space

__all__ = ["OPERATIONS", "AugmentationPolicy", "PolicySearch", "small_convnet", "no_augmentation",
           "policy_from_architecture", "policy_space"]
