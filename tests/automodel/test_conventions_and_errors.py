"""AutoModel follows scikit-learn estimator conventions and rejects bad input clearly."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import tfmeta


def test_init_stores_params_only_and_clone_works(tmp_path):
    am = tfmeta.AutoModel(task="regression", max_trials=2, seed=3, directory=str(tmp_path))
    params = am.get_params()
    assert params["task"] == "regression" and params["max_trials"] == 2 and params["seed"] == 3
    assert not any(k.endswith("_") for k in vars(am))  # nothing fitted
    assert not (tmp_path / "automodel").exists()  # no work in __init__
    copy = clone(am)
    assert copy.get_params() == params and copy is not am
    assert am.set_params(epochs=4) is am and am.epochs == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "clustering"}, "`task` must be one of"),
        ({"strategy": "grid"}, "`strategy` must be one of"),
        ({"max_trials": 0}, "`max_trials` must be an integer >= 1; received 0"),
        ({"max_time": -1}, "`max_time`"),
        ({"task": "few_shot", "learners": ("gpt",)}, "`learners`"),
        ({"train_paths": "all"}, "`train_paths` must be one of"),
        ({"learning_rate": 0}, "`learning_rate` must be a number > 0; received 0"),
        ({"refit_cells": 1.5}, "`refit_cells` must be None or an integer >= 1; received 1.5"),
        ({"search_sample": 0.0}, "`search_sample` must be None, a fraction in \\(0, 1\\] or a number"),
        ({"task": "few_shot", "search_sample": 10}, "`search_sample` is for task='classification' or"),
    ],
)
def test_bad_params_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfmeta.AutoModel(**kwargs).fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_bad_data_errors_name_the_problem():
    am = tfmeta.AutoModel(max_trials=1, epochs=1)
    with pytest.raises(ValueError, match=r"len\(x\)=4 and len\(y\)=3"):
        am.fit(np.zeros((4, 3)), [0, 1, 0])
    x = np.zeros((4, 3))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="found 1 NaN or infinite"):
        am.fit(x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="one class only"):
        am.fit(np.zeros((4, 3)), [7, 7, 7, 7])
    with pytest.raises(ValueError, match="rank 5"):
        am.fit(np.zeros((4, 2, 2, 2, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="rank 1"):
        am.fit(np.zeros(4), [0, 1, 0, 1])
    with pytest.raises(NotFittedError, match="not fitted"):  # scikit-learn's, a ValueError too
        am.predict(np.zeros((1, 3)))


def test_validation_data_is_refused_where_classes_are_held_out():
    x, y = np.zeros((12, 3)), np.arange(12) % 6
    with pytest.raises(ValueError, match="`validation_data` is for task='classification' or 'regression'"):
        tfmeta.AutoModel(task="few_shot").fit(x, y, validation_data=(x, y))
