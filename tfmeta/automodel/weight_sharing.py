"""The ENAS weight-sharing search as AutoModel runs it: `WeightSharingSearch` with callbacks.

`tfmeta.nas.enas.WeightSharingTuner` does not mix in `tfmeta.nas.search.TrialCallbacks`, so
its trials would not reach the search's `callbacks` (AutoModel's progress lines and per-trial
seconds). `ReportingWeightSharingSearch` makes its tuner with that mixin; once the ENAS tuner
mixes it in itself, this module can go (the subclass keeps working meanwhile).

Example:

>>> search = ReportingWeightSharingSearch(space, (8, 8, 1), 10, max_trials=20, child_steps=10)
>>> search.callbacks.append(TrialProgress(print, total=20, start=time.time()))
>>> search.search(x, y, validation_data=(xv, yv))                 # doctest: +SKIP
"""

from __future__ import annotations

from tfmeta.nas.enas import WeightSharingSearch, WeightSharingTuner
from tfmeta.nas.search import TrialCallbacks


class ReportingWeightSharingTuner(TrialCallbacks, WeightSharingTuner):
    """A `WeightSharingTuner` whose `on_trial_end` calls the search's callbacks."""


class ReportingWeightSharingSearch(WeightSharingSearch):
    """A `WeightSharingSearch` whose trials call `self.callbacks` (`on_trial_end(search, record)`)."""

    def _make_tuner(self, build_model, evaluate, compile_kwargs, tuner_kwargs: dict):
        return ReportingWeightSharingTuner(self.oracle, self.network, self.child_steps, self.batch_size, self.seed,
                                           train_paths=self.train_paths, **tuner_kwargs)
