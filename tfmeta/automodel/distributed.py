"""AutoModel in KerasTuner's chief/worker mode: which process does what.

Run the same script (the same `AutoModel(...).fit(...)`, the same `directory` on a shared
file system) in every process, with KerasTuner's environment variables:

- the **chief** (`KERASTUNER_TUNER_ID=chief`) serves the oracle: its strategy (controller,
  evolution, random) proposes every trial and learns from every worker's result. Its `fit`
  waits until all trials are done, then runs the refit and holds the fitted model: export
  from the chief.
- each **worker** (`KERASTUNER_TUNER_ID=tuner0`, `tuner1`, ...) runs trials, optionally under
  its own `distribution_strategy`. Its `fit` returns when the oracle has no trial left, with
  `search_role_ = "worker"` and `worker_trials_` (the trial ids it ran), and no model.

A worker killed mid-trial and restarted with the same `KERASTUNER_TUNER_ID` gets the same
trial back from the oracle (KerasTuner keeps it as that worker's ongoing trial), so no trial
is lost or run under two ids.

Example (three shells, or one script started three times):

>>> # KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000 KERASTUNER_TUNER_ID=chief|tuner0|tuner1
>>> am = AutoModel(max_trials=8, directory="/shared/runs", project_name="digits").fit(x, y)  # doctest: +SKIP
>>> if am.search_role_ == "chief":                                                          # doctest: +SKIP
...     am.export("saved_models/digits")
"""

from __future__ import annotations

from tfmeta.nas.distribution import search_role


def finish_worker(am, progress) -> bool:
    """Sets `am.search_role_`; on a worker also `worker_trials_` and `search_`, and returns
    True: a worker's `fit` ends after its trials (the chief refits and exports)."""
    am.search_role_ = search_role()
    if am.search_role_ != "worker":
        return False
    am.worker_trials_ = sorted(progress.seconds)
    am.search_ = {"role": "worker", "trials_run": am.worker_trials_}
    am._log(f"[worker] ran trials {am.worker_trials_}; the chief refits and exports")
    return True
