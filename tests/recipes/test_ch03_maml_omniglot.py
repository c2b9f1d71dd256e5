"""Smoke run of recipes/ch03_maml_omniglot.py --quick, as CI runs it."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tfmeta

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy, extra",
    [("float32", ["--augment", "none", "--maml-plus-plus", "--inner-steps", "3"]),
     ("mixed_bfloat16", ["--lr-schedule", "cosine", "--time-budget", "600", "--test-time-views", "1"])],
)
def test_quick_omniglot_recipe_trains_exports_and_reloads(tmp_path, data_dir, run_recipe, policy, extra):
    export = tmp_path / "saved_models" / "omniglot_maml"
    init = None
    if policy == "float32":  # meta-train from saved encoder weights (--quick's 16-filter conv4)
        init = tmp_path / "encoder.weights.h5"
        tfmeta.backbones.conv4((28, 28, 1), filters=16).save_weights(init)
        extra = [*extra, "--init-encoder", str(init), "--proto-head"]  # Proto-MAML
    command = ["ch03_maml_omniglot.py", "--quick", "--export-dir", str(export), "--dtype-policy", policy]
    out = run_recipe(*command, *extra, data_dir=data_dir)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 20 and result["iterations"] == 6
    assert result["dtype_policy"] == policy
    assert result["augment"] == ("none" if "none" in extra else "affine")
    assert result["lr_schedule"] == ("cosine" if "cosine" in extra else "constant")
    assert 0.2 <= result["accuracy"] <= 1.0 and result["ci95"] > 0
    views = 1 if "--test-time-views" in extra else 16  # 16 views by default
    assert result["test_time_views"] == views
    assert (result["accuracy_views"] is None) == (views == 1)
    # Both test protocols scored; the top-level figures are the first, "characters".
    assert result["test_protocol"] == "characters"
    assert set(result["protocols"]) == {"characters", "rotations"}
    assert result["protocols"]["characters"]["accuracy"] == result["accuracy"]
    assert 0.2 <= result["protocols"]["rotations"]["accuracy"] <= 1.0
    assert result["export"] == str(export / "1")
    assert result["export_max_abs_diff"] < 1e-4  # SavedModel few_shot == in-process adaptation
    meta = json.loads((export / "1" / "tfmeta.json").read_text())
    assert meta["learner"] == "maml" and meta["adaptation"]["inner_steps"] == 3
    assert meta["adaptation"]["test_time_views"] == views  # the export adapts on the same views
    assert "few_shot" in meta["signatures"]
    assert meta["metrics"]["rotations"]["5way_1shot_accuracy"] == result["protocols"]["rotations"]["accuracy"]
    assert meta["training"]["init_encoder"] == (None if init is None else str(init))
    assert (f"encoder initialised from {init}" in out.stdout) is (init is not None)
    proto = "--proto-head" in extra
    assert meta["adaptation"]["proto_head"] is proto and meta["training"]["proto_head"] is proto
    mamlpp = "--maml-plus-plus" in extra
    assert meta["training"]["per_step_bn"] is mamlpp and meta["training"]["learn_step_lrs"] is mamlpp
    if mamlpp:  # the exported (views) model carries the trained step lrs, not their initial 0.4
        step_lrs = [v.numpy() for v in tf.saved_model.load(str(export / "1")).variables
                    if "step_lr" in v.name]
        assert step_lrs and all(lr.shape == (3,) for lr in step_lrs)
        assert max(float(np.max(np.abs(lr - 0.4))) for lr in step_lrs) > 1e-3

    # The weights saved right after meta-training, before the scoring, reproduce the run's
    # scores and export without meta-training again.
    weights = tmp_path / "runs" / "ch03_maml_omniglot_quick" / "meta_trained.weights.h5"
    assert weights.is_file() and result["weights"] == os.path.relpath(weights, tmp_path)
    if policy != "float32":
        return
    network_flags = [f for f in extra if f not in ("--init-encoder", str(init))]
    again = run_recipe(*command, *network_flags, "--trained-weights", str(weights), data_dir=data_dir)
    assert "meta-training skipped" in again.stdout
    rescored = json.loads(again.stdout.strip().splitlines()[-1])
    assert rescored["iterations"] is None and rescored["final_train_accuracy"] is None
    assert rescored["export"] == str(export / "2")
    assert rescored["accuracy"] == pytest.approx(result["accuracy"], abs=1e-9)
    assert rescored["accuracy_views"] == pytest.approx(result["accuracy_views"], abs=1e-9)
    for protocol, score in result["protocols"].items():
        assert rescored["protocols"][protocol]["accuracy"] == pytest.approx(score["accuracy"], abs=1e-9)
    assert json.loads((export / "2" / "tfmeta.json").read_text())["training"]["trained_weights"] \
        == str(weights)
    rng = np.random.default_rng(0)
    episode = dict(support_x=tf.constant(rng.random((5, 28, 28, 1), dtype=np.float32)),
                   support_y=tf.range(5, dtype=tf.int32),
                   query_x=tf.constant(rng.random((10, 28, 28, 1), dtype=np.float32)))
    first, second = (tf.saved_model.load(str(export / v)).signatures["few_shot"](**episode)
                     ["probabilities"].numpy() for v in ("1", "2"))
    np.testing.assert_allclose(second, first, atol=1e-6)


def _recipe_args(argv):
    spec = importlib.util.spec_from_file_location("ch03_recipe", REPO / "recipes" / "ch03_maml_omniglot.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe.parse_args(argv)


def test_trained_weights_flag_errors_name_the_argument(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _recipe_args(["--trained-weights", str(tmp_path / "missing.weights.h5")])
    assert "--trained-weights: no such file" in capsys.readouterr().err
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(SystemExit):
        _recipe_args(["--trained-weights", str(weights), "--init-encoder", "enc.weights.h5"])
    assert "give one of them" in capsys.readouterr().err
    assert _recipe_args(["--trained-weights", str(weights)]).trained_weights == str(weights)
