"""AutoModel's progress comes from the architecture search's callback hook, not from patching
KerasTuner: every trial reaches `on_trial_end(search, record)` with its score and seconds."""

import keras_tuner
import pytest

from tfmeta.automodel.progress import TrialProgress
from tfmeta.nas.search import ArchitectureSearch, KerasArchitectureTuner, SearchCallback, TrialCallbacks
from tfmeta.nas.space import Architecture, DenseSpace

SPACE = DenseSpace(num_layers=2, units=(0, 16, 32))


def _width(arch) -> float:
    """A made-up objective: the total width of the dense layers."""
    return float(sum(units for units, _ in SPACE.layers(arch)))


class Recorder(SearchCallback):
    def __init__(self):
        self.calls = []

    def on_trial_end(self, search, record):
        self.calls.append((search, record))


def test_every_trial_reaches_the_callbacks_with_its_record_and_seconds(tmp_path):
    recorder, lines = Recorder(), []
    progress = TrialProgress(lines.append, total=4, start=0.0, sign=-1.0, on_best=lines.append)
    search = ArchitectureSearch(SPACE, evaluate=_width, strategy="random", max_trials=4, seed=0,
                                objective=keras_tuner.Objective("width", "min"), directory=str(tmp_path),
                                project_name="p", callbacks=[recorder])
    search.callbacks.append(progress)  # the list can grow after construction
    search.search()
    assert [s for s, _ in recorder.calls] == [search] * 4
    records = [r for _, r in recorder.calls]
    assert [r["trial_id"] for r in records] == [r["trial_id"] for r in search.results()]
    assert all(r["status"] == "COMPLETED" and r["seconds"] >= 0 for r in records)
    widths = [_width(Architecture.from_config(r["architecture"])) for r in records]
    assert [r["score"] for r in records] == widths
    assert set(progress.seconds) == {r["trial_id"] for r in records}
    trial_lines = [line for line in lines if line.startswith("[trial ")]
    assert [line.split("]")[0] for line in trial_lines] == [f"[trial {i}/4" for i in range(1, 5)]
    # sign=-1 (a minimised objective): higher is better on the lines, as on the leaderboard
    best = [float(line.split("best=")[1].split()[0]) for line in trial_lines]
    assert best == [-min(widths[: i + 1]) for i in range(4)]
    assert lines[0] == records[0]["arch"]  # on_best, before the line: the best after the first trial


def test_callbacks_must_have_on_trial_end(tmp_path):
    with pytest.raises(ValueError, match="`callbacks` must hold objects with an `on_trial_end"):
        ArchitectureSearch(SPACE, evaluate=_width, objective=keras_tuner.Objective("width", "min"),
                           directory=str(tmp_path), callbacks=[print])


def test_the_training_tuner_calls_callbacks_from_its_own_hook():
    assert issubclass(KerasArchitectureTuner, TrialCallbacks)
    assert KerasArchitectureTuner.on_trial_end is TrialCallbacks.on_trial_end  # no patching of instances
