"""A project directory records the data it was searched on; a re-fit on other data is refused.

The facade records and checks the data before its task family trains, so these tests stub the
training out (`no_training`); a real search resumed and refused is in test_supervised.py
(arrays) and test_tables.py (raw tables).
"""

import json
import os

import pytest

import tfmeta
from tfmeta.automodel.fingerprint import FINGERPRINT_FILE


@pytest.fixture
def no_training(monkeypatch):
    from tfmeta.automodel import few_shot, similarity

    for family in (few_shot, similarity):
        monkeypatch.setattr(family, "fit", lambda am, *args, **kwargs: None)


def _similarity(directory, **kwargs):
    params = dict(task="similarity", epochs=1, steps_per_epoch=2, seed=0, verbose=0,
                  directory=str(directory), project_name="p")
    params.update(kwargs)
    return tfmeta.AutoModel(**params)


def test_refit_on_other_data_is_refused_with_what_differs_and_overwrite_starts_afresh(digits, tmp_path, no_training):
    x, y = digits
    x, y = x[:300], y[:300]
    _similarity(tmp_path).fit(x, y)
    path = tmp_path / "p" / FINGERPRINT_FILE
    recorded = json.loads(path.read_text())
    assert recorded["task"] == "similarity" and recorded["example_shape"] == [8, 8]
    assert recorded["classes"] == list(range(10)) and recorded["rows"] == 300
    _similarity(tmp_path).fit(x, y)  # the same data resumes
    cases = {
        "example shape": (x[:, :4, :4], y),
        "classes": (x[y < 5], y[y < 5]),
        "content": (x[::-1], y[::-1]),  # same shape, rows and classes
    }
    for difference, (other_x, other_y) in cases.items():
        with pytest.raises(ValueError, match=f"searched on other data.*{difference}.*overwrite=True.*project_name"):
            _similarity(tmp_path).fit(other_x, other_y)
    with pytest.raises(ValueError, match="task: \"similarity\" there, \"few_shot\" now"):
        _similarity(tmp_path, task="few_shot").fit(x, y)
    assert json.loads(path.read_text()) == recorded  # a refused fit changes nothing
    _similarity(tmp_path, overwrite=True).fit(x[y < 5], y[y < 5])
    assert json.loads(path.read_text())["classes"] == [0, 1, 2, 3, 4]
    _similarity(tmp_path).fit(x[y < 5], y[y < 5])


def test_unreadable_record_is_written_again(digits, tmp_path, no_training):
    x, y = digits
    os.makedirs(tmp_path / "p")
    (tmp_path / "p" / FINGERPRINT_FILE).write_text('{"task": "simi')  # torn by a kill
    with pytest.warns(UserWarning, match="unreadable"):
        _similarity(tmp_path).fit(x[:200], y[:200])
    assert json.loads((tmp_path / "p" / FINGERPRINT_FILE).read_text())["rows"] == 200


def test_fit_refused_by_a_later_check_leaves_no_record(digits, tmp_path, monkeypatch):
    from tfmeta.automodel import similarity

    def refuse(am, *args, **kwargs):
        raise ValueError("a parameter that does not suit the data")

    monkeypatch.setattr(similarity, "fit", refuse)
    x, y = digits
    with pytest.raises(ValueError, match="does not suit"):
        _similarity(tmp_path).fit(x[:100], y[:100])
    assert not (tmp_path / "p").exists()
