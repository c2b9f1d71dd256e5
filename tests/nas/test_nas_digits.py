"""The NAS digits search through AutoModel: children trained alone or with ENAS weight sharing,
the best cell retrained stacked deeper, scored on the test split and exported.

The split is `tfmeta.data.digits`'s 60/20/20: AutoModel holds out a quarter of the 80%
training pool to score the children, then retrains on all of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import tfmeta
from tfmeta.data.digits import load_digits_splits
from tfmeta.export import read_metadata
from tfmeta.nas.cells import Cell
from tfmeta.nas.space import MicroCellSpace
from tfmeta.xla_check import check_export

LOAD = """
import sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures["serving_default"](x=tf.constant(np.load(sys.argv[2])))
np.save(sys.argv[3], out["probabilities"].numpy())
np.save(sys.argv[4], out["classes"].numpy())
assert "tfmeta" not in sys.modules
"""


@pytest.fixture(scope="module")
def splits():
    return load_digits_splits(test_size=0.2, seed=0, scaled=True, channel_axis=True)


def _cells(model) -> list:
    """The `Cell` layers of a model, nested models included."""
    found = []
    for layer in model.layers:
        found += [layer] if isinstance(layer, Cell) else (_cells(layer) if hasattr(layer, "layers") else [])
    return found


def _digits_search(tmp_path, **kwargs):
    params = dict(space=MicroCellSpace(num_nodes=2), max_trials=2, epochs=1, filters=8, learning_rate=3e-3,
                  batch_size=64, refit_cells=2, refit_filters=8, refit_epochs=3, ensemble=False, seed=0,
                  directory=str(tmp_path / "runs"), project_name="digits", overwrite=True, verbose=1)
    params.update(kwargs)
    return tfmeta.AutoModel(task="classification", **params)


@pytest.mark.slow
def test_search_alone_retrains_deeper_learns_and_exports(splits, tmp_path, capsys):
    (x, y), (x_test, y_test) = splits["train"], splits["test"]
    am = _digits_search(tmp_path).fit(x, y, validation_split=0.25)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[trial ")]
    assert [line.split("]")[0] for line in lines] == ["[trial 1/2", "[trial 2/2"]  # the search callback
    board = am.leaderboard()
    assert len(board) == 2 and all(t["seconds"] > 0 for t in board)
    assert board[0]["architecture"] == am.best_architecture_
    # Children have one normal cell per stage (8x8: one reduction): 1 + 1 + 1 cells; the refit
    # stacks the best cell twice per stage: 2 + 1 + 2.
    assert len(_cells(am.model_)) == 5 and am.members_ == [am.model_] and am.refit_epochs_ == 3
    accuracy = am.score(x_test, y_test)
    assert accuracy > 0.4  # chance is 0.1: the retrained model learned
    path = am.export(str(tmp_path / "sm"))
    assert {c.signature: c.status for c in check_export(path)} == {"serving_default": "compiles"}  # XLA-ready
    assert read_metadata(path)["architecture"] == am.best_architecture_
    np.save(tmp_path / "x.npy", x_test[:32])
    subprocess.run([sys.executable, "-c", LOAD, path, str(tmp_path / "x.npy"), str(tmp_path / "p.npy"),
                    str(tmp_path / "c.npy")], check=True, timeout=240, env={**os.environ, "PYTHONPATH": ""})
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), am.predict_proba(x_test[:32]), atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), am.predict(x_test[:32]))


@pytest.mark.slow
def test_weight_sharing_search_derives_a_searched_cell_and_retrains_it(splits, tmp_path, capsys):
    (x, y), (x_test, y_test) = splits["train"], splits["test"]
    space = MicroCellSpace(num_nodes=2, ops=("sep_conv_3x3", "identity"))
    am = _digits_search(tmp_path, space=space, max_trials=3, weight_sharing=True, child_steps=4,
                        train_paths="uniform", refit_epochs=2)
    am.fit(x, y, validation_split=0.25)
    out = capsys.readouterr().out
    assert out.count("[trial ") == 3 and "[derive] " in out  # the ENAS tuner reports through the callback
    board = am.leaderboard()
    assert len(board) == 3 and all(t["seconds"] > 0 for t in board)
    assert am.best_architecture_ in {t["architecture"] for t in board}
    assert (tmp_path / "runs" / "digits" / "shared_weights.npz").is_file()
    assert len(_cells(am.model_)) == 5 and am.members_ == [am.model_]  # trained from scratch, deeper
    assert am.score(x_test, y_test) > 0.3  # chance is 0.1


def test_weight_sharing_and_deeper_refits_need_images_and_classification():
    x, y = np.zeros((20, 4)), np.arange(20) % 2
    with pytest.raises(ValueError, match="`refit_cells` applies to images"):
        tfmeta.AutoModel(refit_cells=2, verbose=0).fit(x, y)
    with pytest.raises(ValueError, match="`weight_sharing=True` is for task='classification'"):
        tfmeta.AutoModel(task="regression", weight_sharing=True).fit(x, y)
    with pytest.raises(ValueError, match="needs `refit=True`"):
        tfmeta.AutoModel(weight_sharing=True, refit=False).fit(x, y)
    with pytest.raises(ValueError, match="`space` must be a MicroCellSpace for image inputs"):
        tfmeta.AutoModel(space=tfmeta.nas.DenseSpace(num_layers=1)).fit(np.zeros((20, 8, 8)), y)
    with pytest.raises(ValueError, match="`refit_epochs` must be None or an integer >= 1; received 0"):
        tfmeta.AutoModel(refit_epochs=0).fit(x, y)


def test_automodel_split_of_the_training_pool_is_the_60_20_20_split(splits):
    from tfmeta.automodel.supervised import split
    from tfmeta.nas import digits

    x_search, y_search, x_val, y_val = split(SimpleNamespace(seed=0), *splits["train"], 0.25, None, True)
    three = load_digits_splits(test_size=0.2, validation_size=0.2, seed=0, scaled=True, channel_axis=True)
    for got, expected in ((x_search, three["train"][0]), (y_search, three["train"][1]),
                          (x_val, three["validation"][0]), (y_val, three["validation"][1])):
        np.testing.assert_array_equal(got, expected)
    with pytest.warns(DeprecationWarning, match="tfmeta.data.digits.load_digits_splits"):
        old = digits.load_digits_splits()
    np.testing.assert_array_equal(old["val"][0], three["validation"][0])


@pytest.mark.slow
def test_deprecated_search_digits_wraps_automodel(tmp_path):
    from tfmeta.nas import digits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = digits.search_digits("random", max_trials=1, epochs=1, final_epochs=1, num_nodes=2,
                                      ops=("max_pool_3x3", "identity"), filters=4, final_cells=1, final_filters=4,
                                      directory=str(tmp_path), export_dir=None)
    assert result["trials"] == 1 and result["trial_scores"] == [result["best_val_accuracy"]]
    assert result["export_path"] is None and 0.0 <= result["test_accuracy"] <= 1.0
