"""A `trial.json` torn by a kill mid-write is detected on resume and only that trial runs again."""

from __future__ import annotations

import json

import pytest

from tfmeta.nas import trial_files
from tfmeta.nas.search import ArchitectureSearch


class Killed(BaseException):
    """Stands for a kill: not an `Exception`, so KerasTuner does not record a failed trial."""


def _search(bench, tmp_path, calls, kill_at=None):
    def evaluate(arch):
        if len(calls) == kill_at:
            raise Killed
        calls.append(str(arch))
        return bench.accuracy(arch)

    return ArchitectureSearch(bench.space, evaluate=evaluate, strategy="evolution", objective="accuracy",
                              max_trials=5, directory=str(tmp_path), project_name="p", seed=0,
                              strategy_kwargs={"population_size": 3, "sample_size": 2})


def test_torn_trial_file_is_run_again_and_no_finished_trial_is_lost(bench, tmp_path):
    first = []
    with pytest.raises(Killed):
        _search(bench, tmp_path, first, kill_at=2).search(verbose=0)
    project = tmp_path / "p"
    state = json.loads((project / "oracle.json").read_text())
    [running] = state["ongoing_trials"].values()
    torn = project / f"trial_{running}" / "trial.json"
    text = torn.read_text()
    architecture = json.loads(text)["hyperparameters"]["values"]
    torn.write_text(text[: len(text) // 2])  # the kill landed mid-write

    second = []
    with pytest.warns(UserWarning, match=f"trial_{running}.*torn or unreadable"):
        resumed = _search(bench, tmp_path, second)
    resumed.search(verbose=0)
    results = {r["trial_id"]: r for r in resumed.results()}
    assert len(results) == 5 and all(r["status"] == "COMPLETED" for r in results.values())
    assert not set(second) & set(first), "a finished trial was run again"
    assert len(second) == 3  # the torn trial and the two never started
    assert resumed.oracle.get_trial(running).hyperparameters.values == architecture
    assert str(bench.space.from_hp_values(architecture)) == second[0], "the torn trial re-ran its own architecture"
    json.loads(torn.read_text())  # rewritten whole


def test_trial_file_write_is_atomic(tmp_path, monkeypatch):
    from keras_tuner.src.engine import hyperparameters, trial as trial_module

    path = str(tmp_path / "trial.json")
    hp = hyperparameters.HyperParameters()
    hp.Int("layer0", 0, 2)
    trial_files.save_trial(path, trial_module.Trial(hp, trial_id="0"))
    before = open(path).read()

    def dump_then_die(obj, f):
        f.write(json.dumps(obj)[:10])
        raise Killed

    monkeypatch.setattr(trial_files.json, "dump", dump_then_die)
    with pytest.raises(Killed):
        trial_files.save_trial(path, trial_module.Trial(hp, trial_id="0", status="COMPLETED"))
    assert open(path).read() == before and list(tmp_path.iterdir()) == [tmp_path / "trial.json"]


def test_torn_tuner_file_does_not_stop_the_resume(bench, tmp_path):
    first = []
    done = _search(bench, tmp_path, first).search(verbose=0).results()
    [tuner_file] = [p for p in (tmp_path / "p").glob("*.json") if p.name != "oracle.json"]
    tuner_file.write_text("{")  # torn
    again = []
    with pytest.warns(UserWarning, match="is torn"):
        resumed = _search(bench, tmp_path, again)
    resumed.search(verbose=0)
    assert again == [] and resumed.results() == done  # the finished search is intact
