"""KerasTuner's `trial_*/trial.json` (and tuner) files, written atomically, read tolerating torn ones.

KerasTuner writes `trial.json` in place (`Trial.save`), at the start of a trial, after every
epoch and at its end; a process killed mid-write leaves a torn file, and KerasTuner's
`Oracle.reload` then dies with `JSONDecodeError`, so the whole project is lost for resuming.
Here a trial file is written to a temporary file and renamed over the old one (a reader sees
the old or the new file, never half of one), and `load_trials` skips a file it cannot parse
and reports its trial id, so that the oracle re-runs that trial (`ArchitectureOracle.reload`).

Example:

>>> trials, torn = load_trials("runs/digits")
>>> torn      # trial ids whose file could not be read
['03']
"""

from __future__ import annotations

import glob
import json
import os
import warnings
from typing import Any

from keras_tuner.src.engine import trial as trial_module

TRIAL_FILE = "trial.json"
_PREFIX = "trial_"


def save_json(path: str, state: Any) -> None:
    """Writes `state` as JSON to `path` atomically (temporary file in the same folder + `os.replace`)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_trial(path: str, trial: trial_module.Trial) -> None:
    """Writes `trial` to `path` atomically."""
    save_json(path, trial.get_state())


def load_tuner_state(path: str) -> dict:
    """A tuner's `<tuner id>.json`; a torn one reads as `{}` (KerasTuner's tuners keep no state)."""
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        warnings.warn(f"`{path}` is torn; the tuner resumes from its oracle alone.", stacklevel=2)
        return {}


def load_trials(project_dir: str) -> tuple[dict[str, trial_module.Trial], list[str]]:
    """Reads every `trial_*/trial.json` of a project.

    Returns:
        `({trial id: Trial}, [ids of trials whose file is torn or unreadable])`; a torn
        file's trial id is its folder's name after `trial_`.
    """
    trials, torn = {}, []
    for path in sorted(glob.glob(os.path.join(glob.escape(project_dir), f"{_PREFIX}*", TRIAL_FILE))):
        try:
            trial = trial_module.Trial.load(path)
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSONDecodeError is a ValueError
            trial_id = os.path.basename(os.path.dirname(path))[len(_PREFIX):]
            warnings.warn(f"`{path}` is torn or unreadable ({type(error).__name__}); trial {trial_id} will be "
                          "run again.", stacklevel=2)
            torn.append(trial_id)
            continue
        trials[trial.trial_id] = trial
    return trials, torn
